"""Target kinds: what a map explains when it is not one class of a classifier's logits.

A class target (``"predicted"``, ``"tabby"``, ``281``: :mod:`xai_core.contracts.targets`) picks a
column of the model's logits ``[N, classes]``. A :class:`TargetKind` maps *any* model output (a
sigmoid head, a regression output, a segmentation map ``[N, classes, H, W]``, a layer's
activation) to a score matrix ``[B, K]`` and says which of its ``K`` columns each input is
explained for. Every technique then works unchanged: while a call runs, a forward hook on the
model replaces its output by that matrix (:class:`TargetScope`), so "the gradient of the target
score", "the drop of the target score under occlusion" and a faithfulness curve all read the
target's own score, from the same passes they make for a class.

* :class:`TargetKind` is the contract (a plugin registers subclasses with the
  ``register_targets`` hook, listed by ``xai list targets``); implement :meth:`TargetKind.bind`.
* :class:`BoundTarget` is what ``bind`` returns for one call: the score function, the columns
  per input, and what each one means (``choices``, ``labels``).
* :class:`ScoreFunction` wraps a plain callable (``lambda z: z[:, 3] - z[:, 7]``) that maps the
  model's output to one score per image.
* :func:`target_probabilities` is how a technique or metric reads "the target's probability":
  the softmax of the logits for a class target, the kind's own probability (a sigmoid) for a
  target kind, and an error for a kind that has none (a regression output).

The built-in kinds live in ``plugins/targets.py``; the runner's use of them (predictions,
records, titles) in :mod:`xai_core.runner.targets`.
"""

from __future__ import annotations

import abc
import contextlib
import contextvars
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from xai_core.contracts.technique import Technique
from xai_core.errors import PluginError, TargetError
from xai_core.nn.hooks import HookRecorder

__all__ = [
    "TASKS",
    "TargetKind",
    "BoundTarget",
    "TargetCall",
    "ScoreFunction",
    "TargetScope",
    "as_target_kind",
    "dense_output",
    "target_probabilities",
    "active_columns",
    "target_scope",
]

#: What a model computes, as target kinds and models declare it: ``classification`` (logits
#: ``[N, classes]``; also multi-label and regression heads), ``segmentation`` (``[N, classes,
#: H, W]`` or a dict with ``"out"``), ``detection`` (torchvision's list of dicts).
TASKS = ("classification", "segmentation", "detection")


@dataclass
class TargetCall:
    """What :meth:`TargetKind.bind` gets for one call of a technique or metric.

    :ivar handle: the model handle (class names, layers).
    :ivar hooks: register torch hooks here (a layer's activation for a neuron target); they go
        away when the call ends.
    :ivar n: the number of inputs.
    :ivar output: the model's output on the unperturbed inputs (detached), when the kind's
        ``needs_output``; else ``None``.
    :ivar choices: per input, the choices (:attr:`BoundTarget.choices`) an earlier call made for
        these inputs, to be explained again (a run's metrics score the maps of the targets its
        prediction chose); ``None`` to choose.
    :ivar inputs: the unperturbed inputs ``[n, C, H, W]``.
    """

    handle: Any
    hooks: HookRecorder
    n: int
    output: Any = None
    choices: list[list[Any]] | None = None
    inputs: Tensor | None = None


@dataclass
class BoundTarget:
    """A target kind bound to one call's inputs.

    :ivar score: the model's output on any batch (the unperturbed inputs or perturbed copies) ->
        scores ``[B, K]``, differentiable; a column may hold state of one input (its region, its
        box): a batch of perturbed copies reads the column of the input they were made from.
    :ivar columns: per input, the columns it is explained for (one map each, in this order).
    :ivar choices: per input and column, what it means in the kind's own terms (a label index, a
        class), JSON-serialisable; passed back as :attr:`TargetCall.choices` to explain the same
        targets again.
    :ivar labels: per input and column, a short description for titles and records
        (``"tabby - tiger cat"``, ``"label 'dog'"``).
    :ivar probability: scores ``[B, K]`` -> probabilities, for a kind that has one (a sigmoid);
        ``None`` when the score is not a probability of anything.
    :ivar value: what the score is, for titles (``"logit"``, ``"sigmoid"``, ``"output"``).
    :ivar regions: per input and column, where in the image the target is, for figures: a box
        ``[x0, y0, x1, y1]`` in input pixels or a boolean mask ``[h, w]`` (any resolution,
        stretched over the image); ``None`` when the kind has no region.
    """

    score: Callable[[Any], Tensor]
    columns: list[list[int]]
    choices: list[list[Any]]
    labels: list[list[str]]
    probability: Callable[[Tensor], Tensor] | None = None
    value: str = "score"
    regions: list[list[Any]] | None = None

    def check(self, n: int, owner: str) -> None:
        """Refuse a binding whose per-input lists do not have one entry per input."""
        for name in ("columns", "choices", "labels"):
            rows = getattr(self, name)
            if len(rows) != n:
                raise PluginError(f"{owner}: bind returned {len(rows)} {name} for {n} inputs")
        if any(len(c) != len(h) or len(c) != len(lab) for c, h, lab in zip(
            self.columns, self.choices, self.labels
        )):
            raise PluginError(f"{owner}: bind returned columns, choices and labels of unequal "
                              "lengths for an input")


