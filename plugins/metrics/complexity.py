"""How concentrated a map is, whatever the model: ``sparseness`` (the Gini index of the absolute
map; Chalasani, Chen, Chowdhury, Wu, Jha, "Concise Explanations of Neural Networks using
Adversarial Training", ICML 2020) and ``complexity`` (the entropy of the absolute
map's share per pixel; Bhatt, Weller, Moura, "Evaluating and Aggregating Feature-based Model
Explanations", IJCAI 2020).

Neither looks at the model: they say whether a map is concise, not whether it is right, and are
meant to be read beside a faithfulness or localisation metric. Both agree with Quantus 0.6's
``Sparseness`` and ``Complexity`` (its defaults ``abs=True, normalise=True``) to 1e-5
(``tests/plugins/metrics/test_quantus.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from xai_core.contracts.metric import Metric, MetricContext

__all__ = ["Complexity", "Sparseness", "gini_index", "share_entropy"]


def gini_index(maps: Tensor) -> Tensor:
    """Gini index of each absolute map ``[N, H, W]`` -> ``[N]`` in float64: 0 when every pixel
    holds the same value, ``1 - 1/P`` when one of the ``P`` pixels holds everything; ``nan`` for
    a map that is zero everywhere."""
    values = maps.abs().flatten(1).double().sort(dim=1).values
    pixels = values.shape[1]
    weights = 2 * torch.arange(1, pixels + 1, device=maps.device, dtype=torch.float64) - pixels - 1
    total = values.sum(dim=1)
    gini = (values * weights).sum(dim=1) / (pixels * torch.where(total > 0, total, 1.0))
    return torch.where(total > 0, gini, math.nan)


def share_entropy(maps: Tensor) -> Tensor:
    """Entropy (nats) of each absolute map's distribution over pixels ``[N, H, W]`` -> ``[N]``:
    0 when one pixel holds everything, ``log P`` for a constant map; ``nan`` for a zero map."""
    values = maps.abs().flatten(1).double()
    total = values.sum(dim=1, keepdim=True)
    share = values / torch.where(total > 0, total, 1.0)
    entropy = -torch.special.xlogy(share, share).sum(dim=1)
    return torch.where(total.squeeze(1) > 0, entropy, math.nan)


class _MapOnly(Metric):
    """A metric of the map alone, :meth:`score` (a function of the maps, set by each subclass);
    the model, inputs and targets are not used."""

    @dataclass
    class Params:
        pass

    def compute(self, model: nn.Module, inputs: Tensor, maps: Tensor, targets: Tensor,
                context: MetricContext) -> Tensor:
        return self.score(maps)

    def score(self, maps: Tensor) -> Tensor:
        raise NotImplementedError


class Sparseness(_MapOnly):
    """Gini index of the absolute map: 1 for a single hot pixel, 0 for a uniform map.

    Quantus's ``Sparseness`` adds ``1e-7`` to every value after scaling by the maximum; we leave
    it out, so that a zero map is ``nan`` (undefined) rather than 0. Because Quantus scales the
    whole batch by one maximum, its score of a map much weaker than the others in its batch
    moves by up to about 1e-4 with them; with each map scaled by its own maximum
    (``normalise_func_kwargs={"normalise_axes": (1, 2, 3)}``) the two agree to 1e-5.
    """

    name = "sparseness"
    summary = "Gini index of the absolute map: how few pixels hold its mass (higher: sparser)"
    paper = "Chalasani et al. 2020, Concise explanations, arXiv:1810.06583"
    higher_is_better = True

    score = staticmethod(gini_index)


class Complexity(_MapOnly):
    """Entropy of the absolute map's share per pixel: 0 for a single hot pixel, ``log P`` (nats)
    for a uniform map of ``P`` pixels (10.8 at 224x224, 8.3 at 64x64).

    Quantus's ``Complexity`` computes ``-sum(s log(s + 1e-12))``, which differs from the entropy
    by less than ``P * 1e-12``; we use ``0 log 0 = 0`` instead. Scores of maps of different sizes
    are not comparable (the maximum is ``log P``).
    """

    name = "complexity"
    summary = "entropy of the absolute map's share per pixel (lower: more concise)"
    paper = "Bhatt, Weller, Moura 2020, arXiv:2005.00631"
    higher_is_better = False

    score = staticmethod(share_entropy)
