"""SmoothGrad, SmoothGrad-squared and VarGrad (``noise_tunnel``) over any other attributor.

Smilkov, Thorat, Kim, Viégas, Wattenberg 2017, "SmoothGrad: removing noise by adding noise",
arXiv:1706.03825; Adebayo et al. 2018, "Local Explanation Methods for Deep Neural Networks Lack
Sensitivity to Parameter Values", arXiv:1810.03307 (VarGrad).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from xai_core import AttributionContext, Attributor, GradientAttributor, get_attributor
from xai_core.contracts.params import params_errors, setting
from xai_core.errors import XaiError
from xai_core.nn.hooks import HookRecorder
from xai_core.plugins.factory import resolve_technique

__all__ = ["NOISE_TYPES", "NoiseTunnel"]

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

    The noise is drawn from ``seed`` once per call, ``[samples, C, H, W]``, and scaled per item,
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
        samples: int = field(default=25, metadata={"min": 1})
        #: Noise standard deviation: a fraction of the input range (``relative``) or absolute.
        stdev: float = field(default=0.15, metadata={"min": 0})
        #: ``stdev`` relative to each input's range (max - min), as Smilkov et al.; ``false``:
        #: absolute, in normalized input space, as Captum's ``stdevs``.
        relative: bool = True
        #: Seed of the noise.
        seed: int = 0
        #: Noisy copies per call of the base, over all items: bounds memory, not results.
        batch_size: int = setting(16, min=1)

        #: Values that break each rule of :meth:`check` (for the registry-wide rule test).
        violations: ClassVar[tuple[dict[str, Any], ...]] = (
            {"base": "noise_tunnel"}, {"base_params": {"nonsense": 1}},
        )

        def check(self) -> Iterator[tuple[str, str]]:
            if self.base == "noise_tunnel":
                yield "base", "noise_tunnel cannot be its own base; name another attributor"
                return
            try:
                cls, preset = resolve_technique(self.base, Attributor)
                _, errors = params_errors(cls.Params, {**preset, **self.base_params}, "")
            except XaiError as exc:
                yield "base", str(exc)
                return
            for error in errors:
                yield "base_params", f"{error} (parameters of base {self.base!r})"

    def __init__(self, params: Any = None, **overrides: Any):
        super().__init__(params, **overrides)
        p = self.params
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


