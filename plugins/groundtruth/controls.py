"""Control rows of the ground-truth benchmark: maps that know nothing about the model.

Adebayo et al. 2018 and the localisation literature use the same three: a random map, a centred
Gaussian (the centre bias of photos; none here, since objects are placed uniformly) and an edge
detector (model-independent, yet visually plausible). They are attributors so that the benchmark
scores them exactly like the methods, but they are not registered: nobody should select them.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from xai_core.contracts.attributor import Attributor
from xai_core.contracts.technique import AttributionContext


class Control(Attributor):
    """A control: its map comes from the inputs alone (and the model's preprocessing, for
    ``context.handle``), never from the model or the targets, which :meth:`compute` leaves out."""

    @abc.abstractmethod
    def control_map(self, inputs: Tensor, context: AttributionContext) -> Tensor:
        """The map ``[N, H, W]`` of ``inputs`` ``[N, C, H, W]``."""

    def compute(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        return self.control_map(inputs, context)


class RandomMap(Control):
    """Control: uniform noise, the same for the same batch (so it ignores the model entirely)."""

    name = "control: random"

    @dataclass
    class Params:
        seed: int = 0

    def control_map(self, inputs: Tensor, context: AttributionContext) -> Tensor:
        generator = torch.Generator().manual_seed(self.params.seed)
        shape = (inputs.shape[0], inputs.shape[2], inputs.shape[3])
        return torch.rand(shape, generator=generator).to(inputs.device)


class CentreGaussian(Control):
    """Control: a Gaussian centred on the image, standard deviation a quarter of its side."""

    name = "control: centre gaussian"

    @dataclass
    class Params:
        sigma: float = 0.25

    def control_map(self, inputs: Tensor, context: AttributionContext) -> Tensor:
        height, width = inputs.shape[2:]
        ys = torch.arange(height, device=inputs.device) - (height - 1) / 2
        xs = torch.arange(width, device=inputs.device) - (width - 1) / 2
        sigma = self.params.sigma * min(height, width)
        bump = torch.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * sigma**2))
        return bump.expand(inputs.shape[0], height, width).clone()


class EdgeDetector(Control):
    """Control: Sobel gradient magnitude of the grey image; it never looks at the model."""

    name = "control: edges"

    @dataclass
    class Params:
        pass

    def control_map(self, inputs: Tensor, context: AttributionContext) -> Tensor:
        grey = context.handle.denormalize(inputs).mean(dim=1, keepdim=True)
        kernel = torch.tensor(
            [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=inputs.device
        )
        kernels = torch.stack([kernel, kernel.T])[:, None]
        padded = torch.nn.functional.pad(grey, (1, 1, 1, 1), mode="replicate")
        gradients = torch.nn.functional.conv2d(padded, kernels)
        return gradients.norm(dim=1)


#: Config name of each control -> its class.
CONTROLS: dict[str, type[Attributor]] = {
    "random": RandomMap,
    "centre_gaussian": CentreGaussian,
    "edges": EdgeDetector,
}
