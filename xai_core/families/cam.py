"""The CAM family: class activation maps read from one target layer of the model.

* :class:`LayerCam`: the base of every CAM. It resolves the target layer (``layer: auto`` picks
  the last layer with spatial resolution and reports it), captures its activations and gradients
  (:meth:`LayerCam.capture`), and post-processes the layer-resolution map: ReLU, min-max
  normalisation, upsampling to the input size (:meth:`LayerCam.finish`). A subclass implements
  :meth:`LayerCam.layer_maps`.
* :class:`GradientCam`: a CAM whose map is ``sum_c w_c * A_c`` for weights computed from the
  activations ``A`` and the gradients ``G`` of the class score at the layer. A new method is one
  method, :meth:`GradientCam.cam_weights` (pytorch-grad-cam's ``BaseCAM.get_cam_weights``)::

      class MaxGradCam(GradientCam):
          name = "max_grad_cam"

          def cam_weights(self, activations, gradients):
              return gradients.amax(dim=(2, 3))        # [N, C]

* :func:`capture_layer` / :class:`LayerCapture`: one forward pass on the distinct inputs, one
  backward pass per target that stops at the layer; usable on its own. It is
  :func:`layer_pass` (the pass, which is also :meth:`LayerCam.forward_pass`, so a run's
  predictions come from it) then :func:`read_layer_pass`.
* :func:`minmax`, :func:`upsample`: the map post-processing, as pytorch-grad-cam does it.

What does not live here: finding the layer and reading CNN/transformer outputs as a grid
(:mod:`xai_core.nn.layers`), the ReLU rules of guided Grad-CAM (:mod:`xai_core.nn.relu_rules`),
and the built-in methods (the ``cam`` plugin, ``xai_core_plugins.cam``).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xai_core.contracts.attributor import Attributor
from xai_core.contracts.technique import AttributionContext, ForwardPass
from xai_core.errors import PluginError, XaiError
from xai_core.families.batches import distinct_inputs
from xai_core.nn.layers import LayerLayout, TargetLayer, find_target_layer, infer_layout

__all__ = [
    "CamParams",
    "GradientCam",
    "LayerCam",
    "LayerCapture",
    "LayerPass",
    "NORMALIZATIONS",
    "UPSAMPLE_MODES",
    "capture_layer",
    "layer_pass",
    "minmax",
    "read_layer_pass",
    "upsample",
    "upsample_normalized",
]

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

    :param inputs: ``compute``'s rows ``[M * k, C, H, W]``, ``k`` per distinct input (see
        :func:`~xai_core.families.batches.distinct_inputs`).
    :param targets: ``[M * k]``, the class of each row.
    :param context: the attributor's context; the hook goes through ``context.hooks``.
    :param module: the layer to read; ``path`` names it in errors.
    :param with_gradients: also take the gradient of each row's class score at the layer.
    :return: a :class:`LayerCapture` with one row per row of ``inputs``.

    The forward pass (:func:`layer_pass`) runs on the distinct inputs only; the ``k`` targets of
    an input each get one backward pass, which stops at the layer (:func:`read_layer_pass`).
    """
    distinct, _ = distinct_inputs(inputs, targets, context)
    layer = layer_pass(model, distinct, context, module, path, with_gradients)
    return read_layer_pass(layer, targets)


@dataclass
class LayerPass:
    """A forward pass that recorded one layer's output (:func:`layer_pass`).

    :ivar leaf: the layer's output as the rest of the network saw it: a detached tensor that
        requires grad when gradients are wanted (backward passes stop there).
    :ivar layout: how the output maps onto a grid.
    :ivar logits: the model's outputs ``[M, classes]``, with the graph back to ``leaf``.
    """

    leaf: Tensor
    layout: LayerLayout
    logits: Tensor


def layer_pass(
    model: nn.Module,
    inputs: Tensor,
    context: AttributionContext,
    module: nn.Module,
    path: str,
    with_gradients: bool = True,
) -> LayerPass:
    """One forward pass of ``model`` on ``inputs`` ``[M, C, H, W]`` recording ``module``'s
    output: the network continues from a detached copy, so a backward pass from the logits
    stops at the layer and computes nothing below it (nor any parameter gradient)."""
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
        logits = model(inputs)
    finally:
        # Only this pass is ours: later passes (guided backprop) must run the plain layer.
        handle.remove()
    if not captured:
        raise XaiError(f"layer {path!r} did not run during the forward pass")
    leaf, layout = captured[0]
    return LayerPass(leaf, layout, logits)


def read_layer_pass(layer: LayerPass, targets: Tensor) -> LayerCapture:
    """The :class:`LayerCapture` of a :func:`layer_pass` for ``targets`` ``[M * k]`` (``k`` per
    input of the pass, input-major): activations per row and, when the pass kept them, the
    gradient of each row's class score at the layer (one backward pass per target of an input,
    the graph kept between them)."""
    logits = layer.logits
    m = logits.shape[0]
    per_target = targets.to(logits.device).view(m, -1)
    k = per_target.shape[1]
    activations = layer.layout.to_grid(layer.leaf.detach())
    if k > 1:
        activations = activations.repeat_interleave(k, dim=0)
    gradients = None
    if layer.leaf.requires_grad:
        rows = torch.arange(m, device=logits.device)
        grads = []
        for j in range(k):
            score = logits[rows, per_target[:, j]].sum()
            (grad,) = torch.autograd.grad(score, layer.leaf, retain_graph=j < k - 1)
            grads.append(layer.layout.to_grid(grad))
        gradients = torch.stack(grads, dim=1).flatten(0, 1)
    return LayerCapture(activations, gradients, logits.detach(), layer.layout)