class TargetKind(Technique):
    """A kind of target: a score per image computed from the model's output.

    Subclasses set ``name``, ``summary``, ``Params`` (the keys of ``target: {kind: NAME, ...}``
    in YAML, checked before any model loads), ``tasks`` (the model tasks it applies to, from
    :data:`TASKS`, or ``("any",)``) and ``needs_output`` (whether :meth:`bind` reads the output on
    the unperturbed inputs: ``label: predicted``, a predicted region), and implement
    :meth:`bind`.
    """

    kind: ClassVar[str] = "target kind"
    #: The model tasks this kind makes sense for (:data:`TASKS`), or ``("any",)``.
    tasks: ClassVar[tuple[str, ...]] = ("classification",)
    #: Whether :meth:`bind` needs the model's output on the unperturbed inputs.
    needs_output: ClassVar[bool] = False
    #: Whether the kind's scores have a probability (:attr:`BoundTarget.probability`): methods
    #: and metrics set to read one are refused before any model loads when it has none.
    has_probability: ClassVar[bool] = False

    @abc.abstractmethod
    def bind(self, call: TargetCall) -> BoundTarget:
        """The :class:`BoundTarget` of this call (see :class:`TargetCall`).

        :raises TargetError: for a target that does not fit the model (an output index past its
            width, a class name it does not know).
        """

    def with_choices(self, choices: Sequence[Sequence[Any]]) -> TargetKind:
        """This kind, explaining the targets of ``choices`` (one list per input, from
        :attr:`BoundTarget.choices` of an earlier call on the same inputs) instead of choosing:
        how a run explains the targets its prediction chose with every method, and scores
        them."""
        return _Chosen(self, [list(c) for c in choices])

    def check_task(self, task: str | None, model: str) -> None:
        """Refuse a model whose task (:data:`TASKS`; ``None``: unknown before it loads) this kind
        does not apply to, naming the kind."""
        if task is None or "any" in self.tasks or task in self.tasks:
            return
        raise TargetError(
            f"target kind {self.name!r} explains {' or '.join(self.tasks)} models, but "
            f"{model!r} is a {task} model; pick a target kind for it (`xai list targets`)"
        )

    def check_against(self, class_names: Sequence[str] | None, num_classes: int | None) -> None:
        """Config-time checks against a model's classes, before it loads (names, indices);
        the default checks nothing."""
        del class_names, num_classes


class ScoreFunction(TargetKind):
    """A callable that maps the model's output to one score per image (``[N]`` or ``[N, 1]``):
    the Python form of any target, ``lambda z: z[:, 3] - z[:, 7]``."""

    name = "function"
    summary = "a Python callable: model output -> one score per image"
    tasks = ("any",)

    def __init__(self, fn: Callable[[Any], Tensor]):
        super().__init__()
        self.fn = fn

    def bind(self, call: TargetCall) -> BoundTarget:
        name = getattr(self.fn, "__name__", "function")
        return BoundTarget(
            score=self._score,
            columns=[[0] for _ in range(call.n)],
            choices=[[name] for _ in range(call.n)],
            labels=[[name] for _ in range(call.n)],
        )

    def _score(self, output: Any) -> Tensor:
        scores = self.fn(output)
        if not isinstance(scores, Tensor) or not scores.is_floating_point():
            raise TargetError(
                "a target callable returns one score per image (a float tensor [N]), or class "
                f"indices; got {type(scores).__name__}"
                + (f" of {scores.dtype}" if isinstance(scores, Tensor) else "")
            )
        if scores.ndim == 2 and scores.shape[1] == 1:
            scores = scores[:, 0]
        if scores.ndim != 1:
            raise TargetError(
                f"a target callable returned scores of shape {list(scores.shape)}; return one "
                "score per image, [N]"
            )
        return scores[:, None]


