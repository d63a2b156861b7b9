"""An example xai-core plugin: a Sobel edge map as an attribution "technique".

Adebayo et al. (2018, "Sanity Checks for Saliency Maps") show that an edge detector, which
ignores the model entirely, looks much like many saliency maps. Having it as a technique makes
that comparison one line of YAML. It is also the smallest complete plugin: one class, one hook.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

import xai_core


class SobelEdges(xai_core.Attributor):
    """Gradient magnitude of the input image (Sobel filters), summed over colour channels."""

    name = "sobel_edges"
    summary = "model-independent Sobel edge map (a control for sanity checks)"
    paper = "Adebayo et al. 2018, arXiv:1810.03292"

    @dataclass
    class Params:
        #: Blur the map with a box filter of this odd size (1 = no blur).
        smooth: int = 1

    def compute(self, model, inputs, targets, context):
        kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
        kernels = torch.stack([kx, kx.T])[:, None].to(inputs)  # [2, 1, 3, 3]
        channels = inputs.reshape(-1, 1, *inputs.shape[2:])
        grads = F.conv2d(F.pad(channels, (1, 1, 1, 1), mode="replicate"), kernels)
        magnitude = grads.norm(dim=1).reshape(inputs.shape).sum(dim=1)
        if self.params.smooth > 1:
            k = self.params.smooth
            magnitude = F.avg_pool2d(magnitude[:, None], k, stride=1, padding=k // 2)[:, 0]
        return magnitude


@xai_core.hookimpl
def register_attributors(register):
    register(SobelEdges)
