"""The attributor contract: :class:`Attributor` (implement ``compute``) and its result,
:class:`Attribution` (one map per input and target).

The base class does the bookkeeping (see :mod:`xai_core.contracts.technique`); the family bases
that most attributors build on live in :mod:`xai_core.families`.
"""

from __future__ import annotations

import abc
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from xai_core.contracts.checks import HookGuard, check_tensor
from xai_core.contracts.model import ModelHandle, as_model_handle
from xai_core.contracts.target_kinds import BoundTarget, TargetScope, target_scope
from xai_core.contracts.targets import (
    TargetSpec,
    check_output_classes,
    output_classes_hook,
    resolve_targets,
)
from xai_core.contracts.technique import (
    AttributionContext,
    ForwardPass,
    Technique,
    check_inputs,
    grad_ready,
)
from xai_core.errors import ModelLoadError, PluginError
from xai_core.nn.hooks import HookRecorder, model_state

__all__ = ["Attribution", "Attributor"]

@dataclass
class Attribution:
    """Maps that explain predictions, one per input item.

    :ivar maps: float tensor ``[N, H, W]`` at input resolution, on the CPU.
    :ivar targets: long tensor ``[N]``: the class each map explains.
    :ivar method: the technique's registered name.
    :ivar metadata: what the technique reports about the run (parameters, layer used, ...).
    :ivar input_index: long tensor ``[N]``: which input each map belongs to. With one target per
        input it is ``0..N-1``; with ``k`` targets per input, maps are input-major
        (input 0's ``k`` maps first) and ``N`` is ``inputs * k``.
    :ivar logits: float ``[inputs, classes]`` on the CPU: the model's output on the unperturbed
        inputs when the call computed it (to resolve ``predicted``/``top-k`` or a callable
        target, or in the technique's :meth:`Attributor.forward_pass`), else ``None``; for a
        target kind, its scores ``[inputs, K]`` (:mod:`xai_core.contracts.target_kinds`).
    :ivar target_labels: for a target kind, what each map explains (``"tabby - tiger cat"``);
        ``targets`` are then columns of the kind's scores. ``None`` for class targets.
    :ivar target_choices: for a target kind, each map's target in the kind's own terms (a label
        index, a class), to explain the same targets again.
    :ivar target_values: for a target kind, each map's target score on its unperturbed input,
        when the call computed the scores (``[N]``), else ``None``.
    :ivar target_value_name: what that score is (``"logit"``, ``"sigmoid"``, ``"output"``).
    :ivar target_probabilities: for a target kind with a probability (a sigmoid), each map's,
        when the call computed the scores.
    :ivar target_regions: for a target kind with regions (a box, a segmentation region), each
        map's (:attr:`~xai_core.BoundTarget.regions`).
    """

    maps: Tensor
    targets: Tensor
    method: str
    metadata: dict[str, Any] = field(default_factory=dict)
    input_index: Tensor | None = None
    logits: Tensor | None = None
    target_labels: list[str] | None = None
    target_choices: list[Any] | None = None
    target_values: Tensor | None = None
    target_value_name: str | None = None
    target_probabilities: Tensor | None = None
    target_regions: list[Any] | None = None

    def __post_init__(self) -> None:
        if self.input_index is None:
            self.input_index = torch.arange(self.maps.shape[0])

    def __len__(self) -> int:
        return self.maps.shape[0]


def check_weights_outside_inference_mode(module: nn.Module) -> None:
    """Refuse a model whose weights were made under ``torch.inference_mode()``.

    Such tensors can never take part in autograd, nor have ``requires_grad`` set back to
    ``True`` outside that mode: every technique would fail with a PyTorch error deep inside,
    after freezing parameters it then cannot restore. Checked before the model is touched.
    """
    frozen = [
        name
        for name, tensor in (*module.named_parameters(), *module.named_buffers())
        if tensor.is_inference()
    ]
    if frozen:
        more = f" (+{len(frozen) - 3} more)" if len(frozen) > 3 else ""
        raise ModelLoadError(
            f"the model's weights {', '.join(frozen[:3])}{more} were created under "
            "torch.inference_mode(): autograd refuses them and their requires_grad flags "
            "cannot be restored outside it, so no technique can run on them; create or load the "
            "model outside inference mode (calling `attribute` from inside it is fine)"
        )