class _Callable(TargetKind):
    """A plain callable target, told apart on the model's output: float scores ``[N]`` make it a
    :class:`ScoreFunction`; anything else is class targets (what it meant before target kinds:
    a callable that picks classes from the logits), explained as columns of the logits."""

    name = "callable"
    tasks = ("any",)
    needs_output = True

    def __init__(self, fn: Callable[[Any], Any]):
        super().__init__()
        self.fn = fn

    def bind(self, call: TargetCall) -> BoundTarget:
        from xai_core.contracts.targets import resolve_targets

        if call.choices is not None:
            chosen: Any = [c[0] if len(c) == 1 else list(c) for c in call.choices]
        else:
            chosen = self.fn(call.output)
        if isinstance(chosen, Tensor) and chosen.is_floating_point():
            return ScoreFunction(self.fn).bind(call)
        if not isinstance(call.output, Tensor) or call.output.ndim != 2:
            raise TargetError(
                "a target callable that returns classes needs a model whose output is logits "
                "[N, classes]; return one score per image (a float tensor [N]) instead"
            )
        output = call.output
        classes = resolve_targets(chosen, call.n, call.handle, lambda: output).cpu()
        rows = classes.view(call.n, -1).tolist()
        return BoundTarget(
            score=_identity,
            columns=rows,
            choices=rows,
            labels=[[call.handle.label(c) for c in row] for row in rows],
            probability=lambda scores: scores.softmax(dim=1),
            value="logit",
        )


def _identity(output: Any) -> Tensor:
    return output


class _Chosen(TargetKind):
    """A kind with the choices of an earlier call (:meth:`TargetKind.with_choices`)."""

    name = "chosen"
    tasks = ("any",)

    def __init__(self, kind: TargetKind, choices: list[list[Any]]):
        super().__init__()
        self.base, self.choices = kind, choices
        self.name, self.tasks = kind.name, kind.tasks

    @property
    def needs_output(self) -> bool:  # type: ignore[override]
        return self.base.needs_output

    def bind(self, call: TargetCall) -> BoundTarget:
        if len(self.choices) != call.n:
            raise TargetError(f"{len(self.choices)} target choices for {call.n} inputs")
        call.choices = self.choices
        return self.base.bind(call)


class _Columns(TargetKind):
    """Columns of the scores of a target kind already installed on the model (by an outer call:
    a metric that re-runs the attributor): its scores pass through, these columns are
    explained."""

    name = "columns"
    tasks = ("any",)

    def __init__(self, columns: Sequence[int], outer: BoundTarget):
        super().__init__()
        self.columns, self.outer = [int(c) for c in columns], outer

    def bind(self, call: TargetCall) -> BoundTarget:
        if call.n != len(self.columns):
            raise TargetError(f"{len(self.columns)} target columns for {call.n} inputs")
        return BoundTarget(
            score=_identity,
            columns=[[c] for c in self.columns],
            choices=[[c] for c in self.columns],
            labels=[[f"column {c}"] for c in self.columns],
            probability=self.outer.probability,
            value=self.outer.value,
        )


def active_columns(columns: Sequence[int]) -> TargetKind | None:
    """Inside a call with a target kind installed (a metric's), the target that explains
    ``columns`` of its scores again (an attributor called from the metric); ``None`` outside
    one, where ``columns`` are class indices."""
    bound = _PROBABILITY.get()
    return None if bound is None else _Columns(columns, bound)


def as_target_kind(target: Any) -> TargetKind | None:
    """The :class:`TargetKind` of ``target``: itself, or the kind of a plain callable (one score
    per image, or class targets picked from the logits); ``None`` for a class target (what
    :func:`~xai_core.contracts.targets.resolve_targets` takes)."""
    if isinstance(target, TargetKind):
        return target
    if isinstance(target, type) and issubclass(target, TargetKind):
        raise TargetError(f"target {target.__name__} is a class; pass an instance: "
                          f"{target.__name__}(...)")
    if callable(target) and not isinstance(target, Tensor):
        return _Callable(target)
    return None


def dense_output(output: Any) -> Tensor:
    """A segmentation model's dense logits ``[N, classes, H, W]``: the tensor itself, or the
    ``"out"`` entry of torchvision's dict."""
    if isinstance(output, dict):
        if "out" not in output:
            raise TargetError(
                f"the model returned a dict with keys {sorted(output)}; a segmentation target "
                "reads its 'out' entry [N, classes, H, W]"
            )
        output = output["out"]
    if not isinstance(output, Tensor) or output.ndim != 4:
        shape = list(output.shape) if isinstance(output, Tensor) else type(output).__name__
        raise TargetError(
            f"a segmentation target needs the model's output as [N, classes, H, W]; got {shape}"
        )
    return output


