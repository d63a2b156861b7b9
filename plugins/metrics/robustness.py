"""Robustness of a map to input perturbations: ``infidelity`` and ``max_sensitivity`` (Yeh, Hsieh,
Suggala, Inouye, Ravikumar, "On the (In)fidelity and Sensitivity of Explanations", NeurIPS 2019,
definitions 2.1 and 3.1), with Captum's parameter names (``n_perturb_samples``, ``normalize``,
``perturb_radius``, ``max_examples_per_batch``).

A pixel map applies to all three channels of its pixel wherever a metric needs an attribution
per input element (infidelity), which is what Captum computes when given the map expanded to
``[N, C, H, W]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from xai_core.contracts.metric import Metric, MetricContext

from .curves import OUTPUTS, model_outputs

__all__ = [
    "NORMS",
    "Infidelity",
    "MaxSensitivity",
    "infidelity_from_noise",
    "max_sensitivity_from_noise",
]


def perturbations(inputs: Tensor, samples: int, context: MetricContext, kind: str) -> Tensor:
    """Seeded noise ``[N, samples, C, H, W]`` from the context's generator: ``normal`` (standard
    normal) or ``uniform`` (in ``[-1, 1]``)."""
    shape = (inputs.shape[0], samples, *inputs.shape[1:])
    if kind == "normal":
        return torch.randn(shape, generator=context.generator, device=inputs.device)
    return 2 * torch.rand(shape, generator=context.generator, device=inputs.device) - 1


def infidelity_from_noise(
    forward: Callable[[Tensor, Tensor], Tensor],
    inputs: Tensor,
    maps: Tensor,
    targets: Tensor,
    noise: Tensor,
    normalize: bool,
    batch_size: int,
) -> Tensor:
    """Infidelity ``E_I[(I . a - (f(x) - f(x - I)))^2]`` for given perturbations, ``[N]``.

    :param forward: ``(inputs [B, C, H, W], targets [B]) -> [B]``, the explained output.
    :param noise: perturbations ``I``, ``[N, S, C, H, W]``; ``a`` is each map on all channels.
    :param normalize: scale the attributions by the ``beta`` that minimises the infidelity
        (Yeh et al., and Captum's ``normalize``), so a map's overall scale does not count.
    """
    n, samples = noise.shape[:2]
    flat = noise.flatten(0, 1)
    index = torch.arange(n, device=inputs.device).repeat_interleave(samples)
    dots = (flat * maps[index][:, None]).flatten(1).sum(dim=1)
    base = forward(inputs, targets)
    diffs = torch.empty_like(dots)
    for first in range(0, len(flat), batch_size):
        rows = index[first : first + batch_size]
        perturbed = inputs[rows] - flat[first : first + batch_size]
        diffs[first : first + batch_size] = base[rows] - forward(perturbed, targets[rows])
    dots, diffs = dots.view(n, samples).double(), diffs.view(n, samples).double()
    if normalize:
        denominator = (dots * dots).sum(dim=1)
        beta = (dots * diffs).sum(dim=1) / torch.where(denominator == 0, 1.0, denominator)
        dots = dots * beta[:, None]
    return ((dots - diffs) ** 2).mean(dim=1)


class Infidelity(Metric):
    """Infidelity under Gaussian perturbations: how badly ``I . map`` predicts the output change."""

    name = "infidelity"
    summary = "expected squared error of map . noise vs. the output change (lower: better)"
    paper = "Yeh, Hsieh, Suggala, Inouye, Ravikumar 2019, arXiv:1901.09392"
    higher_is_better = False

    @dataclass
    class Params:
        #: Perturbations per image.
        n_perturb_samples: int = field(default=16, metadata={"min": 1})
        #: Standard deviation of the Gaussian perturbation ``I``, in normalized input units.
        noise_std: float = field(default=0.1, metadata={"min": 0})
        #: Rescale each map optimally first (Captum's ``normalize``): compares shapes, not scales.
        normalize: bool = True
        #: The explained output: the target's logit (what Captum sees from a logit model).
        output: str = field(default="logit", metadata={"choices": OUTPUTS})
        #: Perturbed inputs per forward pass.
        max_examples_per_batch: int = field(default=128, metadata={"min": 1})

    def compute(self, model: nn.Module, inputs: Tensor, maps: Tensor, targets: Tensor,
                context: MetricContext) -> Tensor:
        p = self.params
        noise = perturbations(inputs, p.n_perturb_samples, context, "normal") * p.noise_std
        return infidelity_from_noise(
            lambda x, t: model_outputs(model, x, t, p.output),
            inputs, maps, targets, noise, p.normalize, p.max_examples_per_batch,
        )


NORMS = ("fro", "inf")


def max_sensitivity_from_noise(
    explain: Callable[[Tensor, Tensor], Tensor],
    inputs: Tensor,
    maps: Tensor,
    targets: Tensor,
    noise: Tensor,
    norm_ord: str,
    batch_size: int,
) -> Tensor:
    """Max-sensitivity ``max_s ||e(x + d_s) - e(x)|| / ||e(x)||`` for given perturbations, ``[N]``.

    :param explain: ``(inputs, targets) -> maps``, the explanation being scored.
    :param maps: ``e(x)``, the maps of the unperturbed inputs.
    :param noise: perturbations ``d``, ``[N, S, C, H, W]``.
    :param norm_ord: ``fro`` (the 2-norm of the flattened map, Captum's default) or ``inf``.
    """
    order = 2 if norm_ord == "fro" else math.inf
    n, samples = noise.shape[:2]
    flat = noise.flatten(0, 1)
    index = torch.arange(n, device=inputs.device).repeat_interleave(samples)
    reference = torch.linalg.vector_norm(maps.flatten(1), ord=order, dim=1)
    changes = torch.empty(len(flat), device=inputs.device)
    for first in range(0, len(flat), batch_size):
        rows = index[first : first + batch_size]
        perturbed = inputs[rows] + flat[first : first + batch_size]
        difference = explain(perturbed, targets[rows]) - maps[rows]
        changes[first : first + batch_size] = torch.linalg.vector_norm(
            difference.flatten(1), ord=order, dim=1
        )
    # Like Captum, a map that is zero everywhere is compared in absolute terms.
    scale = torch.where(reference == 0, 1.0, reference)
    return (changes.view(n, samples) / scale[:, None]).max(dim=1).values


class MaxSensitivity(Metric):
    """How much the map changes, at most, under small uniform input perturbations.

    The score is ``max_s ||e(x + d_s) - e(x)|| / ||e(x)||`` over ``n_perturb_samples`` uniform
    perturbations ``d_s`` in ``[-perturb_radius, perturb_radius]``. On the same perturbations it
    agrees with Captum's ``sensitivity_max`` and with Quantus 0.6's ``MaxSensitivity``
    (``normalise=False, abs=False``; to 1e-5, ``tests/plugins/metrics/test_quantus.py``). Defaults
    differ: Quantus draws 200 samples in ``[-0.2, 0.2]`` (its ``lower_bound``), ten times our
    radius, which is Captum's; a map that is zero everywhere is compared in absolute terms here (as
    Captum), where Quantus divides by its zero norm.
    """

    name = "max_sensitivity"
    summary = "largest relative change of the map under small input noise (lower: better)"
    paper = "Yeh, Hsieh, Suggala, Inouye, Ravikumar 2019, arXiv:1901.09392"
    higher_is_better = False
    requires = ("attributor",)

    @dataclass
    class Params:
        #: Perturbations per image.
        n_perturb_samples: int = field(default=10, metadata={"min": 1})
        #: Perturbations are uniform in ``[-perturb_radius, perturb_radius]`` (normalized units).
        perturb_radius: float = field(default=0.02, metadata={"min": 0})
        #: Norm of the map difference.
        norm_ord: str = field(default="fro", metadata={"choices": NORMS})
        #: Perturbed inputs per explanation call.
        max_examples_per_batch: int = field(default=64, metadata={"min": 1})

    def compute(self, model: nn.Module, inputs: Tensor, maps: Tensor, targets: Tensor,
                context: MetricContext) -> Tensor:
        p = self.params
        noise = perturbations(inputs, p.n_perturb_samples, context, "uniform") * p.perturb_radius
        return max_sensitivity_from_noise(
            context.explain, inputs, maps, targets, noise, p.norm_ord, p.max_examples_per_batch
        )
