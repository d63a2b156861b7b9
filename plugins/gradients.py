"""Built-in gradient attributors: guided backprop, deconvnet, integrated gradients, gradient x input
and the SmoothGrad family (``noise_tunnel``) over any of them.

Also home of :func:`guided_relu` and :func:`guided_relu_hooks`, the ReLU gradient rules that other
techniques (guided Grad-CAM) reuse. Plain saliency lives in ``plugins/saliency.py``; the shared
building blocks (class scores, channel reductions) in :mod:`xai_core.nn.gradients`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from xai_core import Attributor, hookimpl
from xai_core.contracts.model import Preprocessing
from xai_core.contracts.technique import AttributionContext
from xai_core.errors import ConfigError
from xai_core.families.gradient import GradientAttributor, _reduction
from xai_core.nn.gradients import (
    channels_last_layout,
    class_scores,
    input_gradients,
)
from xai_core.nn.hooks import HookRecorder
from xai_core.nn.relu_rules import relu_rule_gradients

__all__ = [
    "IG_METHODS",
    "IG_BASELINES",
    "NOISE_TYPES",
    "relu_rule_gradients",
    "quadrature",
    "ig_baseline",
    "path_gradients",
    "GradientAttributor",
    "GuidedBackprop",
    "Deconvnet",
    "GradientXInput",
    "IntegratedGradients",
    "NoiseTunnel",
]















# --- attributors ---------------------------------------------------------------------------------






class _ReluRuleAttributor(GradientAttributor):
    rule = "guided"

    @dataclass
    class Params(GradientAttributor.Params):
        #: Absolute values before the reduction, as for saliency maps.
        abs: bool = True
        #: ``max`` of absolute values over channels by default, as for saliency maps.
        reduction: str = _reduction("max")
        #: Apply the rule to clipped ReLUs (ReLU6, as in EfficientNet-Lite) too; Captum's
        #: implementation only sees ``nn.ReLU`` modules (``false`` gives its results there).
        relu6: bool = True

    def input_attributions(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        p = self.params
        return relu_rule_gradients(model, inputs, targets, self.rule, p.relu6, p.channels_last)


class GuidedBackprop(_ReluRuleAttributor):
    """Guided backpropagation: the input gradient with every ReLU passing back only positive
    gradients, and only where its forward input was positive."""

    name = "guided_backprop"
    summary = "input gradient, passing only positive gradients back through active ReLUs"
    paper = "Springenberg, Dosovitskiy, Brox, Riedmiller 2015, arXiv:1412.6806"
    rule = "guided"


class Deconvnet(_ReluRuleAttributor):
    """Deconvnet: the input gradient with every ReLU passing back only positive gradients,
    wherever its forward input was."""

    name = "deconvnet"
    summary = "input gradient, passing only positive gradients back through every ReLU"
    paper = "Zeiler, Fergus 2014, arXiv:1311.2901"
    rule = "deconvnet"


class GradientXInput(GradientAttributor):
    """Gradient x input: the input gradient times the input, summed over channels by default."""

    name = "gradient_x_input"
    summary = "input gradient times the input (signed, sum over channels)"
    paper = "Shrikumar, Greenside, Shcherbina, Kundaje 2016, arXiv:1605.01713"

    def input_attributions(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        return input_gradients(model, inputs, targets, self.params.channels_last) * inputs


#: Integration rules with Captum's names. ``riemann_trapezoid`` is the trapezoid rule proper
#: (weights ``1/(steps-1)``, halved at both ends, summing to 1); Captum's weights are ``1/steps``
#: there, so its sums are ``(steps-1)/steps`` of these.
IG_METHODS = (
    "gausslegendre",
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "riemann_trapezoid",
)

#: Named baselines: ``black`` pixels (0 before normalization), ``zeros`` in normalized space,
#: ``blur`` (the input under a Gaussian blur of ``blur_sigma`` pixels), ``uniform`` noise pixels.
IG_BASELINES = ("black", "zeros", "blur", "uniform")


def quadrature(method: str, steps: int) -> tuple[Tensor, Tensor]:
    """Points ``alpha_k`` in ``[0, 1]`` and weights ``w_k`` of ``method`` with ``steps`` points:
    ``integral_0^1 f(a) da ~ sum_k w_k f(alpha_k)``. Both float32 ``[steps]``."""
    n = steps
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n)
        alphas, weights = torch.from_numpy(0.5 * (1 + nodes)), torch.from_numpy(0.5 * weights)
    elif method in IG_METHODS:
        if n < 2:
            raise ConfigError(f"integrated gradients with {method} needs steps >= 2, not {n}")
        ends = {
            "riemann_left": (0, 1 - 1 / n),
            "riemann_right": (1 / n, 1),
            "riemann_middle": (1 / (2 * n), 1 - 1 / (2 * n)),
            "riemann_trapezoid": (0, 1),
        }[method]
        alphas = torch.linspace(*ends, n)
        weights = torch.full((n,), 1 / n, dtype=torch.float64)
        if method == "riemann_trapezoid":
            weights = torch.full((n,), 1 / (n - 1), dtype=torch.float64)
            weights[[0, -1]] /= 2
    else:
        raise ConfigError(
            f"unknown integration method {method!r}; use one of {', '.join(IG_METHODS)}"
        )
    return alphas.float(), weights.float()


def ig_baseline(
    kind: str,
    inputs: Tensor,
    preprocessing: Preprocessing,
    blur_sigma: float = 10.0,
    seed: int = 0,
) -> Tensor:
    """A named baseline (one of :data:`IG_BASELINES`) for normalized ``inputs [N, 3, H, W]``,
    normalized the same way, ``[N, 3, H, W]``.

    ``uniform`` draws one noise image from ``seed`` and uses it for every item, so that an item's
    baseline does not depend on the rest of the batch.
    """
    if kind == "zeros":
        return torch.zeros_like(inputs)
    if kind == "black":
        return preprocessing.normalize(torch.zeros_like(inputs))
    if kind == "uniform":
        pixels = torch.rand(inputs.shape[1:], generator=torch.Generator().manual_seed(seed))
        return preprocessing.normalize(pixels.to(inputs)).expand_as(inputs)
    if kind == "blur":
        from torchvision.transforms.functional import gaussian_blur

        # Reflect padding needs a radius below the image size.
        radius = min(math.ceil(3 * blur_sigma), min(inputs.shape[-2:]) - 1)
        return gaussian_blur(inputs, [2 * radius + 1] * 2, [blur_sigma] * 2)
    raise ConfigError(f"unknown baseline {kind!r}; use one of {', '.join(IG_BASELINES)} or a file")


def path_gradients(
    model: nn.Module,
    inputs: Tensor,
    baselines: Tensor,
    targets: Tensor,
    alphas: Tensor,
    weights: Tensor,
    batch_size: int,
    channels_last: bool = True,
) -> Tensor:
    """``sum_k w_k * grad F_target(b + alpha_k (x - b))`` per item, ``[N, C, H, W]``.

    The ``steps x N`` path points are built and differentiated ``batch_size`` at a time
    (step-major, as Captum orders them), so memory is bounded by ``batch_size`` whatever the
    number of steps.
    """
    n = inputs.shape[0]
    delta = inputs - baselines
    total = torch.zeros_like(inputs)
    rows = len(alphas) * n
    for start in range(0, rows, batch_size):
        row = torch.arange(start, min(start + batch_size, rows), device=inputs.device)
        step, item = row // n, row % n
        points = baselines[item] + alphas[step].view(-1, 1, 1, 1) * delta[item]
        grads = input_gradients(model, points, targets[item], channels_last)
        total.index_add_(0, item, grads * weights[step].view(-1, 1, 1, 1))
    return total


def _target_scores(
    model: nn.Module, inputs: Tensor, targets: Tensor, batch_size: int, channels_last: bool
) -> Tensor:
    with torch.no_grad():
        return torch.cat(
            [
                class_scores(
                    model(channels_last_layout(inputs[i : i + batch_size], channels_last)),
                    targets[i : i + batch_size],
                )
                for i in range(0, len(inputs), batch_size)
            ]
        )


def _load_tensor(path: str) -> Tensor:
    if path.endswith(".npy"):
        return torch.from_numpy(np.load(path)).float()
    return torch.load(path, map_location="cpu", weights_only=True).float()


class IntegratedGradients(GradientAttributor):
    """Integrated gradients: ``(x - b) * integral_0^1 grad F(b + a (x - b)) da`` per channel.

    The map is the sum over channels by default, so it adds up to ``F(x) - F(b)`` up to the
    integration error; ``metadata`` reports, per item (row), ``score_difference``,
    ``completeness_gap`` (sum of the attributions minus the score difference) and
    ``completeness_gap_relative`` (the gap over ``|score difference|``).

    ``baseline`` is one of :data:`IG_BASELINES` or a ``.npy``/``.pt`` file with a normalized tensor
    ``[3, H, W]``, ``[1, 3, H, W]`` or one per input ``[N, 3, H, W]``. From Python, a tensor of
    those shapes may be given directly: ``IntegratedGradients(baseline=tensor)``.
    """

    name = "integrated_gradients"
    summary = "path integral of input gradients from a baseline (signed, sum over channels)"
    paper = "Sundararajan, Taly, Yan 2017, arXiv:1703.01365"

    @dataclass
    class Params(GradientAttributor.Params):
        #: Absolute values before the reduction; ``false`` (default) keeps the sign.
        abs: bool = False
        #: Reduction over colour channels: ``sum`` (default) keeps completeness, the map adding
        #: up to the score difference.
        reduction: str = _reduction("sum")
        #: Number of points on the path from the baseline to the input.
        steps: int = 50
        #: Integration rule (Captum's names): Gauss-Legendre or a Riemann sum.
        method: str = field(default="gausslegendre", metadata={"choices": IG_METHODS})
        #: ``black``, ``zeros``, ``blur``, ``uniform``, or a .npy/.pt file (see the class doc).
        baseline: str = "black"
        #: Standard deviation in pixels of the ``blur`` baseline.
        blur_sigma: float = 10.0
        #: Seed of the ``uniform`` baseline.
        seed: int = 0
        #: Path points per forward/backward pass: bounds memory, not results.
        batch_size: int = 16

    def __init__(self, params: Any = None, **overrides: Any):
        tensor = None
        if isinstance(overrides.get("baseline"), Tensor):
            tensor = overrides.pop("baseline")
        elif isinstance(params, Mapping) and isinstance(params.get("baseline"), Tensor):
            params = dict(params)
            tensor = params.pop("baseline")
        if tensor is not None:
            overrides["baseline"] = "tensor"
        super().__init__(params, **overrides)
        p = self.params
        if p.steps < 1 or p.batch_size < 1 or p.blur_sigma <= 0:
            raise ConfigError(
                f"integrated_gradients needs steps >= 1, batch_size >= 1 and blur_sigma > 0; got "
                f"steps={p.steps}, batch_size={p.batch_size}, blur_sigma={p.blur_sigma}"
            )
        quadrature(p.method, p.steps)
        if tensor is None and p.baseline not in IG_BASELINES:
            if not (p.baseline.endswith((".npy", ".pt")) and Path(p.baseline).is_file()):
                raise ConfigError(
                    f"integrated_gradients baseline {p.baseline!r} is neither one of "
                    f"{', '.join(IG_BASELINES)} nor an existing .npy/.pt file"
                )
            tensor = _load_tensor(p.baseline)
        self.baseline_tensor: Tensor | None = None if tensor is None else tensor.detach().float()

    def baselines(self, inputs: Tensor, context: AttributionContext) -> Tensor:
        """The baseline of each row of ``inputs``, ``[N, 3, H, W]``."""
        p = self.params
        if self.baseline_tensor is None:
            return ig_baseline(
                p.baseline, inputs, context.handle.preprocessing, p.blur_sigma, p.seed
            )
        b = self.baseline_tensor.to(inputs)
        if b.ndim == 3:
            b = b[None]
        index = context.input_index
        if b.shape[0] not in (1, len(inputs)) and index is not None:
            if b.shape[0] == int(index.max()) + 1:
                b = b[index.to(b.device)]
        if b.ndim != 4 or b.shape[1:] != inputs.shape[1:] or b.shape[0] not in (1, len(inputs)):
            raise ConfigError(
                f"integrated_gradients baseline of shape {tuple(self.baseline_tensor.shape)} does "
                f"not fit inputs of shape {tuple(inputs.shape)}"
            )
        return b.expand_as(inputs)

    def input_attributions(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        p = self.params
        baselines = self.baselines(inputs, context)
        alphas, weights = (t.to(inputs.device) for t in quadrature(p.method, p.steps))
        grads = path_gradients(
            model, inputs, baselines, targets, alphas, weights, p.batch_size, p.channels_last
        )
        attributions = (inputs - baselines) * grads
        n = len(inputs)
        scores = _target_scores(
            model, torch.cat([inputs, baselines]), targets.repeat(2), p.batch_size, p.channels_last
        )
        difference = scores[:n] - scores[n:]
        gap = attributions.sum(dim=(1, 2, 3)) - difference
        context.metadata.update(
            score_difference=difference.tolist(),
            completeness_gap=gap.tolist(),
            completeness_gap_relative=(gap.abs() / difference.abs()).tolist(),
        )
        return attributions


#: ``smoothgrad``: mean of the attributions over noisy copies; ``smoothgrad_sq``: mean of their
#: squares; ``vargrad``: their variance (mean of squares minus squared mean).
NOISE_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")


class NoiseTunnel(Attributor):
    """SmoothGrad, SmoothGrad-squared and VarGrad around any other attributor (``base``).

    Each input gets ``samples`` copies with Gaussian noise added (in normalized space); ``base``
    explains every copy and the results are combined per :data:`NOISE_TYPES`. For a
    :class:`GradientAttributor` base (``guided_backprop``, ``integrated_gradients``, ...) the
    per-channel attributions are combined and the base's ``abs`` and ``reduction`` applied once
    after, exactly like Captum's ``NoiseTunnel``; any other base (``saliency``) has its maps
    combined.

    The noise is drawn from ``seed`` once per call, ``[samples, 3, H, W]``, and scaled per item,
    so an item's map does not depend on the rest of the batch. With ``relative`` (the default,
    as Smilkov et al.) ``stdev`` is a fraction of each input's value range (max - min); otherwise
    it is absolute, as Captum's ``stdevs``.
    """

    name = "noise_tunnel"
    summary = "SmoothGrad / SmoothGrad-squared / VarGrad over any attributor (base)"
    paper = "Smilkov et al. 2017, arXiv:1706.03825; Adebayo et al. 2018, arXiv:1810.03307"

    @dataclass
    class Params:
        #: The attributor to smooth, by registered name.
        base: str = "saliency"
        #: The base's parameters.
        base_params: dict[str, Any] = field(default_factory=dict)
        #: How the noisy copies' attributions are combined.
        type: str = field(default="smoothgrad", metadata={"choices": NOISE_TYPES})
        #: Noisy copies per input.
        samples: int = 25
        #: Noise standard deviation: a fraction of the input range (``relative``) or absolute.
        stdev: float = 0.15
        #: ``stdev`` relative to each input's range (max - min), as Smilkov et al.; ``false``:
        #: absolute, in normalized input space, as Captum's ``stdevs``.
        relative: bool = True
        #: Seed of the noise.
        seed: int = 0
        #: Noisy copies per call of the base, over all items: bounds memory, not results.
        batch_size: int = 16

    def __init__(self, params: Any = None, **overrides: Any):
        super().__init__(params, **overrides)
        p = self.params
        if p.samples < 1 or p.batch_size < 1 or p.stdev < 0:
            raise ConfigError(
                f"noise_tunnel needs samples >= 1, batch_size >= 1 and stdev >= 0; got "
                f"samples={p.samples}, batch_size={p.batch_size}, stdev={p.stdev}"
            )
        if p.base == self.name:
            raise ConfigError("noise_tunnel cannot be its own base")
        from xai_core import get_attributor

        self.base = get_attributor(p.base, **p.base_params)

    def _base_attributions(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        # The noisy rows are inputs of their own: a fresh context, whose hooks go with the call.
        sub = AttributionContext(handle=context.handle, hooks=HookRecorder())
        with sub.hooks:
            if isinstance(self.base, GradientAttributor):
                return self.base.input_attributions(model, inputs, targets, sub)
            return self.base.compute(model, inputs, targets, sub)

    def compute(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        p = self.params
        n = len(inputs)
        generator = torch.Generator().manual_seed(p.seed)
        noise = torch.randn((p.samples, *inputs.shape[1:]), generator=generator).to(inputs)
        stdev = torch.full((n,), p.stdev, device=inputs.device)
        if p.relative:
            stdev = stdev * (inputs.amax(dim=(1, 2, 3)) - inputs.amin(dim=(1, 2, 3)))
        per_call = max(1, p.batch_size // n)
        total = total_sq = None
        for start in range(0, p.samples, per_call):
            z = noise[start : start + per_call]
            noisy = (inputs[:, None] + stdev.view(n, 1, 1, 1, 1) * z[None]).flatten(0, 1)
            maps = self._base_attributions(model, noisy, targets.repeat_interleave(len(z)), context)
            maps = maps.view(n, len(z), *maps.shape[1:])
            part, part_sq = maps.sum(dim=1), maps.pow(2).sum(dim=1)
            total = part if total is None else total + part
            total_sq = part_sq if total_sq is None else total_sq + part_sq
        mean, mean_sq = total / p.samples, total_sq / p.samples
        smoothed = {"smoothgrad": mean, "smoothgrad_sq": mean_sq, "vargrad": mean_sq - mean * mean}
        context.metadata["base"] = self.base.name
        result = smoothed[p.type]
        return self.base.finish(result) if isinstance(self.base, GradientAttributor) else result


@hookimpl
def register_attributors(register):
    for technique in (GuidedBackprop, Deconvnet, GradientXInput, IntegratedGradients, NoiseTunnel):
        register(technique)