_PROBABILITY: contextvars.ContextVar[BoundTarget | None] = contextvars.ContextVar(
    "target_probability", default=None
)


def target_probabilities(scores: Tensor) -> Tensor:
    """What "the target's probability" is for ``scores`` (the model's output as the technique or
    metric sees it, ``[B, K]``): the softmax over classes for a class target; inside a call
    with a target kind, the kind's own probability (a multi-label sigmoid).

    :raises TargetError: for a kind whose score is no probability (a regression output, a logit
        difference); the fix is to read the score itself (``score: logit``, ``output: logit``).
    """
    bound = _PROBABILITY.get()
    if bound is None:
        return scores.softmax(dim=1)
    if bound.probability is None:
        raise TargetError(
            f"this target's score ({bound.value}) is not a probability; set the technique's or "
            "metric's `score`/`output` to `logit` to read the score itself"
        )
    return bound.probability(scores)


@dataclass
class TargetScope:
    """A target kind installed on a model for one call: its forward hook turns every output of
    the model into the kind's score matrix ``[B, K]``, binding the kind on the first output
    (the unperturbed inputs') when the kind needs it.

    Use :meth:`install` before the call's first forward pass, then :meth:`columns` once that pass
    ran (it runs one itself, without gradients, when none did and the kind needs one).
    """

    kind: TargetKind
    handle: Any
    hooks: HookRecorder
    inputs: Tensor
    choices: list[list[Any]] | None = None
    bound: BoundTarget | None = None
    #: The scores of the pass :meth:`columns` ran itself, when it did.
    first_scores: Tensor | None = None
    _reset: list[Any] = field(default_factory=list)

    def install(self) -> None:
        if not self.kind.needs_output:
            self._bind(None)  # before the hook: binding may run the model (a reference image)

        # A plain function, not a bound method: a copy of the model made during the call (the
        # randomisation check's) keeps this very hook, and with it this call's binding.
        def hook(module: nn.Module, args: Any, output: Any) -> Tensor:
            return self._hook(module, args, output)

        self.hooks.forward(self.handle.module, hook)

    def _call(self, output: Any) -> TargetCall:
        return TargetCall(
            handle=self.handle,
            hooks=self.hooks,
            n=len(self.inputs),
            output=output,
            choices=self.choices,
            inputs=self.inputs,
        )

    def _bind(self, output: Any) -> None:
        bound = self.kind.bind(self._call(output))
        if not isinstance(bound, BoundTarget):
            raise PluginError(
                f"{self.kind.describe()}: bind returned {type(bound).__name__}, not a BoundTarget"
            )
        bound.check(len(self.inputs), self.kind.describe())
        self.bound = bound
        self._reset.append(_PROBABILITY.set(bound))

    def _hook(self, module: nn.Module, args: Any, output: Any) -> Tensor:
        del module, args
        if self.bound is None:
            self._bind(_detached(output))
        assert self.bound is not None
        scores = self.bound.score(output)
        if not isinstance(scores, Tensor) or scores.ndim != 2:
            got = list(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
            raise PluginError(
                f"{self.kind.describe()}: its score function returned {got}; the contract is "
                "[B, K], one row per image of the batch"
            )
        return scores

    def columns(self) -> list[list[int]]:
        """The columns each input is explained for (binds with a pass of its own, without
        gradients, when no pass bound the kind yet)."""
        if self.bound is None:
            with torch.no_grad():
                self.first_scores = self.handle.module(self.inputs)
        assert self.bound is not None
        return self.bound.columns

    def close(self) -> None:
        while self._reset:
            _PROBABILITY.reset(self._reset.pop())


def _detached(output: Any) -> Any:
    if isinstance(output, Tensor):
        return output.detach()
    if isinstance(output, dict):
        return type(output)((k, _detached(v)) for k, v in output.items())
    if isinstance(output, (list, tuple)):
        return type(output)(_detached(v) for v in output)
    return output


@contextlib.contextmanager
def target_scope(
    target: Any, handle: Any, hooks: HookRecorder, inputs: Tensor,
    choices: list[list[Any]] | None = None,
) -> Iterator[TargetScope | None]:
    """A :class:`TargetScope` installed for ``target`` when it is a target kind (``None`` for a
    class target: nothing is installed)."""
    kind = as_target_kind(target)
    if kind is None:
        yield None
        return
    scope = TargetScope(kind, handle, hooks, inputs, choices)
    scope.install()
    try:
        yield scope
    finally:
        scope.close()
