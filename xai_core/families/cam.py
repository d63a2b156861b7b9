from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xai_core.contracts.technique import AttributionContext, Attributor
from xai_core.errors import XaiError
from xai_core.nn.layers import LayerLayout, find_target_layer, infer_layout

#: Interpolation modes for bringing a map from layer to input resolution.
UPSAMPLE_MODES = ("bilinear", "bicubic", "nearest")


#: Map normalisations: ``none`` keeps the raw scale (Captum), ``minmax`` scales each map to [0, 1].
NORMALIZATIONS = ("none", "minmax")


#: pytorch-grad-cam's constants, kept so that its maps are reproduced to float precision.
_MINMAX_EPS = 1e-7


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
