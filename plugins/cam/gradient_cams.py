"""The gradient CAMs, each one :meth:`~xai_core.GradientCam.cam_weights` on
:class:`xai_core.GradientCam`, and guided Grad-CAM.

The weights follow the papers and pytorch-grad-cam's ``get_cam_weights`` (its epsilons included,
so that its maps are reproduced to float precision); the map is ``sum_c weights_c * A_c``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from xai_core import AttributionContext, GradientCam
from xai_core.families.cam import CamParams
from xai_core.nn.gradients import REDUCTIONS, reduce_channels
from xai_core.nn.relu_rules import relu_rule_gradients

__all__ = ["GradCam", "GradCamPlusPlus", "GuidedGradCam", "HiResCam", "LayerCamMethod", "XGradCam"]

_PLUSPLUS_EPS = 1e-6
_XGRAD_EPS = 1e-7


class GradCam(GradientCam):
    """Grad-CAM: channel weights are the spatially averaged gradients."""

    name = "grad_cam"
    summary = "layer activations weighted by the spatially averaged class-score gradient"
    paper = "Selvaraju et al. 2017, arXiv:1610.02391"

    def cam_weights(self, activations: Tensor, gradients: Tensor) -> Tensor:
        return gradients.mean(dim=(2, 3))


class GradCamPlusPlus(GradientCam):
    """Grad-CAM++: eq. 19 of the paper, with the score's exponential folded in."""

    name = "grad_cam_plusplus"
    summary = "Grad-CAM with pixel-wise weighting of positive gradients (higher-order terms)"
    paper = "Chattopadhay et al. 2018, arXiv:1710.11063"

    def cam_weights(self, activations: Tensor, gradients: Tensor) -> Tensor:
        g2 = gradients.pow(2)
        g3 = g2 * gradients
        total = activations.sum(dim=(2, 3), keepdim=True)
        alpha = g2 / (2 * g2 + total * g3 + _PLUSPLUS_EPS)
        alpha = torch.where(gradients != 0, alpha, torch.zeros_like(alpha))
        return (gradients.clamp_min(0) * alpha).sum(dim=(2, 3))


class XGradCam(GradientCam):
    """XGradCAM: gradients weighted by the normalised activations."""

    name = "xgrad_cam"
    summary = "Grad-CAM with activation-normalised gradient weights (axiom-based)"
    paper = "Fu et al. 2020, arXiv:2008.02312"

    def cam_weights(self, activations: Tensor, gradients: Tensor) -> Tensor:
        total = activations.sum(dim=(2, 3)) + _XGRAD_EPS
        return (gradients * activations).sum(dim=(2, 3)) / total


class HiResCam(GradientCam):
    """HiResCAM: element-wise gradient times activation, summed over channels."""

    name = "hires_cam"
    summary = "element-wise gradient x activation at the layer, summed over channels"
    paper = "Draelos, Carin 2020, arXiv:2011.08891"

    def cam_weights(self, activations: Tensor, gradients: Tensor) -> Tensor:
        return gradients


class LayerCamMethod(GradientCam):
    """LayerCAM: positive gradients times activations, summed over channels."""

    name = "layer_cam"
    summary = "positive gradients x activations at the layer, summed over channels"
    paper = "Jiang et al. 2021, IEEE TIP 30:5875"

    def cam_weights(self, activations: Tensor, gradients: Tensor) -> Tensor:
        return gradients.clamp_min(0)


class GuidedGradCam(GradCam):
    """Guided Grad-CAM: guided backpropagation times the upsampled Grad-CAM map."""

    name = "guided_grad_cam"
    summary = "guided backpropagation x upsampled Grad-CAM, reduced over colour channels"
    paper = "Selvaraju et al. 2017, arXiv:1610.02391 (section 3.1)"

    @dataclass
    class Params(CamParams):
        #: Reduction of the ``[C, H, W]`` product over colour channels.
        reduction: str = field(default="max", metadata={"choices": REDUCTIONS})
        #: Treat ReLU6 like ReLU in guided backpropagation (EfficientNet-Lite, MobileNet).
        relu6: bool = True

    def input_maps(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        cam = super().input_maps(model, inputs, targets, context)
        guided = relu_rule_gradients(model, inputs, targets, "guided", self.params.relu6)
        return reduce_channels(guided * cam[:, None], self.params.reduction)
