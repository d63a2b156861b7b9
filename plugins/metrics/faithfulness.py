"""Faithfulness correlation, ``faithfulness_correlation`` (Bhatt, Weller, Moura, "Evaluating and
Aggregating Feature-based Model Explanations", IJCAI 2020): over random subsets of
pixels, does the map's total on the subset predict how much the output drops when the subset is
replaced by a baseline?
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from xai_core.contracts.metric import Metric, MetricContext
from xai_core.contracts.params import setting
from xai_core.errors import InputError
from xai_core.nn.images import baseline_inputs, check_baseline

from .curves import FILLS, OUTPUTS, model_outputs

__all__ = ["FaithfulnessCorrelation", "faithfulness_from_subsets", "pearson"]


def pearson(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation of each row of ``a`` with the same row of ``b`` (``[N, K]`` -> ``[N]``),
    in float64; ``nan`` where either row is constant (no correlation is defined)."""
    a = a.double() - a.double().mean(dim=1, keepdim=True)
    b = b.double() - b.double().mean(dim=1, keepdim=True)
    scale = a.norm(dim=1) * b.norm(dim=1)
    return torch.where(scale > 0, (a * b).sum(dim=1) / torch.where(scale > 0, scale, 1.0),
                       torch.nan)


def faithfulness_from_subsets(
    forward: Callable[[Tensor, Tensor], Tensor],
    inputs: Tensor,
    maps: Tensor,
    targets: Tensor,
    subsets: Tensor,
    fill: Tensor,
    batch_size: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Faithfulness correlation for given pixel subsets: ``(scores, sums, drops)``.

    :param forward: ``(inputs [B, C, H, W], targets [B]) -> [B]``, the explained output.
    :param subsets: ``[N, R, K]`` flat pixel indices (``row * W + column``), ``R`` runs of ``K``
        distinct pixels per image; a pixel is replaced on all channels.
    :param fill: ``[N, C, H, W]``, what replaced pixels become.
    :returns: ``scores`` ``[N]``: per image, the Pearson correlation over the runs between
        ``sums`` ``[N, R]`` (the map's total over the subset) and ``drops`` ``[N, R]`` (the
        output of the input minus the output with the subset replaced).
    """
    n, runs, _ = subsets.shape
    height, width = inputs.shape[2:]
    sums = maps.flatten(1).gather(1, subsets.flatten(1)).view(n, runs, -1).sum(dim=2)
    base = forward(inputs, targets)
    flat = subsets.flatten(0, 1)
    index = torch.arange(n, device=inputs.device).repeat_interleave(runs)
    outputs = torch.empty(n * runs, device=inputs.device)
    for first in range(0, len(flat), batch_size):
        rows = index[first : first + batch_size]
        chosen = torch.zeros(len(rows), height * width, dtype=torch.bool, device=inputs.device)
        chosen.scatter_(1, flat[first : first + batch_size], True)
        chosen = chosen.view(-1, 1, height, width)
        batch = torch.where(chosen, fill[rows], inputs[rows])
        outputs[first : first + batch_size] = forward(batch, targets[rows])
    drops = base[:, None] - outputs.view(n, runs)
    return pearson(sums, drops), sums, drops


class FaithfulnessCorrelation(Metric):
    """Correlation, over random pixel subsets, of the map's subset total with the output drop.

    Each of ``nr_runs`` runs replaces ``subset_size`` random pixels (all channels) with the
    ``baseline``; the score is the Pearson correlation between the map's sum over the subset and
    the drop of the target's output. 1 means the map adds up like the model, 0 that it says
    nothing about it; ``nan`` for a constant map.

    Against Quantus's ``FaithfulnessCorrelation`` (checked in
    ``tests/plugins/metrics/test_quantus.py`` on the same subsets, ``normalise=False``): Quantus
    draws ``subset_size`` input *elements* (a channel of a pixel each) and sums the map broadcast
    over the channels; we draw whole pixels, the unit a pixel map attributes, so our ``subset_size``
    pixels are Quantus's ``3 * subset_size`` elements of those pixels, and its subset sums are 3x
    ours (Pearson's correlation does not see the factor). Quantus's default baseline ``black`` is
    each image's minimum value; ``zeros`` here is its ``perturb_baseline=0.0``. Like Quantus's
    default (``softmax=False``), the output is the logit.
    """

    name = "faithfulness_correlation"
    summary = "correlation of the map's sum over random pixel subsets with the output drop " \
        "when they are removed (higher: better)"
    paper = "Bhatt, Weller, Moura 2020, arXiv:2005.00631"
    higher_is_better = True

    @dataclass
    class Params:
        #: Random subsets per image (Quantus's default 100).
        nr_runs: int = field(default=100, metadata={"min": 2})
        #: Pixels per subset (Quantus's default is 224 input elements).
        subset_size: int = field(default=224, metadata={"min": 1})
        #: What removed pixels become: normalized ``zeros``, a ``blur`` (deletion's: sigma 5, 11
        #: taps), the image's ``mean``.
        baseline: str = field(default="zeros", metadata={"choices": FILLS})
        #: The explained output: the target's ``logit`` (Quantus's default) or ``probability``.
        output: str = field(default="logit", metadata={"choices": OUTPUTS})
        #: Perturbed inputs per forward pass.
        batch_size: int = setting(128, min=1)

        def __post_init__(self) -> None:
            check_baseline(self.baseline, "baseline")

    def compute(self, model: nn.Module, inputs: Tensor, maps: Tensor, targets: Tensor,
                context: MetricContext) -> tuple[Tensor, list[dict[str, Any]]]:
        p = self.params
        n, _, height, width = inputs.shape
        pixels = height * width
        if p.subset_size >= pixels:
            raise InputError(
                f"metric {self.name!r}: subset_size {p.subset_size} is not below the {pixels} "
                f"pixels of a {height}x{width} image; set subset_size to a small share of them"
            )
        # A uniformly random subset: the positions of the K smallest of P uniform draws.
        draws = torch.rand(n, p.nr_runs, pixels, generator=context.generator,
                           device=inputs.device)
        subsets = draws.topk(p.subset_size, dim=2, largest=False).indices
        fill = baseline_inputs(p.baseline, inputs, context.handle, blur_sigma=5.0, blur_radius=5)
        scores, sums, drops = faithfulness_from_subsets(
            lambda x, t: model_outputs(model, x, t, p.output),
            inputs, maps, targets, subsets, fill.expand_as(inputs), p.batch_size,
        )
        details = [{"spread_of_drops": round(float(d.std()), 6)} for d in drops.cpu()]
        return scores, details
