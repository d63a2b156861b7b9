"""Gradient SHAP (``gradient_shap``): expected gradients over a distribution of baselines, with
optional input noise, on :class:`xai_core.GradientAttributor`.

Lundberg, Lee 2017, "A Unified Approach to Interpreting Model Predictions", NeurIPS,
arXiv:1705.07874 (SHAP's ``GradientExplainer``); Erion, Janizek, Sturmfels, Lundberg, Lee 2021,
"Improving performance of deep learning models with axiomatic attribution priors and expected
gradients", Nature Machine Intelligence, arXiv:1906.10670. Captum's ``GradientShap`` computes
the same estimator; the baseline set is DeepLIFT-SHAP's
(:class:`xai_core.families.gradient.ReferenceSetAttributor`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from xai_core import AttributionContext
from xai_core.contracts.params import setting
from xai_core.families.gradient import ReferenceSetAttributor
from xai_core.nn.gradients import input_gradients

__all__ = ["GradientShap"]


class GradientShap(ReferenceSetAttributor):
    """Gradient SHAP: ``mean_s (x + e_s - b_s) * grad F(b_s + a_s (x + e_s - b_s))`` over
    ``samples`` draws of a reference ``b_s`` (uniformly from the set), a point ``a_s`` (uniform
    in [0, 1]) on the path to the input and Gaussian noise ``e_s`` of standard deviation
    ``stdev``: an estimate of integrated gradients averaged over the references, whose sum
    approaches ``F(x) - E[F(b)]`` as ``samples`` grows.

    The reference set is DeepLIFT-SHAP's (``baselines`` and ``uniform_count``, see
    ``deeplift_shap``); a tensor ``[B, C, H, W]`` may be given from Python
    (``GradientShap(baselines=tensor)``). The draws come from ``seed`` once per call
    (:meth:`draws`) and are shared by the items of the batch, so an item's map does not depend on
    the rest of the batch. With the same draws it equals Captum's ``GradientShap`` (``stdevs`` =
    ``stdev``, ``n_samples`` = ``samples``).
    """

    name = "gradient_shap"
    summary = "expected gradients over a baseline distribution, with noise (signed, sum)"
    paper = "Lundberg, Lee 2017, arXiv:1705.07874; Erion et al. 2021, arXiv:1906.10670"

    @dataclass
    class Params(ReferenceSetAttributor.Params):
        # The base's seed, declared again for what it seeds here (it keeps its place).
        #: Seed of the draws and of the first ``uniform`` image.
        seed: int = 0
        #: Draws (reference, point on the path, noise) per input.
        samples: int = field(default=20, metadata={"min": 1})
        #: Standard deviation of the Gaussian noise added to the input, in normalized input space
        #: (Captum's ``stdevs``); 0 (default) adds none.
        stdev: float = field(default=0.0, metadata={"min": 0})
        #: Draws per forward/backward pass, over all items: bounds memory, not results.
        batch_size: int = setting(16, min=1)

    def draws(self, count: int, shape: tuple[int, ...]) -> tuple[Tensor, Tensor, Tensor]:
        """The random draws of one call, from ``seed`` on the CPU: reference indices ``[S]`` into
        a set of ``count``, path points ``[S]`` in [0, 1] and standard normal noise ``[S,
        *shape]`` (before scaling by ``stdev``), ``S`` = ``samples``."""
        p = self.params
        generator = torch.Generator().manual_seed(p.seed)
        indices = torch.randint(count, (p.samples,), generator=generator)
        alphas = torch.rand(p.samples, generator=generator)
        noise = torch.randn((p.samples, *shape), generator=generator)
        return indices, alphas, noise

    def input_attributions(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        p = self.params
        references = self.reference_set(inputs, context)
        indices, alphas, noise = self.draws(references.shape[1], tuple(inputs.shape[1:]))
        indices, alphas = indices.to(inputs.device), alphas.to(inputs)
        noise = noise.to(inputs) * p.stdev
        n, samples = len(inputs), p.samples
        total = torch.zeros_like(inputs)
        # Rows input-major (Captum's order); chunks bound memory only.
        for start in range(0, n * samples, p.batch_size):
            row = torch.arange(start, min(start + p.batch_size, n * samples), device=inputs.device)
            item, draw = row // samples, row % samples
            noisy = inputs[item] + noise[draw]
            b = references[item if references.shape[0] > 1 else 0, indices[draw]]
            a = alphas[draw].view(-1, 1, 1, 1)
            # Captum's expression for the point, for the same rounding.
            points = a * noisy + (1.0 - a) * b
            grads = input_gradients(model, points, targets[item], p.channels_last)
            total.index_add_(0, item, (noisy - b) * grads)
        return total / samples
