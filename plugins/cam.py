"""Class activation maps: Grad-CAM, guided Grad-CAM and the CAM family, on CNNs and transformers.

Every method here weighs the activations ``A`` of one target layer (seen as a ``[C, h, w]`` grid,
see :mod:`xai_core.nn.layers`) into a ``[h, w]`` map, optionally applies a ReLU and a min-max
normalisation, and upsamples the map to the input size:

* **Grad-CAM** (Selvaraju et al. 2017): channel weights are the spatial mean of the gradient
  ``G`` of the class score at the layer; map ``sum_c w_c A_c``.
* **Grad-CAM++** (Chattopadhay et al. 2018): weights ``sum_ij relu(G) a_ij`` with the closed-form
  ``a_ij = G^2 / (2 G^2 + sum_ij(A) G^3)`` of the paper's exponential-score derivation.
* **XGradCAM** (Fu et al. 2020): weights ``sum_ij(G A) / sum_ij(A)``.
* **HiResCAM** (Draelos, Carin 2020): no pooling of the gradient, map ``sum_c G_c * A_c``.
* **LayerCAM** (Jiang et al. 2021): map ``sum_c relu(G_c) * A_c``.
* **Score-CAM** (Wang et al. 2020): weights from the class score of the input masked by each
  upsampled, normalised activation channel (no gradients), softmax over channels.
* **Eigen-CAM** (Muhammad, Yeasin 2020): the projection of the centred activations on their first
  principal component (class-agnostic).
* **Guided Grad-CAM**: guided backpropagation times the upsampled Grad-CAM map.

With ``normalize: minmax`` the map is scaled to ``[0, 1]`` at layer resolution and again after
upsampling (interpolation does not reach the extremes exactly); with ``upsample: bilinear`` this is
pytorch-grad-cam's ``scale_cam_image`` pipeline. Captum's ``LayerGradCam`` is ``normalize: none``.

Gradients are taken with respect to the layer's output only: the layer's output is replaced by a
detached copy that requires gradients, so the backward pass stops at the layer instead of running
through the whole network (and never touches parameter gradients). Several targets of one image
share one forward pass; each target then costs one backward pass through the layers above the
target layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xai_core import hookimpl
from xai_core.contracts.technique import AttributionContext
from xai_core.errors import XaiError
from xai_core.families.cam import (
    CamParams,
    LayerCam,
    _GradientCam,
    _outside_inference_mode,
    _unique_inputs,
)
from xai_core.nn.gradients import REDUCTIONS, reduce_channels

_PLUSPLUS_EPS = 1e-6
_XGRAD_EPS = 1e-7
_SCORE_MASK_EPS = 1e-8




















def grad_cam_map(a: Tensor, g: Tensor) -> Tensor:
    """Grad-CAM: channel weights are the spatially averaged gradients."""
    return (g.mean(dim=(2, 3), keepdim=True) * a).sum(dim=1)


def grad_cam_plusplus_map(a: Tensor, g: Tensor) -> Tensor:
    """Grad-CAM++ (eq. 19 of the paper, with the score's exponential folded in)."""
    g2 = g.pow(2)
    g3 = g2 * g
    alpha = g2 / (2 * g2 + a.sum(dim=(2, 3), keepdim=True) * g3 + _PLUSPLUS_EPS)
    alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
    weights = (g.clamp_min(0) * alpha).sum(dim=(2, 3), keepdim=True)
    return (weights * a).sum(dim=1)


def xgrad_cam_map(a: Tensor, g: Tensor) -> Tensor:
    """XGradCAM: gradients weighted by the normalised activations."""
    weights = (g * a).sum(dim=(2, 3), keepdim=True) / (
        a.sum(dim=(2, 3), keepdim=True) + _XGRAD_EPS
    )
    return (weights * a).sum(dim=1)


def hires_cam_map(a: Tensor, g: Tensor) -> Tensor:
    """HiResCAM: element-wise gradient times activation, summed over channels."""
    return (g * a).sum(dim=1)


def layer_cam_map(a: Tensor, g: Tensor) -> Tensor:
    """LayerCAM: positive gradients times activations, summed over channels."""
    return (g.clamp_min(0) * a).sum(dim=1)


class GradCam(_GradientCam):
    """Grad-CAM."""

    name = "grad_cam"
    summary = "layer activations weighted by the spatially averaged class-score gradient"
    paper = "Selvaraju et al. 2017, arXiv:1610.02391"
    formula = staticmethod(grad_cam_map)


class GradCamPlusPlus(_GradientCam):
    """Grad-CAM++."""

    name = "grad_cam_plusplus"
    summary = "Grad-CAM with pixel-wise weighting of positive gradients (higher-order terms)"
    paper = "Chattopadhay et al. 2018, arXiv:1710.11063"
    formula = staticmethod(grad_cam_plusplus_map)


class XGradCam(_GradientCam):
    """XGradCAM."""

    name = "xgrad_cam"
    summary = "Grad-CAM with activation-normalised gradient weights (axiom-based)"
    paper = "Fu et al. 2020, arXiv:2008.02312"
    formula = staticmethod(xgrad_cam_map)


class HiResCam(_GradientCam):
    """HiResCAM."""

    name = "hires_cam"
    summary = "element-wise gradient x activation at the layer, summed over channels"
    paper = "Draelos, Carin 2020, arXiv:2011.08891"
    formula = staticmethod(hires_cam_map)


class LayerCamMethod(_GradientCam):
    """LayerCAM."""

    name = "layer_cam"
    summary = "positive gradients x activations at the layer, summed over channels"
    paper = "Jiang et al. 2021, IEEE TIP 30:5875"
    formula = staticmethod(layer_cam_map)


class EigenCam(LayerCam):
    """Eigen-CAM: the first principal component of the layer's activations (class-agnostic)."""

    name = "eigen_cam"
    summary = "projection of the layer activations on their first principal component"
    paper = "Muhammad, Yeasin 2020, arXiv:2008.00299"
    uses_gradients = False

    @dataclass
    class Params(CamParams):
        #: The SVD's sign is arbitrary; flip each map so that its largest magnitude is positive
        #: (Seg-Eigen-CAM, eq. 13). ``false`` keeps the sign the SVD returns.
        sign_correction: bool = True

    def layer_maps(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        distinct, k = _unique_inputs(inputs, context)
        capture = self.capture(model, inputs, targets, context)
        a = capture.activations[::k].double()
        n, c, h, w = a.shape
        positions = torch.nan_to_num(a).reshape(n, c, h * w).transpose(1, 2)
        positions = positions - positions.mean(dim=1, keepdim=True)
        _, _, vh = torch.linalg.svd(positions, full_matrices=False)
        maps = (positions @ vh[:, 0, :, None]).reshape(n, h, w)
        if self.params.sign_correction:
            flat = maps.flatten(1)
            flip = flat.min(dim=1).values.abs() > flat.max(dim=1).values.abs()
            maps = torch.where(flip[:, None, None], -maps, maps)
        return maps.float().repeat_interleave(k, dim=0)


class ScoreCam(LayerCam):
    """Score-CAM: channel weights from the class score of the input masked by each channel."""

    name = "score_cam"
    summary = "channel weights from the class score of the input masked by each activation map"
    paper = "Wang et al. 2020, arXiv:1910.01279"
    uses_gradients = False

    @dataclass
    class Params(CamParams):
        #: Masked inputs per forward pass (bounds memory: ``batch_size x 3 x H x W`` floats).
        batch_size: int = 32
        #: Channel score: the target ``logit`` (pytorch-grad-cam) or its softmax ``probability``
        #: (the paper's official code); either way the weights are a softmax over channels.
        score: str = field(default="logit", metadata={"choices": ("logit", "probability")})
        #: Corner alignment of the mask upsampling (pytorch-grad-cam uses
        #: ``UpsamplingBilinear2d``, which aligns corners).
        mask_align_corners: bool = True

    def layer_maps(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        if self.params.batch_size < 1:
            raise XaiError(
                f"score_cam: batch_size must be at least 1, not {self.params.batch_size}"
            )
        distinct, k = _unique_inputs(inputs, context)
        capture = self.capture(model, inputs, targets, context)
        activations = capture.activations[::k]
        per_target = targets.view(len(distinct), k)
        maps = []
        evaluated = 0
        for x, a, t in zip(distinct, activations, per_target):
            scores, count = self._channel_scores(model, x, a, t)
            evaluated += count
            weights = torch.softmax(scores, dim=0)  # [C, k]
            maps.append(torch.einsum("ck,chw->khw", weights, a))
        context.metadata["score_cam_forward_passes"] = evaluated
        return torch.cat(maps)

    def _channel_scores(
        self, model: nn.Module, x: Tensor, a: Tensor, targets: Tensor
    ) -> tuple[Tensor, int]:
        """Scores ``[C, k]`` of ``x`` masked by each channel of ``a`` ``[C, h, w]``.

        Channels that give the same mask share one forward pass: a constant channel gives the
        zero mask, and channels whose min-max normalised maps agree to 1e-6 give masks that
        agree to 1e-6 (normalisation commutes with the linear upsampling). On a ReLU network's
        last layer this often halves the work or better.
        """
        flat = a.flatten(1)
        low, high = flat.min(dim=1, keepdim=True).values, flat.max(dim=1, keepdim=True).values
        span = high - low
        keys = torch.where(span > 0, (flat - low) / span.clamp_min(1e-30), torch.zeros_like(flat))
        keys = torch.round(keys * 1e6)
        unique_keys, inverse = torch.unique(keys, dim=0, return_inverse=True)
        first = torch.full((len(unique_keys),), len(flat), dtype=torch.long, device=a.device)
        first.scatter_reduce_(
            0, inverse, torch.arange(len(flat), device=a.device), reduce="amin"
        )
        size = (x.shape[1], x.shape[2])
        scores = []
        with torch.no_grad():
            for start in range(0, len(first), self.params.batch_size):
                chosen = a[first[start : start + self.params.batch_size]]
                masks = F.interpolate(
                    chosen[:, None],
                    size=size,
                    mode="bilinear",
                    align_corners=self.params.mask_align_corners,
                )
                mflat = masks.flatten(1)
                mlow = mflat.min(dim=1).values[:, None, None, None]
                mhigh = mflat.max(dim=1).values[:, None, None, None]
                masks = (masks - mlow) / (mhigh - mlow + _SCORE_MASK_EPS)
                logits = model(x[None] * masks).float()
                if self.params.score == "probability":
                    logits = torch.softmax(logits, dim=1)
                scores.append(logits[:, targets])
        return torch.cat(scores)[inverse], len(first)


class GuidedGradCam(LayerCam):
    """Guided Grad-CAM: guided backpropagation times the upsampled Grad-CAM map."""

    name = "guided_grad_cam"
    summary = "guided backpropagation x upsampled Grad-CAM, reduced over colour channels"
    paper = "Selvaraju et al. 2017, arXiv:1610.02391 (section 3.1)"

    @dataclass
    class Params(CamParams):
        #: Reduction of the ``[3, H, W]`` product over colour channels.
        reduction: str = field(default="max", metadata={"choices": REDUCTIONS})
        #: Treat ReLU6 like ReLU in guided backpropagation (EfficientNet-Lite, MobileNet).
        relu6: bool = True

    def compute(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        from xai_core.nn.relu_rules import relu_rule_gradients

        with torch.inference_mode(False):
            inputs, targets = _outside_inference_mode(inputs, targets)
            cam = self.finish(
                self.layer_maps(model, inputs, targets, context), (inputs.shape[2], inputs.shape[3])
            )
            guided = relu_rule_gradients(model, inputs, targets, "guided", self.params.relu6)
            return reduce_channels(guided * cam[:, None], self.params.reduction)

    def layer_maps(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        capture = self.capture(model, inputs, targets, context)
        assert capture.gradients is not None
        return grad_cam_map(capture.activations, capture.gradients)


CAM_METHODS = (
    GradCam,
    GradCamPlusPlus,
    XGradCam,
    HiResCam,
    LayerCamMethod,
    ScoreCam,
    EigenCam,
    GuidedGradCam,
)


@hookimpl
def register_attributors(register):
    for method in CAM_METHODS:
        register(method)
