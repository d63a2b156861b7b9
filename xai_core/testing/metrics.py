"""Contract checks of metrics: one function per check, in one ordered table
(:data:`METRIC_TABLE`) that :func:`check_metric` runs, the docs list and the tests read."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from xai_core.contracts.attributor import Attributor
from xai_core.contracts.metric import REQUIREMENTS, Metric, MetricResult, direction_problem
from xai_core.contracts.model import ModelHandle
from xai_core.contracts.technique import AttributionContext
from xai_core.errors import XaiError
from xai_core.nn.gradients import input_gradients
from xai_core.testing.common import (
    HOOKS_CHECK,
    STATE_CHECK,
    Check,
    ModelWatch,
    Reference,
    check_names,
    default_targets,
    run_technique_checks,
    technique_and_model,
)


class _ReferenceSaliency(Attributor):
    """The attributor :func:`check_metric` gives a metric that requires one: absolute input
    gradients summed over channels, defined here so the check needs no plugin installed."""

    name = "testing_saliency"

    def compute(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        return input_gradients(model, inputs, targets).abs().sum(dim=1)


def _default_masks(n: int, height: int, width: int) -> Tensor:
    """A centred box covering a quarter of each image: a plausible object mask."""
    masks = torch.zeros(n, height, width, dtype=torch.bool)
    masks[:, height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = True
    return masks


def _same_scores(a: Tensor, b: Tensor) -> bool:
    """Equal, with ``nan`` (an undefined score) equal to ``nan``."""
    return a.shape == b.shape and bool(((a == b) | (a.isnan() & b.isnan())).all())


@dataclass
class _MetricRun:
    """What the metric checks look at; :attr:`first` is the first call's result."""

    method: Metric
    handle: ModelHandle
    inputs: Tensor
    maps: Tensor
    targets: list[int]
    given: dict[str, Any]
    seed: int
    watch: ModelWatch
    reference: Reference = field(default_factory=Reference)

    @property
    def requires(self) -> tuple[str, ...]:
        return tuple(getattr(self.method, "requires", ()))

    def call(self, **overrides: Any) -> MetricResult:
        kwargs = {**self.given, **overrides}
        return self.method.evaluate(
            self.handle, self.inputs, self.maps, self.targets, seed=self.seed, **kwargs
        )

    @property
    def first(self) -> MetricResult:
        return self.reference.result()


def _metric_declares(run: _MetricRun) -> list[str]:
    problem = direction_problem(type(run.method))
    unknown = sorted(set(run.requires) - set(REQUIREMENTS))
    out = [problem] if problem else []
    if unknown:
        out.append(f"requires has {unknown}, not among {', '.join(REQUIREMENTS)}")
    return out


def _metric_shapes(run: _MetricRun) -> list[str]:
    first, n = run.first, run.inputs.shape[0]
    if not isinstance(first, MetricResult):
        return [f"evaluate returned {type(first).__name__}, not a MetricResult"]
    out = []
    if tuple(first.scores.shape) != (n,):
        out.append(f"scores are {tuple(first.scores.shape)}, expected ({n},)")
    if not first.scores.is_floating_point():
        out.append(f"scores are {first.scores.dtype}, expected a floating-point type")
    if len(first.details) != n:
        out.append(f"{len(first.details)} details for {n} maps")
    return out


def _metric_finite(run: _MetricRun) -> list[str]:
    scores = run.first.scores
    out = []
    if torch.isinf(scores).any():
        out.append("scores contain infinity (use nan for an undefined score)")
    if scores.isnan().all():
        out.append("every score is nan (undefined) on the check's inputs")
    return out


def _metric_determinism(run: _MetricRun) -> list[str]:
    first = run.first.scores  # before the second call: not run when the first one failed
    same = _same_scores(run.call().scores, first)
    return [] if same else ["same seed, different scores"]


def _metric_requires(run: _MetricRun) -> list[str]:
    out = []
    for need, keyword in (("mask", "masks"), ("attributor", "attributor")):
        if need not in run.requires:
            if run.given[keyword] is not None:
                # Undeclared needs must not be needed: the run gives only what is declared.
                run.call(**{keyword: None})
            continue
        try:
            run.call(**{keyword: None})
        except XaiError:
            continue
        out.append(f"declares {need!r} but evaluate ran without it")
    return out


#: The metric contract, in the order :func:`check_metric` runs it by default.
METRIC_TABLE: tuple[Check[_MetricRun], ...] = (
    Check(
        "declares",
        _metric_declares,
        "`higher_is_better` set to `True` or `False`, `requires` a subset of "
        "`(\"mask\", \"attributor\")`",
    ),
    Check("shapes", _metric_shapes, "a `MetricResult` with floating-point scores `[N]`, one "
          "details dict per map"),
    Check("finite", _metric_finite, "no infinity; `nan` only where a score is undefined"),
    Check("determinism", _metric_determinism, "two calls with one seed give the same scores"),
    Check(
        "requires",
        _metric_requires,
        "what `requires` declares is refused when missing, nothing undeclared is needed",
    ),
    HOOKS_CHECK,
    STATE_CHECK,
)
METRIC_CHECKS = check_names(METRIC_TABLE)


def check_metric(
    metric: str | type | Metric,
    *,
    params: Mapping[str, Any] | None = None,
    model: ModelHandle | nn.Module | None = None,
    inputs: Tensor | None = None,
    maps: Tensor | None = None,
    targets: list[int] | None = None,
    masks: Tensor | None = None,
    attributor: Attributor | None = None,
    checks: Iterable[str] = METRIC_CHECKS,
    seed: int = 0,
) -> None:
    """Raise :class:`ContractError` unless ``metric`` keeps the metric contract.

    :param metric: a registered name, a :class:`Metric` subclass, or an instance.
    :param params: parameters when ``metric`` is a name or class.
    :param model: defaults to :class:`TinyNet` (10 classes), so a metric that makes many
        forward passes is still checked in well under a second.
    :param inputs: defaults to 3 random normalized images ``[3, 3, 48, 48]``.
    :param maps: defaults to random maps ``[N, H, W]`` in ``[0, 1]``.
    :param targets: one class per input (defaults to ``0, 1, 2, ...``).
    :param masks: ground-truth masks; default: a centred box, given only if ``requires`` has
        ``"mask"``.
    :param attributor: default: input-gradient saliency, given only if ``requires`` has
        ``"attributor"``.
    :param checks: a subset of :data:`METRIC_CHECKS`.
    """
    method, handle = technique_and_model(Metric, metric, params, model)
    generator = torch.Generator().manual_seed(seed)
    if inputs is None:
        inputs = torch.randn(3, 3, 48, 48, generator=generator)
    n, height, width = inputs.shape[0], inputs.shape[2], inputs.shape[3]
    if maps is None:
        maps = torch.rand(n, height, width, generator=generator)
    requires = tuple(getattr(method, "requires", ()))
    if masks is None and "mask" in requires:
        masks = _default_masks(n, height, width)
    if attributor is None and "attributor" in requires:
        attributor = _ReferenceSaliency()
    run = _MetricRun(
        method,
        handle,
        inputs,
        maps,
        list(targets) if targets is not None else default_targets(handle, n),
        {"masks": masks, "attributor": attributor},
        seed,
        ModelWatch(handle.module, inputs),
    )
    run_technique_checks(run, run.call, "evaluate", METRIC_TABLE, checks)
