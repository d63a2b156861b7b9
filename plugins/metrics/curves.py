"""Faithfulness by perturbation curves: ``deletion`` and ``insertion`` (Petsiuk, Das, Saenko,
"RISE: Randomized Input Sampling for Explanation of Black-box Models", BMVC 2018, section 4.1).

Pixels are removed (replaced by a baseline) or inserted (into a blurred image) in order of
attribution, in ``steps`` equal steps; the target's probability is tracked and the area under the
curve is the score. The fills are baselines of the shared vocabulary (:mod:`xai_core.nn.images`).
Also home of :func:`model_outputs` and :func:`pixel_ranks`, which the other metric modules use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from xai_core.contracts.metric import Metric, MetricContext
from xai_core.contracts.params import setting
from xai_core.contracts.target_kinds import target_probabilities
from xai_core.nn.gradients import class_scores
from xai_core.nn.images import baseline_inputs, check_baseline
from xai_core.nn.progress import progress_bar

__all__ = [
    "FILLS",
    "OUTPUTS",
    "Deletion",
    "Insertion",
    "curve_auc",
    "model_outputs",
    "perturbation_curves",
    "pixel_ranks",
]

#: The explained output of a model: the target's softmax ``probability`` or its ``logit``.
OUTPUTS = ("probability", "logit")
#: The baselines of :data:`xai_core.nn.images.BASELINES` that deleted pixels become (or that
#: inserted pixels go into). ``zero`` was renamed ``zeros``.
FILLS = ("zeros", "blur", "mean")


def model_outputs(model: nn.Module, inputs: Tensor, targets: Tensor, output: str) -> Tensor:
    """The target's probability or logit for each input, ``[N]``, without gradients (the
    probability of a target kind is its own: :func:`~xai_core.contracts.target_kinds.
    target_probabilities`)."""
    with torch.no_grad():
        logits = model(inputs)
    if output == "probability":
        logits = target_probabilities(logits)
    return class_scores(logits, targets)


def pixel_ranks(maps: Tensor) -> Tensor:
    """Each pixel's position when pixels are sorted by attribution, highest first: ``[N, P]``.

    Ties keep raster order (a stable sort), so a constant map removes pixels row by row.
    """
    flat = maps.flatten(1)
    order = torch.argsort(flat, dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    positions = torch.arange(flat.shape[1], device=flat.device).expand_as(order)
    ranks.scatter_(1, order, positions)
    return ranks


def perturbation_curves(
    model: nn.Module,
    inputs: Tensor,
    maps: Tensor,
    targets: Tensor,
    *,
    start: Tensor,
    end: Tensor,
    steps: int,
    output: str,
    batch_size: int,
    progress: str | None = None,
) -> Tensor:
    """Curves ``[N, steps + 1]``: the output as pixels change from ``start`` to ``end`` in order.

    At step ``k`` the ``round(k * P / steps)`` highest-attributed pixels hold ``end``'s values and
    the rest ``start``'s. Deletion is ``start = inputs, end = baseline``; insertion is
    ``start = blurred, end = inputs``. The steps of all images form one stream cut into batches
    of ``batch_size``, so memory is bounded and every batch is full.
    """
    n, _, height, width = inputs.shape
    pixels = height * width
    ranks = pixel_ranks(maps)
    counts = torch.round(torch.arange(steps + 1, device=inputs.device) * pixels / steps).long()
    total = n * (steps + 1)
    values = torch.empty(total, device=inputs.device)
    bar = progress_bar(total, progress or "", enabled=progress is not None)
    for first in range(0, total, batch_size):
        rows = torch.arange(first, min(first + batch_size, total), device=inputs.device)
        image, step = rows // (steps + 1), rows % (steps + 1)
        changed = (ranks[image] < counts[step][:, None]).view(-1, 1, height, width)
        batch = torch.where(changed, end[image], start[image])
        values[rows] = model_outputs(model, batch, targets[image], output)
        bar.update(len(rows))
    bar.close()
    return values.view(n, steps + 1)


def curve_auc(curves: Tensor) -> Tensor:
    """Trapezoidal area under curves ``[N, K]`` sampled at ``K`` equal steps over ``[0, 1]``."""
    inner = curves.sum(dim=1) - (curves[:, 0] + curves[:, -1]) / 2
    return inner / (curves.shape[1] - 1)


class _PerturbationCurve(Metric):
    """Shared by deletion and insertion: they differ only in which image is the start."""

    paper = "Petsiuk, Das, Saenko 2018, arXiv:1806.07421"

    @dataclass
    class Params:
        #: Number of equal steps between the start image and the end image.
        steps: int = field(default=100, metadata={"min": 1})
        #: Blur sigma and kernel size of the ``blur`` fill (the paper's 5 and 11: a kernel of
        #: 11 taps, radius 5, of the shared :func:`xai_core.nn.images.gaussian_blur`).
        blur_sigma: float = field(default=5.0, metadata={"min_exclusive": 0})
        blur_kernel: int = field(default=11, metadata={"min": 1})
        #: Track the target's softmax probability (the paper) or its logit.
        output: str = field(default="probability", metadata={"choices": OUTPUTS})
        #: Perturbed images per forward pass.
        batch_size: int = setting(128, min=1)

    def images(self, inputs: Tensor, context: MetricContext) -> tuple[Tensor, Tensor]:
        """The start and end images of the curve, ``[N, C, H, W]`` each."""
        raise NotImplementedError

    def fill(self, kind: str, inputs: Tensor, context: MetricContext) -> Tensor:
        """The fill ``kind`` (one of :data:`FILLS`) for ``inputs``, ``[N, C, H, W]``."""
        p = self.params
        fill = baseline_inputs(
            kind, inputs, context.handle, blur_sigma=p.blur_sigma, blur_radius=p.blur_kernel // 2
        )
        return fill.expand_as(inputs)

    def compute(self, model: nn.Module, inputs: Tensor, maps: Tensor, targets: Tensor,
                context: MetricContext) -> tuple[Tensor, list[dict[str, Any]]]:
        start, end = self.images(inputs, context)
        curves = perturbation_curves(
            model,
            inputs,
            maps,
            targets,
            start=start,
            end=end,
            steps=self.params.steps,
            output=self.params.output,
            batch_size=self.params.batch_size,
            progress=self.name,
        )
        details = [{"curve": [round(float(v), 6) for v in c]} for c in curves.cpu()]
        return curve_auc(curves), details


class Deletion(_PerturbationCurve):
    """Deletion AUC: lower means the map's top pixels matter more to the prediction."""

    name = "deletion"
    summary = "AUC of the target probability as top-attributed pixels are deleted (lower: better)"
    higher_is_better = False

    @dataclass
    class Params(_PerturbationCurve.Params):
        #: What deleted pixels become: normalized ``zeros`` (the paper), a ``blur``, the ``mean``.
        baseline: str = field(default="zeros", metadata={"choices": FILLS})

        def __post_init__(self) -> None:
            check_baseline(self.baseline, "baseline")

    def images(self, inputs: Tensor, context: MetricContext) -> tuple[Tensor, Tensor]:
        return inputs, self.fill(self.params.baseline, inputs, context)


class Insertion(_PerturbationCurve):
    """Insertion AUC: higher means the map's top pixels alone restore the prediction."""

    name = "insertion"
    summary = "AUC of the target probability as top-attributed pixels are inserted (higher: better)"
    higher_is_better = True

    @dataclass
    class Params(_PerturbationCurve.Params):
        #: The image pixels are inserted into: a strong ``blur`` (the paper), ``zeros``, ``mean``.
        start: str = field(default="blur", metadata={"choices": FILLS})

        def __post_init__(self) -> None:
            check_baseline(self.start, "start")

    def images(self, inputs: Tensor, context: MetricContext) -> tuple[Tensor, Tensor]:
        return self.fill(self.params.start, inputs, context), inputs
