"""Kernel SHAP on superpixels (Lundberg, Lee 2017, "A Unified Approach to Interpreting Model
Predictions", NeurIPS, arXiv:1705.07874, theorem 2): Shapley values of the superpixels as the
coefficients of a weighted linear regression on coalitions.

Sampling and weights are Captum's ``KernelShap``: the full and the empty coalition first, with
weight ``10^6`` (standing in for the kernel's infinite weight, which pins the fit to
``f(x)`` and ``f(baseline)``), then coalitions whose size ``s`` is drawn with probability
proportional to ``(M - 1) / (s (M - s))`` and whose members are uniform among those of that size,
with weight 1: sampling by the Shapley kernel ``(M - 1) / (C(M, s) s (M - s))`` instead of
weighting by it. The fit is unpenalized least squares with an intercept (Captum's
``SkLearnLinearRegression``; here :func:`.fit.least_squares`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import SuperpixelImage, SurrogateAttributor
from .fit import fit_surrogate

__all__ = ["ENDPOINT_WEIGHT", "KernelShap", "kernel_shap_samples", "kernel_shap_weights"]

#: Weight of the full and the empty coalition (Captum's ``inf_weight``).
ENDPOINT_WEIGHT = 1e6


def kernel_shap_samples(count: int, features: int, generator: torch.Generator) -> Tensor:
    """``count`` coalitions ``[count, features]``: all ones, all zeros, then sizes drawn from the
    Shapley kernel's size distribution and members uniform given the size."""
    sizes = torch.arange(1, features, dtype=torch.float64)
    size_probs = (features - 1) / (sizes * (features - sizes))
    drawn = count - 2
    size = 1 + torch.multinomial(size_probs, max(drawn, 0), replacement=True, generator=generator)
    # A uniform subset of `size` members: the `size` largest of i.i.d. uniform draws.
    rank = torch.rand(max(drawn, 0), features, generator=generator).argsort(1).argsort(1)
    random = (rank >= features - size[:, None]).float()
    ends = torch.stack([torch.ones(features), torch.zeros(features)])
    return torch.cat([ends, random])[:count]


def kernel_shap_weights(samples: Tensor) -> Tensor:
    """Weights ``[n]``: :data:`ENDPOINT_WEIGHT` for the full and the empty coalition, 1 else."""
    kept = samples.sum(1)
    ends = (kept == 0) | (kept == samples.shape[1])
    return torch.where(ends, ENDPOINT_WEIGHT, 1.0).double()


class KernelShap(SurrogateAttributor):
    """Kernel SHAP: Shapley values of superpixels from a weighted regression on coalitions."""

    name = "kernel_shap"
    summary = "Shapley values of superpixels by weighted regression on coalitions (black-box)"
    paper = "Lundberg, Lee 2017, arXiv:1705.07874"

    def samples(self, count: int, features: int, generator: torch.Generator) -> Tensor:
        return kernel_shap_samples(count, features, generator)

    def sample_weights(self, part: SuperpixelImage) -> Tensor:
        return kernel_shap_weights(part.samples)

    def fit(self, samples: Tensor, scores: Tensor, weights: Tensor) -> Tensor:
        return fit_surrogate(samples, scores, weights, "linear")