def outside_inference_mode(*tensors: Tensor) -> tuple[Tensor, ...]:
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


def upsample_normalized(maps: Tensor, size: tuple[int, int], normalize: str, mode: str) -> Tensor:
    """Maps ``[N, h, w]`` upsampled to ``size`` with interpolation ``mode``; with ``normalize``
    ``minmax``, scaled to ``[0, 1]`` before and after (pytorch-grad-cam's order). The
    post-processing of every map computed on a coarse grid: CAMs and the attention methods."""
    if normalize == "minmax":
        maps = minmax(maps)
    maps = upsample(maps, size, mode)
    if normalize == "minmax":
        maps = minmax(maps)
    return maps


class LayerCam(Attributor):
    """Base of the CAM methods: resolves the target layer and post-processes the layer map.

    A subclass implements :meth:`layer_maps` (``[N, h, w]`` at layer resolution, before ReLU),
    usually with :meth:`capture`; a gradient-free one sets :attr:`uses_gradients` to false. The
    rest is shared: the layer choice and its metadata (``layer``, ``layer_auto``,
    ``layer_layout``), ReLU, normalisation and upsampling per :class:`CamParams` (:meth:`finish`).
    A method that combines the CAM with something at input resolution (guided Grad-CAM)
    overrides :meth:`input_maps`.
    """

    #: Whether :meth:`capture` takes gradients at the layer.
    uses_gradients: ClassVar[bool] = True

    Params = CamParams

    def compute(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        # A caller under torch.inference_mode still gets maps: CAMs need autograd.
        with torch.inference_mode(False):
            inputs, targets = outside_inference_mode(inputs, targets)
            return self.input_maps(model, inputs, targets, context)

    def input_maps(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        """Maps ``[N, H, W]`` at input resolution: :meth:`layer_maps`, then :meth:`finish`."""
        maps = self.layer_maps(model, inputs, targets, context)
        return self.finish(maps, (inputs.shape[2], inputs.shape[3]))

    def check_model(self, handle: Any) -> None:
        """``layer: auto`` must find a spatial layer in the model (one probe pass)."""
        if self.params.layer == "auto":
            find_target_layer(handle.module, "auto", handle.preprocessing.input_size,
                              handle.in_chans)

    def target_layer(
        self, model: nn.Module, inputs: Tensor, context: AttributionContext
    ) -> TargetLayer:
        """Resolve ``params.layer`` and record it in ``context.metadata``."""
        found = find_target_layer(
            model, self.params.layer, (inputs.shape[2], inputs.shape[3]), inputs.shape[1]
        )
        context.metadata.update(layer=found.path, layer_auto=found.auto)
        return found

    def forward_pass(
        self, model: nn.Module, inputs: Tensor, context: AttributionContext
    ) -> ForwardPass:
        """The capture's forward pass (:func:`layer_pass` on the target layer): its logits give
        the predictions, and :meth:`capture` reads the layer from it."""
        # Outside inference mode even for a caller in it: the capture needs autograd.
        with torch.inference_mode(False):
            layer = self.target_layer(model, inputs, context)
            recorded = layer_pass(
                model, inputs, context, layer.module, layer.path, self.uses_gradients
            )
        return ForwardPass(logits=recorded.logits, saved={"layer_pass": recorded})

    def capture(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> LayerCapture:
        """Activations (and gradients, if :attr:`uses_gradients`) of the target layer, one row
        per row of ``inputs``: read from :meth:`forward_pass` when it ran on these inputs, else
        from a pass of their own (:func:`capture_layer`)."""
        forward = context.shared_pass(inputs)
        if forward is not None and "layer_pass" in forward.saved:
            capture = read_layer_pass(forward.saved["layer_pass"], targets)
        else:
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
        """ReLU, normalisation and upsampling to ``size``, as set in the parameters."""
        maps = maps.float()
        if self.params.relu:
            maps = maps.clamp_min(0)
        return upsample_normalized(maps, size, self.params.normalize, self.params.upsample)


class GradientCam(LayerCam):
    """A CAM whose map is ``sum_c w_c * A_c``, the weights computed from the layer's activations
    ``A`` and the gradients ``G`` of each row's class score there.

    Subclasses implement :meth:`cam_weights` only. Grad-CAM, Grad-CAM++, XGradCAM, HiResCAM and
    LayerCAM are each that one method.
    """

    @abc.abstractmethod
    def cam_weights(self, activations: Tensor, gradients: Tensor) -> Tensor:
        """Channel weights from ``activations`` and ``gradients`` ``[N, C, h, w]``.

        :return: ``[N, C]`` (one weight per channel, Grad-CAM) or ``[N, C, h, w]`` (a weight per
            cell, HiResCAM); the map is ``(weights * activations).sum(dim=1)``.
        """

    def layer_maps(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        capture = self.capture(model, inputs, targets, context)
        assert capture.gradients is not None
        activations = capture.activations
        weights = self.cam_weights(activations, capture.gradients)
        if weights.shape == activations.shape[:2]:
            weights = weights[:, :, None, None]
        elif weights.shape != activations.shape:
            raise PluginError(
                f"{type(self).__name__}.cam_weights returned {tuple(weights.shape)}; the contract "
                f"is [N, C] {tuple(activations.shape[:2])} or [N, C, h, w] "
                f"{tuple(activations.shape)}"
            )
        return (weights * activations).sum(dim=1)
