"""The metric contract: :class:`Metric`, what it gets (:class:`MetricContext`) and what it returns
(:class:`MetricResult`), plus the two things every caller of metrics needs: scoring one batch of
maps with several metrics (:func:`score_maps`) and tabulating scores per method
(:func:`metrics_table`, :func:`table_markdown`).

A metric scores attribution maps: ``Metric.evaluate(model, inputs, maps, targets, masks=...)``
returns one number per map. Like techniques, a metric class has a public ``name``, a ``Params``
dataclass (its config schema) and one method to implement, :meth:`Metric.compute`. It declares
what it needs besides the maps in ``requires``: ``"mask"`` (a ground-truth object mask per
item, for localisation metrics) and ``"attributor"`` (the technique that made the maps, for
metrics that explain other inputs or other models, like max-sensitivity and the randomisation
sanity check).

What does not live here: the built-in metrics (``plugins/metrics.py``), running experiments
(:mod:`xai_core.runner.run`) and the ground-truth benchmark
(``xai_core_plugins.groundtruth.benchmark``).
"""

from __future__ import annotations

import abc
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from xai_core.contracts.attributor import Attributor
from xai_core.contracts.checks import HookGuard
from xai_core.contracts.model import ModelHandle, as_model_handle
from xai_core.contracts.target_kinds import TargetKind, active_columns, target_scope
from xai_core.contracts.technique import Technique, grad_ready
from xai_core.errors import InputError, PluginError, XaiError
from xai_core.nn.hooks import HookRecorder, model_state

__all__ = [
    "Metric",
    "MetricContext",
    "MetricResult",
    "REQUIREMENTS",
]

#: What a metric may need besides model, inputs, maps and targets.
REQUIREMENTS = ("mask", "attributor")


@dataclass
class MetricResult:
    """One score per map, and what the metric reports about each.

    :ivar scores: float tensor ``[N]`` on the CPU; ``nan`` where the score is undefined for an
        item (a localisation metric on an image without object, say).
    :ivar metric: the metric's registered name.
    :ivar higher_is_better: the direction of the score, for tables and plots.
    :ivar details: one dict per item with anything beyond the score (curves, per-layer values);
        JSON-serialisable.
    :ivar metadata: run-level facts (parameters, seconds).
    """

    scores: Tensor
    metric: str
    higher_is_better: bool
    details: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.scores.shape[0]


@dataclass
class MetricContext:
    """What :meth:`Metric.compute` gets besides the model, inputs, maps and targets.

    :ivar handle: the model handle (preprocessing: ``handle.normalize`` / ``denormalize``).
    :ivar masks: ground-truth masks ``[N, H, W]`` (bool, on the model's device) when given.
    :ivar attributor: the technique that made the maps, when given.
    :ivar generator: the only source of randomness a metric should use, seeded per call, so a
        metric's score is reproducible.
    :ivar metadata: put run-level facts here.
    """

    handle: ModelHandle
    masks: Tensor | None = None
    attributor: Attributor | None = None
    generator: torch.Generator = field(default_factory=torch.Generator)
    metadata: dict[str, Any] = field(default_factory=dict)

    def explain(self, inputs: Tensor, targets: Tensor, module: nn.Module | None = None) -> Tensor:
        """Maps ``[N, H, W]`` of the attributor on other ``inputs`` (or another ``module``).

        The result is on the device of ``inputs``. ``module`` replaces the model (a randomised
        copy, say) while keeping the handle's preprocessing and class names.
        """
        if self.attributor is None:
            raise XaiError("this metric needs the attributor that made the maps")
        handle = self.handle
        if module is not None:
            handle = dataclasses.replace(handle, module=module)
        columns = targets.tolist()
        result = self.attributor.attribute(handle, inputs, active_columns(columns) or columns)
        return result.maps.to(inputs.device)


def direction_problem(metric: type) -> str | None:
    """What is wrong with ``metric.higher_is_better`` (unset or not a bool), or ``None``."""
    value = getattr(metric, "higher_is_better", None)
    if isinstance(value, bool):
        return None
    found = "does not set it" if value is None else f"sets it to {value!r}"
    return (
        f"{metric.__qualname__}.higher_is_better {found}; set higher_is_better = True or False "
        "(the score's direction, for tables)"
    )


