"""The ``sobel_edges`` attributor, and the Sobel edge magnitude the whole plugin builds on.

Adebayo et al. (2018, "Sanity Checks for Saliency Maps") show that an edge detector, which
ignores the model entirely, looks much like many saliency maps. Having it as a technique makes
that comparison one line of YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import xai_core

#: The horizontal Sobel kernel; its transpose is the vertical one.
SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_magnitude(images: Tensor) -> Tensor:
    """Edge strength ``[N, H, W]`` of ``[N, C, H, W]`` images: per channel, the length of the
    Sobel gradient (edges replicated at the border), summed over channels."""
    kernels = torch.stack([SOBEL_X, SOBEL_X.T])[:, None].to(images)  # [2, 1, 3, 3]
    channels = images.reshape(-1, 1, *images.shape[2:])
    grads = F.conv2d(F.pad(channels, (1, 1, 1, 1), mode="replicate"), kernels)
    return grads.norm(dim=1).reshape(images.shape).sum(dim=1)


class SobelEdges(xai_core.Attributor):
    """Gradient magnitude of the input image (Sobel filters), summed over colour channels."""

    name = "sobel_edges"
    summary = "model-independent Sobel edge map (a control for sanity checks)"
    paper = "Adebayo et al. 2018, arXiv:1810.03292"

    @dataclass
    class Params:
        #: Blur the map with a box filter of this odd size (1 = no blur).
        smooth: int = field(default=1, metadata={"min": 1})

        def __post_init__(self) -> None:
            if self.smooth % 2 == 0:
                raise ValueError(f"smooth must be odd, not {self.smooth}")

    def compute(
        self,
        model: nn.Module,
        inputs: Tensor,
        targets: Tensor,
        context: xai_core.AttributionContext,
    ) -> Tensor:
        magnitude = sobel_magnitude(inputs)
        k = self.params.smooth
        if k > 1:
            magnitude = F.avg_pool2d(
                magnitude[:, None], k, stride=1, padding=k // 2, count_include_pad=False
            )[:, 0]
        return magnitude
