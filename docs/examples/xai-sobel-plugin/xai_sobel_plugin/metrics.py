"""The ``edge_similarity`` metric: how much an explanation looks like a plain edge detector.

A map that correlates strongly with the image's edges may be explaining the image rather than
the model (Adebayo et al. 2018), so lower is better. The score is undefined (``nan``) for a
constant map, whose correlation with anything is 0/0.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

import xai_core

from .edges import sobel_magnitude


def _pearson(a: Tensor, b: Tensor) -> Tensor:
    """Correlation of each row of ``a`` with the same row of ``b`` (``[N, D]`` -> ``[N]``)."""
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    # 0/0 -> nan for a constant row: an undefined score, as the metric contract asks.
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1))


class EdgeSimilarity(xai_core.Metric):
    """Pearson correlation between each map and the Sobel edge magnitude of its image."""

    name = "edge_similarity"
    summary = "correlation of the map with the image's edges (lower: less edge-detector-like)"
    paper = "Adebayo et al. 2018, arXiv:1810.03292"
    higher_is_better = False

    @dataclass
    class Params:
        #: Compare absolute map values (the sign of an attribution says nothing about edges).
        absolute: bool = True

    def compute(self, model: nn.Module, inputs: Tensor, maps: Tensor, targets: Tensor,
                context: xai_core.MetricContext) -> Tensor:
        edges = sobel_magnitude(context.handle.denormalize(inputs))
        values = maps.abs() if self.params.absolute else maps
        return _pearson(values.flatten(1), edges.flatten(1))
