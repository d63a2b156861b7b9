"""Class activation maps: Grad-CAM, guided Grad-CAM and the CAM family, on CNNs and transformers.

Every method here weighs the activations ``A`` of one target layer (seen as a ``[C, h, w]`` grid,
see :mod:`xai_core.layers`) into a ``[h, w]`` map, optionally applies a ReLU and a min-max
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

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xai_core import Attributor, hookimpl
from xai_core.errors import XaiError
from xai_core.gradients import REDUCTIONS, reduce_channels
from xai_core.layers import LayerLayout, find_target_layer, infer_layout
from xai_core.techniques import AttributionContext

#: Interpolation modes for bringing a map from layer to input resolution.
UPSAMPLE_MODES = ("bilinear", "bicubic", "nearest")
#: Map normalisations: ``none`` keeps the raw scale (Captum), ``minmax`` scales each map to [0, 1].
NORMALIZATIONS = ("none", "minmax")

#: pytorch-grad-cam's constants, kept so that its maps are reproduced to float precision.
_MINMAX_EPS = 1e-7
_PLUSPLUS_EPS = 1e-6
_XGRAD_EPS = 1e-7
_SCORE_MASK_EPS = 1e-8


@dataclass
class CamParams:
    """Parameters every CAM method shares."""

    #: Target layer: a module path such as ``blocks.6`` or ``layer4``, or ``auto`` (the last
    #: layer with spatial resolution that the prediction reads; reported in the metadata).
    layer: str = "auto"
    #: ReLU on the layer-resolution map (the papers); ``false`` keeps negative evidence.
    relu: bool = True
    #: ``minmax`` scales each map to [0, 1] (before and after upsampling); ``none`` keeps scale.
    normalize: str = field(default="minmax", metadata={"choices": NORMALIZATIONS})
    #: Interpolation from layer to input resolution (``align_corners`` false, as OpenCV).
    upsample: str = field(default="bilinear", metadata={"choices": UPSAMPLE_MODES})


@dataclass
class LayerCapture:
    """The target layer's activations and, per map row, the gradient of that row's class score.

    :ivar activations: ``[B, C, h, w]`` grid, one row per map (inputs repeated per target).
    :ivar gradients: same shape, or ``None`` for gradient-free methods.
    :ivar logits: model outputs for the distinct inputs ``[M, classes]``.
    :ivar layout: how the layer's output maps onto the grid.
    """

    activations: Tensor
    gradients: Tensor | None
    logits: Tensor
    layout: LayerLayout


def _unique_inputs(inputs: Tensor, context: AttributionContext) -> tuple[Tensor, int]:
    """The distinct inputs of an input-major batch with ``k`` targets each, and ``k``."""
    k = max(1, context.targets_per_input)
    return inputs[::k], k


def capture_layer(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    context: AttributionContext,
    module: nn.Module,
    path: str,
    with_gradients: bool = True,
) -> LayerCapture:
    """Run ``model`` once on the distinct inputs and read ``module``'s output and its gradients.

    ``inputs``/``targets`` are the base class's input-major rows (``k`` per distinct input). The
    forward pass runs on the distinct inputs only; the ``k`` targets of an input each get one
    backward pass, which stops at the layer.
    """
    distinct, k = _unique_inputs(inputs, context)
    input_hw = (inputs.shape[2], inputs.shape[3])
    captured: list[tuple[Tensor, LayerLayout]] = []

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> Any:
        if captured:
            raise XaiError(
                f"layer {path!r} runs more than once per forward pass (a shared module); "
                "choose a module that runs once, such as the block that contains it"
            )
        layout = infer_layout(output, input_hw, model)
        if layout is None:
            shape = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
            raise XaiError(
                f"layer {path!r} outputs {shape}, which has no spatial grid for a "
                f"{input_hw[0]}x{input_hw[1]} input; choose a layer with a [N,C,H,W] map, a "
                "channels-last map or patch tokens (or use layer: auto)"
            )
        leaf = output.detach().requires_grad_(with_gradients)
        captured.append((leaf, layout))
        # The rest of the network gets a copy: in-place operations after the layer (a residual
        # `out += identity`) must not change the activations we read.
        return leaf.clone()

    handle = context.hooks.forward(module, hook)
    try:
        logits = model(distinct)
    finally:
        # Only this pass is ours: later passes (guided backprop) must run the plain layer.
        handle.remove()
    if not captured:
        raise XaiError(f"layer {path!r} did not run during the forward pass")
    leaf, layout = captured[0]
    activations = layout.to_grid(leaf.detach())
    if k > 1:
        activations = activations.repeat_interleave(k, dim=0)
    gradients = None
    if with_gradients:
        per_target = targets.view(len(distinct), k)
        rows = torch.arange(len(distinct), device=logits.device)
        grads = []
        for j in range(k):
            score = logits[rows, per_target[:, j]].sum()
            (grad,) = torch.autograd.grad(score, leaf, retain_graph=j < k - 1)
            grads.append(layout.to_grid(grad))
        gradients = torch.stack(grads, dim=1).flatten(0, 1)
    return LayerCapture(activations, gradients, logits.detach(), layout)


def _outside_inference_mode(*tensors: Tensor) -> tuple[Tensor, ...]:
    """Normal copies of tensors created under ``torch.inference_mode``, which autograd refuses
    (called when the caller disabled gradients that way)."""
    return tuple(t.clone() if t.is_inference() else t for t in tensors)


def minmax(maps: Tensor) -> Tensor:
    """Scale each map ``[N, H, W]`` to ``[0, 1]`` as pytorch-grad-cam does (``eps`` 1e-7)."""
    flat = maps.flatten(1)
    shifted = flat - flat.min(dim=1, keepdim=True).values
    return (shifted / (shifted.max(dim=1, keepdim=True).values + _MINMAX_EPS)).view_as(maps)


def upsample(maps: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    """Interpolate maps ``[N, h, w]`` to ``size`` (``align_corners`` false, as OpenCV)."""
    if tuple(maps.shape[1:]) == tuple(size):
        return maps
    corners = None if mode == "nearest" else False
    return F.interpolate(maps[:, None], size=size, mode=mode, align_corners=corners)[:, 0]


class LayerCam(Attributor):
    """Base of the CAM methods: resolves the target layer, post-processes the layer map.

    Subclasses implement :meth:`layer_maps` (``[N, h, w]`` at layer resolution, before ReLU);
    everything else (layer choice, metadata, ReLU, normalisation, upsampling) is shared.
    """

    #: Whether :meth:`layer_maps` needs gradients at the layer.
    uses_gradients: ClassVar[bool] = True

    Params = CamParams

    def compute(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        with torch.inference_mode(False):
            inputs, targets = _outside_inference_mode(inputs, targets)
            maps = self.layer_maps(model, inputs, targets, context)
            return self.finish(maps, (inputs.shape[2], inputs.shape[3]))

    def target_layer(self, model: nn.Module, inputs: Tensor, context: AttributionContext):
        """Resolve ``params.layer`` and record it in ``context.metadata``."""
        found = find_target_layer(model, self.params.layer, (inputs.shape[2], inputs.shape[3]))
        context.metadata.update(layer=found.path, layer_auto=found.auto)
        return found

    def capture(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> LayerCapture:
        """Activations (and gradients, if :attr:`uses_gradients`) of the target layer."""
        layer = self.target_layer(model, inputs, context)
        capture = capture_layer(
            model, inputs, targets, context, layer.module, layer.path, self.uses_gradients
        )
        context.metadata["layer_layout"] = capture.layout.describe()
        return capture

    @abc.abstractmethod
    def layer_maps(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        """Maps ``[N, h, w]`` at the target layer's resolution, before ReLU and normalisation."""

    def finish(self, maps: Tensor, size: tuple[int, int]) -> Tensor:
        """ReLU, normalisation and upsampling, as set in the parameters."""
        maps = maps.float()
        if self.params.relu:
            maps = maps.clamp_min(0)
        if self.params.normalize == "minmax":
            maps = minmax(maps)
        maps = upsample(maps, size, self.params.upsample)
        if self.params.normalize == "minmax":
            maps = minmax(maps)
        return maps


class _GradientCam(LayerCam):
    """A CAM method that is a formula in activations ``A`` and gradients ``G`` ``[N, C, h, w]``."""

    formula: ClassVar[Callable[[Tensor, Tensor], Tensor]]

    def layer_maps(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        capture = self.capture(model, inputs, targets, context)
        assert capture.gradients is not None
        return type(self).formula(capture.activations, capture.gradients)


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
        from xai_core_plugins.gradients import relu_rule_gradients

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