class Attributor(Technique):
    """Explains predictions with one map per input: ``attribute(model, inputs, target)``.

    Subclasses implement :meth:`compute`. Everything else (eval mode, device, targets, hooks,
    result checks) is done here, identically for every technique.
    """

    kind: ClassVar[str] = "attributor"

    def attribute(
        self,
        model: ModelHandle | nn.Module,
        inputs: Tensor,
        target: TargetSpec = "predicted",
    ) -> Attribution:
        """Explain ``model``'s predictions on ``inputs``.

        :param model: a handle from :func:`xai_core.load_model` or a plain ``torch.nn.Module``.
        :param inputs: normalized batch ``[N, C, H, W]`` (the model's own preprocessing), ``C``
            the model's channel count (:attr:`~xai_core.ModelHandle.in_chans`).
        :param target: ``"predicted"``, a class index, a class name, a sequence with one of
            those per item, or one equal-length list per item for several targets per input
            (maps are then input-major; see :attr:`Attribution.input_index`), or a callable
            that gets the logits ``[N, classes]`` and returns one of those: the targets are then
            picked from the same forward pass that explains them when the technique implements
            :meth:`forward_pass` (how an experiment avoids a separate prediction pass).
        :return: an :class:`Attribution` with maps ``[N, H, W]`` on the CPU and, when the call
            computed them, the logits of the unperturbed inputs.
        """
        handle = as_model_handle(model)
        check_inputs(inputs, handle)
        self.check_channels(handle.in_chans, f"model {handle.name!r}")
        start = time.perf_counter()
        module = handle.module
        check_weights_outside_inference_mode(module)
        owner = self.describe()
        # Out of inference mode: gradient techniques must work whatever mode the caller is in.
        with torch.inference_mode(False), model_state(module) as device, HookGuard(module) as guard:
            x = grad_ready(inputs.detach().to(device=device, dtype=torch.float32))
            context = AttributionContext(handle=handle, hooks=HookRecorder())
            with context.hooks, target_scope(target, handle, context.hooks, x) as scope:
                forward = self.forward_pass(module, x, context)
                logits = _Logits(module, x, forward, owner)
                if scope is None:
                    targets = resolve_targets(target, len(x), handle, logits).to(device)
                    bound = None
                else:
                    targets, bound = _kind_targets(scope, logits, device), scope.bound
                rows, targets, index, k = _rows(x, targets, device)
                context.input_index, context.targets_per_input = index, k
                if forward is not None:
                    forward.source, forward.rows = x, rows
                    # Inputs with different numbers of targets: rows the pass does not line up
                    # with, so compute makes its own.
                    context.forward = forward if rows is x or k > 1 else None
                    logits()  # the pass ran anyway: its logits go into the result
                if scope is None:
                    _check_output_classes(targets, handle, logits, context)
                if len(rows):
                    maps = self.compute(module, rows, targets, context)
                else:  # a target kind that chose nothing (no label over its threshold)
                    maps = rows.new_zeros((0, *rows.shape[2:]))
        guard.check(owner)
        expected = (rows.shape[0], rows.shape[2], rows.shape[3])
        maps = check_tensor(maps, "maps", owner, expected, "[N, H, W] at input resolution")
        metadata = {"params": dataclasses.asdict(self.params), **context.metadata}
        metadata["seconds"] = time.perf_counter() - start
        return Attribution(
            maps=maps.detach().float().cpu(),
            targets=targets.cpu(),
            method=self.name,
            metadata=metadata,
            input_index=index.cpu(),
            logits=logits.taken,
            **_described(bound, logits.taken, targets, index),
        )

    def forward_pass(
        self, model: nn.Module, inputs: Tensor, context: AttributionContext
    ) -> ForwardPass | None:
        """Optional: the technique's forward pass on the unperturbed ``inputs`` ``[M, C, H, W]``,
        run before the targets are known; :meth:`compute` finds it in ``context.forward``.

        Implement it when :meth:`compute` starts with such a pass (a gradient's forward, a CAM's
        layer capture): the base class then takes the predictions and
        any target that depends on them (``predicted``, ``top-k``) from its logits, and a run
        takes each image's prediction from them too, so one pass serves both (without it, such
        targets cost one more forward pass). Register hooks through ``context.hooks`` as in
        :meth:`compute`. ``compute`` must still work without it: check
        ``context.shared_pass(inputs)``, which is ``None`` when a wrapper calls ``compute`` on
        other inputs. The default runs no pass and returns ``None``.
        """
        del model, inputs, context
        return None

    @abc.abstractmethod
    def compute(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        """Return maps ``[N, H, W]`` for ``inputs`` (on the model's device) and ``targets``.

        The model is in eval mode, its parameters do not require gradients, gradients are
        enabled and inference mode is off (whatever the caller's mode). Register torch hooks
        with ``context.hooks``. The maps must be finite and floating-point; the base class
        fails the call, naming the plugin, when they are not or when a hook is left behind.
        """


def _check_output_classes(
    targets: Tensor, handle: ModelHandle, logits: _Logits, context: AttributionContext
) -> None:
    """For a model that knows its number of classes only from its output, an index past it is
    a :class:`~xai_core.errors.TargetError` naming the valid range, checked against logits
    this call computes anyway (a forward pass more would change what techniques count): the
    shared pass's when there is one, else each output of the model while ``compute`` runs."""
    if handle.num_classes is not None:
        return  # the indices were checked as the targets were resolved
    if logits.taken is not None:
        check_output_classes(targets, logits.taken)
    else:
        context.hooks.forward(handle.module, output_classes_hook(targets))


def _kind_targets(scope: TargetScope, logits: _Logits, device: torch.device) -> Any:
    """The columns of a target kind's scores each input is explained for: a ``[n]`` or ``[n, k]``
    tensor when every input has as many, else the list of lists (see :func:`_rows`)."""
    columns = scope.columns()
    if logits.taken is None and scope.first_scores is not None:
        logits.taken = scope.first_scores.detach().float().cpu()
    counts = {len(c) for c in columns}
    if counts == {1}:
        return torch.tensor([c[0] for c in columns], dtype=torch.long, device=device)
    if len(counts) == 1 and 0 not in counts:
        return torch.tensor(columns, dtype=torch.long, device=device)
    return columns


def _rows(x: Tensor, targets: Any, device: torch.device) -> tuple[Tensor, Tensor, Tensor, int]:
    """``(rows, targets, input_index, k)``: the rows ``compute`` gets (``x``, or each input
    repeated once per target), one target per row, which input each row is, and the number of
    targets per input (1 when inputs have different numbers: a target kind's ``predicted``
    multi-label targets)."""
    if isinstance(targets, list):
        index = torch.tensor([i for i, c in enumerate(targets) for _ in c], dtype=torch.long,
                             device=device)
        flat = torch.tensor([t for c in targets for t in c], dtype=torch.long, device=device)
        return x[index], flat, index, 1
    k = targets.shape[1] if targets.ndim == 2 else 1
    index = torch.arange(len(x), device=device).repeat_interleave(k)
    if k > 1:
        return x[index], targets.flatten(), index, k
    return x, targets, index, k


def _described(
    bound: BoundTarget | None, scores: Tensor | None, targets: Tensor, index: Tensor
) -> dict[str, Any]:
    """The target-kind fields of an :class:`Attribution`: what each map explains and the
    target's score on its unperturbed input (when the call computed it)."""
    if bound is None:
        return {}
    labels = [lab for row in bound.labels for lab in row]
    choices = [c for row in bound.choices for c in row]
    values = probabilities = None
    if scores is not None:
        rows, columns = index.cpu(), targets.cpu()
        values = scores[rows, columns].clone()
        if bound.probability is not None:
            probabilities = bound.probability(scores)[rows, columns].clone()
    regions = None if bound.regions is None else [r for row in bound.regions for r in row]
    return {"target_labels": labels, "target_choices": choices, "target_values": values,
            "target_value_name": bound.value, "target_probabilities": probabilities,
            "target_regions": regions}


class _Logits:
    """The unperturbed inputs' logits, computed at most once per call: from the technique's
    :meth:`Attributor.forward_pass` when it ran one, else by a pass of the model here."""

    def __init__(self, module: nn.Module, x: Tensor, forward: ForwardPass | None, owner: str):
        self.module, self.x, self.forward, self.owner = module, x, forward, owner
        self.taken: Tensor | None = None

    def __call__(self) -> Tensor:
        if self.taken is None:
            if self.forward is not None:
                logits = self.forward.logits.detach()
                if logits.ndim != 2 or logits.shape[0] != self.x.shape[0]:
                    raise PluginError(
                        f"{self.owner}: forward_pass returned logits of shape "
                        f"{list(logits.shape)}; the contract is [M, classes] with M = "
                        f"{self.x.shape[0]}, one row per input it was given"
                    )
            else:
                with torch.no_grad():
                    logits = self.module(self.x)
            self.taken = logits.float().cpu()
        return self.taken