class Metric(Technique):
    """Scores attribution maps: ``evaluate(model, inputs, maps, targets)`` -> one score per map.

    Subclasses set ``name``, ``Params``, ``higher_is_better`` and ``requires`` (a subset of
    :data:`REQUIREMENTS`), and implement :meth:`compute`. Parameter validation is the one
    techniques use (a metric is built from a mapping or its ``Params``, unknown keys and wrong
    types are rejected); everything else (shape checks, requirements, model mode and device,
    seeding) is done here, identically for every metric.
    """

    kind: ClassVar[str] = "metric"
    #: Required, no default: a score's direction is never a safe guess (tables mark the best).
    higher_is_better: ClassVar[bool]
    requires: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def check_class(cls, technique: type, plugin: str) -> None:
        super().check_class(technique, plugin)
        problem = direction_problem(technique)
        if problem:
            raise PluginError(f"plugin {plugin!r}: {problem}")
        unknown = set(getattr(technique, "requires", ())) - set(REQUIREMENTS)
        if unknown:
            raise PluginError(
                f"plugin {plugin!r}: {technique.__qualname__}.requires has "
                f"{', '.join(sorted(unknown))}; metrics may require {', '.join(REQUIREMENTS)}"
            )

    def evaluate(
        self,
        model: ModelHandle | nn.Module,
        inputs: Tensor,
        maps: Tensor,
        targets: Tensor | Sequence[Any],
        *,
        kind: TargetKind | None = None,
        masks: Tensor | None = None,
        attributor: Attributor | None = None,
        seed: int = 0,
    ) -> MetricResult:
        """Score ``maps`` (``[N, H, W]``) computed on normalized ``inputs`` for ``targets``.

        :param model: a handle or plain module (the model the maps explain).
        :param inputs: the normalized batch ``[N, C, H, W]`` the maps were computed on.
        :param maps: ``[N, H, W]`` at input resolution.
        :param targets: ``[N]`` class indices the maps explain; with ``kind``, each map's target
            in the kind's own terms (:attr:`~xai_core.Attribution.target_choices`).
        :param kind: the :class:`~xai_core.TargetKind` the maps explain (``None``: classes); the
            metric then reads the kind's score (and its probability, where it has one).
        :param masks: ``[N, H, W]`` ground-truth object masks (needed if ``"mask"`` is required).
        :param attributor: the technique that made the maps (needed if ``"attributor"`` is).
        :param seed: seeds the metric's random perturbations.
        """
        handle = as_model_handle(model)
        inputs, maps, targets, masks = self._check(inputs, maps, targets, masks, attributor, kind)
        handle.check_channels(inputs, "metric inputs")
        start = time.perf_counter()
        module = handle.module
        owner = self.describe()
        with torch.inference_mode(False), model_state(module) as device, HookGuard(module) as guard:
            generator = torch.Generator(device=device)
            generator.manual_seed(seed)
            context = MetricContext(
                handle=handle,
                masks=None if masks is None else masks.to(device),
                attributor=attributor,
                generator=generator,
            )
            x = grad_ready(inputs.to(device))
            choices = None if kind is None else [[t] for t in targets]
            with HookRecorder() as hooks, target_scope(kind, handle, hooks, x, choices) as scope:
                if scope is not None:
                    targets = torch.tensor([c[0] for c in scope.columns()], dtype=torch.long)
                out = self.compute(module, x, grad_ready(maps.to(device)), targets.to(device),
                                   context)
        guard.check(owner)
        scores, details = out if isinstance(out, tuple) else (out, None)
        if not isinstance(scores, Tensor) or tuple(scores.shape) != (len(inputs),):
            got = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
            raise PluginError(
                f"{owner} returned scores of shape {got}; the contract is [N], "
                f"here [{len(inputs)}]"
            )
        if scores.isinf().any():
            raise PluginError(f"{owner} returned infinite scores; use nan for an undefined score")
        if details is None:
            details = [{} for _ in range(len(inputs))]
        if len(details) != len(inputs):
            raise PluginError(
                f"{owner} returned {len(details)} details for {len(inputs)} maps; the contract "
                "is one dict per map"
            )
        metadata = {"params": dataclasses.asdict(self.params), **context.metadata}
        metadata["seconds"] = time.perf_counter() - start
        return MetricResult(
            scores=scores.detach().double().cpu(),
            metric=self.name,
            higher_is_better=self.higher_is_better,
            details=list(details),
            metadata=metadata,
        )

    def _check(self, inputs, maps, targets, masks, attributor, kind=None):
        if not isinstance(inputs, Tensor) or inputs.ndim != 4 or inputs.shape[1] < 1:
            shape = tuple(inputs.shape) if isinstance(inputs, Tensor) else type(inputs).__name__
            raise InputError(f"metric inputs must be a normalized batch [N,C,H,W]; got {shape}")
        expected = (inputs.shape[0], inputs.shape[2], inputs.shape[3])
        if not isinstance(maps, Tensor) or tuple(maps.shape) != expected:
            shape = tuple(maps.shape) if isinstance(maps, Tensor) else type(maps).__name__
            raise InputError(
                f"metric {self.name!r}: maps must be [N, H, W] at input resolution, here "
                f"{expected}; got {shape}"
            )
        if kind is None:
            targets = torch.as_tensor(targets, dtype=torch.long).flatten()
        else:
            targets = targets.tolist() if isinstance(targets, Tensor) else list(targets)
        if len(targets) != inputs.shape[0]:
            raise InputError(
                f"metric {self.name!r}: {len(targets)} targets for {inputs.shape[0]} inputs"
            )
        if "mask" in self.requires:
            if masks is None:
                raise XaiError(
                    f"metric {self.name!r} needs a ground-truth object mask per image: in "
                    "`xai run`, set `masks:` in the config to the folder of mask images (or map "
                    "each input to its mask; docs/masks.md); `xai benchmark` brings its own; "
                    "from code, pass masks=[N, H, W]"
                )
            if tuple(masks.shape) != expected:
                raise InputError(
                    f"metric {self.name!r}: masks must be [N, H, W] = {expected}; "
                    f"got {tuple(masks.shape)}"
                )
            masks = masks.bool()
        if "attributor" in self.requires and attributor is None:
            raise XaiError(
                f"metric {self.name!r} re-runs the explanation, so it needs the attributor that "
                "made the maps; it cannot score maps of unknown origin"
            )
        return inputs.detach().float(), maps.detach().float(), targets, masks

    @abc.abstractmethod
    def compute(
        self,
        model: nn.Module,
        inputs: Tensor,
        maps: Tensor,
        targets: Tensor,
        context: MetricContext,
    ) -> Tensor | tuple[Tensor, list[dict[str, Any]]]:
        """Return scores ``[N]`` (and optionally one details dict per item).

        Everything is on the model's device; the model is in eval mode with frozen parameters
        and gradients enabled, also when the caller is in ``torch.inference_mode()`` (wrap pure
        forward passes in ``torch.no_grad()``). Scores are ``nan`` where undefined, never
        infinite; the base class fails the call, naming the plugin, on broken results or a torch
        hook left on the model.
        """


