"""Localisation against a ground-truth object mask: ``pointing_game`` (Zhang, Bargal, Lin, Brandt,
Shen, Sclaroff, "Top-down Neural Attention by Excitation Backprop", IJCV 2018, section 5.1),
``relevance_mass`` and ``relevance_rank`` (Arras, Osman, Samek, "CLEVR-XAI: A benchmark dataset
for the ground truth evaluation of neural network explanations", Information Fusion 2022,
section 4.2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from xai_core.contracts.metric import Metric, MetricContext

from .curves import pixel_ranks

__all__ = ["PointingGame", "RelevanceMass", "RelevanceRank", "dilate"]


def dilate(masks: Tensor, radius: float) -> Tensor:
    """Masks grown by ``radius`` pixels (Euclidean distance), ``[N, H, W]`` bool."""
    from scipy.ndimage import distance_transform_edt

    grown = [
        distance_transform_edt(~m) <= radius if m.any() else np.zeros_like(m)
        for m in masks.cpu().numpy()
    ]
    return torch.from_numpy(np.stack(grown)).to(masks.device)


class _ObjectMetric(Metric):
    """A metric of the map against the ground-truth object mask: :meth:`score` gets the masks."""

    requires = ("mask",)

    def compute(self, model: nn.Module, inputs: Tensor, maps: Tensor, targets: Tensor,
                context: MetricContext) -> Tensor:
        assert context.masks is not None  # the base class checks ``requires``
        return self.score(maps, context.masks, context)

    def score(self, maps: Tensor, masks: Tensor, context: MetricContext) -> Tensor:
        """Scores ``[N]`` of ``maps`` ``[N, H, W]`` against ``masks`` (bool, same shape)."""
        raise NotImplementedError


class PointingGame(_ObjectMetric):
    """A hit when the map's maximum falls on the object (within the tolerance).

    Against Quantus 0.6's ``PointingGame`` (``tests/plugins/metrics/test_quantus.py``): with
    ``tolerance: 0`` and a single maximum the two agree exactly. They differ on purpose in three
    places. Quantus has no tolerance (Zhang et al. allow 15 pixels at 224x224, our default). With
    tied maxima Quantus scores a hit if any of them is on the object, so a constant map always hits;
    we score the share of maxima on the object, so a constant map scores chance. An empty mask is
    ``nan`` here; Quantus 0.6 assigns ``nan`` into a boolean array, which stores ``True``, so it
    reports a hit.
    """

    name = "pointing_game"
    higher_is_better = True
    summary = "1 if the map's maximum lies on the object, within a tolerance (higher: better)"
    paper = "Zhang et al. 2018, Top-down neural attention by excitation backprop, IJCV"

    @dataclass
    class Params:
        #: Tolerance in pixels at ``reference_size`` (15 at 224x224 in Zhang et al.); it scales
        #: with the image, so 64x64 images get 15 * 64 / 224 = 4.3 pixels.
        tolerance: float = field(default=15.0, metadata={"min": 0})
        reference_size: int = field(default=224, metadata={"min": 1})

    def score(self, maps: Tensor, masks: Tensor, context: MetricContext) -> Tensor:
        size = min(maps.shape[1:])
        radius = self.params.tolerance * size / self.params.reference_size
        context.metadata["tolerance_pixels"] = radius
        grown = dilate(masks, radius)
        # A map with several tied maxima scores the share of them that hit: a constant map then
        # scores the object's share of the image (chance), not a hit or miss by raster order.
        top = maps.flatten(1).max(dim=1, keepdim=True).values
        maxima = maps.flatten(1) == top
        hits = (maxima & grown.flatten(1)).sum(dim=1) / maxima.sum(dim=1)
        return torch.where(masks.flatten(1).any(dim=1), hits.double(), math.nan)


class RelevanceMass(_ObjectMetric):
    """Share of the map's positive relevance that lies on the object.

    Against Quantus 0.6's ``RelevanceMassAccuracy`` (``tests/plugins/metrics/test_quantus.py``,
    agreement to 1e-5): equal on non-negative maps, and ``absolute: true`` is its ``abs=True``. On
    signed maps Quantus sums the signed values inside and overall, so its score can leave ``[0, 1]``
    (or divide by a total near zero); we take the positive part as Arras et al. do, which is
    Quantus's score of the map clamped at zero.
    """

    name = "relevance_mass"
    higher_is_better = True
    summary = "share of positive relevance inside the object mask (higher: better)"
    paper = "Arras, Osman, Samek 2022, arXiv:2003.07258"

    @dataclass
    class Params:
        #: Use absolute values instead of the positive part (for maps whose sign is arbitrary).
        absolute: bool = False

    def score(self, maps: Tensor, masks: Tensor, context: MetricContext) -> Tensor:
        relevance = maps.abs() if self.params.absolute else maps.clamp(min=0)
        total = relevance.flatten(1).sum(dim=1).double()
        inside = (relevance * masks).flatten(1).sum(dim=1).double()
        defined = (total > 0) & masks.flatten(1).any(dim=1)
        return torch.where(defined, inside / torch.where(total > 0, total, 1.0), math.nan)


class RelevanceRank(_ObjectMetric):
    """Share of the ``K`` highest-ranked pixels on the object, ``K`` being the object's size.

    Agrees with Quantus 0.6's ``RelevanceRankAccuracy`` to 1e-5 (``absolute`` is its ``abs``;
    ``tests/plugins/metrics/test_quantus.py``) on maps without ties. Tied values are ranked in
    raster order here (a stable sort); Quantus's ``argsort`` breaks ties in an order numpy does not
    define.
    """

    name = "relevance_rank"
    higher_is_better = True
    summary = "share of the top-K pixels inside the mask, K = mask size (higher: better)"
    paper = "Arras, Osman, Samek 2022, arXiv:2003.07258"

    @dataclass
    class Params:
        #: Rank by absolute value instead of signed value.
        absolute: bool = False

    def score(self, maps: Tensor, masks: Tensor, context: MetricContext) -> Tensor:
        ranks = pixel_ranks(maps.abs() if self.params.absolute else maps)
        size = masks.flatten(1).sum(dim=1, keepdim=True)
        top = (ranks < size) & masks.flatten(1)
        score = top.sum(dim=1).double() / size.squeeze(1).clamp(min=1)
        return torch.where(size.squeeze(1) > 0, score, math.nan)
