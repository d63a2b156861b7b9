"""Contract checks of metrics."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from xai_core.contracts.attributor import Attributor
from xai_core.contracts.metric import REQUIREMENTS, Metric, MetricResult
from xai_core.contracts.model import ModelHandle, as_model_handle
from xai_core.contracts.technique import AttributionContext
from xai_core.errors import XaiError
from xai_core.nn.gradients import input_gradients
from xai_core.testing.common import (
    METRIC_CHECKS,
    ContractError,
    compare_state,
    default_model,
    hook_count,
    resolve_technique,
    run_checks,
    state_snapshot,
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

    method = resolve_technique(Metric, metric, params)
    label = method.name or type(method).__name__
    handle = as_model_handle(model) if model is not None else default_model()
    generator = torch.Generator().manual_seed(seed)
    if inputs is None:
        inputs = torch.randn(3, 3, 48, 48, generator=generator)
    n, height, width = inputs.shape[0], inputs.shape[2], inputs.shape[3]
    if maps is None:
        maps = torch.rand(n, height, width, generator=generator)
    targets = (
        list(targets) if targets is not None else [i % (handle.num_classes or 2) for i in range(n)]
    )
    requires = tuple(getattr(method, "requires", ()))
    if masks is None and "mask" in requires:
        masks = _default_masks(n, height, width)
    if attributor is None and "attributor" in requires:
        attributor = _ReferenceSaliency()
    given = {"masks": masks, "attributor": attributor}
    module = handle.module

    def call(**overrides: Any) -> MetricResult:
        kwargs = {**given, **overrides}
        return method.evaluate(handle, inputs, maps, targets, seed=seed, **kwargs)

    with torch.no_grad():
        logits_before = module(inputs)
    before = state_snapshot(module)
    hooks_before = hook_count(module)
    try:
        first = call()
    except Exception as exc:
        raise ContractError(f"{label}: evaluate raised {type(exc).__name__}: {exc}") from exc

    def check(name: str) -> list[str]:
        scores = first.scores
        out: list[str] = []
        if name == "shapes":
            if not isinstance(first, MetricResult):
                return [f"shapes: evaluate returned {type(first).__name__}, not a MetricResult"]
            if tuple(scores.shape) != (n,):
                out.append(f"shapes: scores are {tuple(scores.shape)}, expected ({n},)")
            if not scores.is_floating_point():
                out.append(f"shapes: scores are {scores.dtype}, expected a floating-point type")
            if len(first.details) != n:
                out.append(f"shapes: {len(first.details)} details for {n} maps")
        elif name == "finite":
            if torch.isinf(scores).any():
                out.append("finite: scores contain infinity (use nan for an undefined score)")
            if scores.isnan().all():
                out.append("finite: every score is nan (undefined) on the check's inputs")
        elif name == "determinism":
            if not _same_scores(call().scores, scores):
                out.append("determinism: same seed, different scores")
        elif name == "requires":
            unknown = sorted(set(requires) - set(REQUIREMENTS))
            if unknown:
                out.append(f"requires: {unknown} are not among {', '.join(REQUIREMENTS)}")
            for need, keyword in (("mask", "masks"), ("attributor", "attributor")):
                if need in requires:
                    try:
                        call(**{keyword: None})
                    except XaiError:
                        continue
                    out.append(f"requires: declares {need!r} but evaluate ran without it")
                elif given[keyword] is not None:
                    # Undeclared needs must not be needed: the run gives only what is declared.
                    call(**{keyword: None})
        elif name == "hooks":
            left = hook_count(module) - hooks_before
            if left:
                out.append(f"hooks: {left} torch hook(s) left on the model")
        elif name == "state":
            out.extend(compare_state(before, state_snapshot(module)))
            with torch.no_grad():
                if not torch.equal(module(inputs), logits_before):
                    out.append("state: the model's logits changed after the call")
        return out

    problems = run_checks(checks, METRIC_CHECKS, check)
    if problems:
        raise ContractError(f"{label}: " + "; ".join(problems))
