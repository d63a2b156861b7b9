"""Target layers for layer-based techniques: which layer to explain, and how to see it as a grid.

This is the backbone-adapter knowledge that CAM-style techniques need and should not each repeat:

* :func:`auto_layer` finds the last feature map of a classifier's backbone: the last layer that
  still has spatial resolution *and* on which the class scores depend position by position (for
  a ViT with a class token that is the input normalisation of the last block, not the last
  block's output, whose patch tokens the class token never reads), never a head's class-score
  map (SqueezeNet's 1x1 convolution to 1000 channels) nor an adaptive pooling that resamples the
  backbone's map to a fixed grid (VGG's and AlexNet's ``avgpool``).
* :func:`infer_layout` recognises what a layer outputs: a ``[N, C, H, W]`` feature map, a
  channels-last ``[N, H, W, C]`` map (Swin), or a ``[N, L, C]`` token sequence with class or
  distillation tokens in front (ViT, DeiT, Mixer, LeViT).
* :class:`LayerLayout` turns such an output (or its gradient) into a ``[N, C, h, w]`` grid.
* :func:`list_layers` (behind ``xai list layers MODEL``) lists every module with its type and
  output shape, marking the automatic layer; :func:`check_layer` checks a layer name, naming
  close matches and that command when it is not a module of the model.

What does *not* live here: the CAM bases (:mod:`xai_core.families.cam`), the CAM formulas (the
``cam`` plugin) and model loading (:mod:`xai_core.models`).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from xai_core.errors import UnknownNameError, XaiError, did_you_mean
from xai_core.nn.hooks import HookRecorder, get_module, model_state

__all__ = [
    "LayerLayout",
    "TargetLayer",
    "LayerInfo",
    "UnknownLayerError",
    "infer_layout",
    "auto_layer",
    "find_target_layer",
    "list_layers",
    "check_layer",
]

#: Module names and class-name fragments of attention modules. Queries, keys, values and
#: attention matrices are not representations of image regions, so ``auto`` never picks a module
#: inside one.
_ATTENTION_NAMES = ("attn", "attention", "self_attn")
_ATTENTION_CLASSES = ("attention", "attn")

#: Largest number of class/distillation/register tokens tried when a model does not say.
_MAX_PREFIX_TOKENS = 8


@dataclass(frozen=True)
class LayerLayout:
    """How a layer's output maps onto the image grid.

    :ivar kind: ``"NCHW"`` (convolutional maps), ``"NHWC"`` (channels last, as timm's Swin) or
        ``"tokens"`` (``[N, L, C]``: ``prefix_tokens`` class/distillation tokens, then the patch
        tokens in raster order).
    :ivar grid: ``(h, w)`` of the spatial grid.
    :ivar prefix_tokens: tokens before the patch tokens (``tokens`` only).
    """

    kind: Literal["NCHW", "NHWC", "tokens"]
    grid: tuple[int, int]
    prefix_tokens: int = 0

    def to_grid(self, tensor: Tensor) -> Tensor:
        """``tensor`` (this layer's output, or its gradient) as a ``[N, C, h, w]`` grid."""
        h, w = self.grid
        if self.kind == "NCHW":
            return tensor
        if self.kind == "NHWC":
            return tensor.permute(0, 3, 1, 2)
        patches = tensor[:, self.prefix_tokens :, :]
        return patches.transpose(1, 2).reshape(tensor.shape[0], tensor.shape[2], h, w)

    def describe(self) -> str:
        """Short text for metadata: ``"NCHW 7x7"``, ``"tokens 14x14 (+1 prefix)"``."""
        text = f"{self.kind} {self.grid[0]}x{self.grid[1]}"
        if self.kind == "tokens" and self.prefix_tokens:
            text += f" (+{self.prefix_tokens} prefix)"
        return text


@dataclass(frozen=True)
class TargetLayer:
    """A resolved target layer: its module path, the module, and whether ``auto`` chose it."""

    path: str
    module: nn.Module
    auto: bool


def _fits_grid(h: int, w: int, input_hw: tuple[int, int]) -> bool:
    """Whether ``h x w`` can be the input grid seen through one stride (same in both axes).

    Strides are compared with slack because unpadded convolutions and odd sizes round
    (Inception at 299 pixels has 35x35 maps).
    """
    height, width = input_hw
    if h < 2 or w < 2 or h > height or w > width:
        return False
    stride_h, stride_w = height / h, width / w
    return abs(stride_h - stride_w) <= 0.25 * max(stride_h, stride_w)


def _token_grid(count: int, input_hw: tuple[int, int]) -> tuple[int, int] | None:
    """The ``(h, w)`` grid of ``count`` patch tokens with the input's aspect ratio, if any."""
    height, width = input_hw
    h = round(math.sqrt(count * height / width))
    for candidate in (h, h - 1, h + 1):
        if candidate > 1 and count % candidate == 0:
            grid = (candidate, count // candidate)
            # Patch grids keep the input's aspect ratio up to rounding of one patch.
            if _fits_grid(*grid, input_hw) and abs(grid[0] * width - grid[1] * height) <= max(
                height, width
            ):
                return grid
    return None


def _model_prefix_tokens(model: nn.Module | None) -> int | None:
    value = getattr(model, "num_prefix_tokens", None)
    return value if isinstance(value, int) and value >= 0 else None


def infer_layout(
    output: Any, input_hw: tuple[int, int], model: nn.Module | None = None
) -> LayerLayout | None:
    """The :class:`LayerLayout` of a layer output for an input of ``input_hw``, or ``None``.

    ``None`` means the output has no spatial grid (pooled features, logits, a tuple). A 4-D output
    is channels-first unless only the channels-last reading gives a grid consistent with the
    input; a 3-D output is tokens, with the class/distillation tokens the model declares
    (``num_prefix_tokens``, as timm's ViT, DeiT and relatives do) or, for other models, the
    fewest leading tokens that leave a grid.
    """
    if not isinstance(output, Tensor) or not output.is_floating_point():
        return None
    if output.ndim == 4:
        if _fits_grid(output.shape[2], output.shape[3], input_hw):
            return LayerLayout("NCHW", (output.shape[2], output.shape[3]))
        if _fits_grid(output.shape[1], output.shape[2], input_hw):
            return LayerLayout("NHWC", (output.shape[1], output.shape[2]))
        return None
    if output.ndim == 3:
        length = output.shape[1]
        declared = _model_prefix_tokens(model)
        candidates = [declared] if declared is not None else []
        candidates += [p for p in range(_MAX_PREFIX_TOKENS + 1) if p != declared]
        for prefix in candidates:
            if length - prefix < 4:
                break
            grid = _token_grid(length - prefix, input_hw)
            if grid is not None:
                return LayerLayout("tokens", grid, prefix)
    return None


def _attention_modules(model: nn.Module) -> set[str]:
    """Paths of the attention modules of ``model`` (by name, or by class name for blocks that
    are not called ``attn``); a module whose class is a whole block (``...Block``) is not one."""
    found = set()
    for path, module in model.named_modules():
        cls = type(module).__name__.lower()
        by_class = any(m in cls for m in _ATTENTION_CLASSES) and "block" not in cls
        if path and (path.rsplit(".", 1)[-1] in _ATTENTION_NAMES or by_class):
            found.add(path)
    return found


def _inside(path: str, containers: set[str]) -> bool:
    parts = path.split(".")
    return any(".".join(parts[:i]) in containers for i in range(1, len(parts)))


_AUTO_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[tuple[int, int, int], str]] = (
    weakref.WeakKeyDictionary()
)


def auto_layer(
    model: nn.Module, input_hw: tuple[int, int] = (224, 224), channels: int = 3
) -> str:
    """Module path of the layer ``layer: auto`` means for ``model`` at ``input_hw``, for inputs
    of ``channels`` channels (the model's :attr:`~xai_core.ModelHandle.in_chans`).

    One forward and backward pass on a fixed random probe records, in the order modules finish,
    every output with a spatial layout (:func:`infer_layout`). The answer is the last of those on
    which the summed class scores have a non-zero gradient at two or more grid positions: the
    last block with spatial resolution that the prediction still reads position by position.
    When a container and its last child return the same tensor the container wins (it finishes
    later); modules that return their input unchanged (``Identity``) and the internals of
    attention modules are skipped. Two kinds of spatial output are not feature maps and are
    skipped too:

    * a *resampler*: an adaptive pooling module, or any module whose output grid is larger than
      its input's (VGG's ``AdaptiveAvgPool2d((7, 7))`` stretches a 4x4 map at 128 pixels);
    * a *class-score map*: one channel per class, where one class's score reads only its own
      channel (SqueezeNet's ``classifier.1``, a 1x1 convolution to 1000 maps that are then
      averaged): a CAM there collapses to the class's own score map.

    The result is cached per model, input size and channel count.

    :raises XaiError: when no layer qualifies (name one explicitly then).
    """
    cache = _AUTO_CACHE.setdefault(model, {})
    key = (int(input_hw[0]), int(input_hw[1]))
    if (*key, channels) not in cache:
        # The channel count is passed only when it is not the default RGB.
        args = (model, key) if channels == 3 else (model, key, channels)
        cache[(*key, channels)] = _trace_auto_layer(*args)
    return cache[(*key, channels)]


def _trace_auto_layer(model: nn.Module, input_hw: tuple[int, int], channels: int = 3) -> str:
    seen: list[tuple[str, Tensor, LayerLayout]] = []
    flat: list[tuple[Tensor, Any]] = []
    generator = torch.Generator().manual_seed(0)
    attention = _attention_modules(model)
    with model_state(model) as device, HookRecorder() as hooks:
        for path, sub in model.named_modules():
            if path and not _inside(path, attention):
                hooks.forward(sub, _probe_hook(path, model, input_hw, seen, flat))
        probe = torch.randn(2, channels, *input_hw, generator=generator)
        probe = probe.to(device).requires_grad_(True)
        logits = model(probe)
        if not isinstance(logits, Tensor) or not seen:
            raise XaiError(
                f"{type(model).__name__} has no layer with a spatial output (a [N,C,H,W] map, "
                "channels-last map or patch tokens); layer-based methods need one, or name "
                "the layer explicitly"
            )
        # The features the classifier head reads, not the logits: a freshly initialised head
        # may be all zeros (timm's Mixer), which would hide every dependency.
        features = next(
            (inp for out, inp in flat if out is logits and isinstance(inp, Tensor)), logits
        )
        class_maps = _class_score_maps(logits, seen)
        direction = torch.randn(features.shape, generator=generator).to(features)
        grads = torch.autograd.grad(
            (features.float() * direction).sum(), [out for _, out, _ in seen], allow_unused=True
        )
    return _last_positional_layer(model, seen, grads, class_maps)


def _probe_hook(
    path: str,
    model: nn.Module,
    input_hw: tuple[int, int],
    seen: list[tuple[str, Tensor, LayerLayout]],
    flat: list[tuple[Tensor, Any]],
) -> Callable[..., None]:
    """A forward hook for the layer at ``path`` on the probe pass: records a spatial output
    that needs grad and keeps the probe's resolution in ``seen``, a flat one (with its input)
    in ``flat``."""

    def hook(module: nn.Module, inputs: Any, output: Any) -> None:
        first = inputs[0] if isinstance(inputs, tuple) and inputs else None
        if output is first:
            return
        if isinstance(output, Tensor) and output.ndim == 2:
            flat.append((output, first))
        layout = infer_layout(output, input_hw, model)
        if (
            layout is not None
            and output.shape[0] == 2
            and output.requires_grad
            and not _resamples(module, first, layout, input_hw, model)
        ):
            seen.append((path, output, layout))

    return hook


def _last_positional_layer(
    model: nn.Module,
    seen: list[tuple[str, Tensor, LayerLayout]],
    grads: Sequence[Tensor | None],
    class_maps: set[str],
) -> str:
    """The deepest layer of ``seen`` (not a class-score map) whose gradient reaches at least
    two positions of each probe image."""
    for (path, _, layout), grad in reversed(list(zip(seen, grads))):
        if grad is None or path in class_maps:
            continue
        per_position = layout.to_grid(grad).abs().sum(dim=1)
        if int((per_position > 0).sum(dim=(1, 2)).min()) >= 2:
            return path
    raise XaiError(
        f"no spatial layer of {type(model).__name__} influences its output position by "
        "position; name the layer explicitly"
    )


def _resamples(
    module: nn.Module,
    first: Any,
    layout: LayerLayout,
    input_hw: tuple[int, int],
    model: nn.Module,
) -> bool:
    """Whether ``module`` only resamples a map to another grid rather than computing features:
    an adaptive pooling (its grid is fixed, not the input's seen through a stride) or any layer
    whose output grid is larger than its input's."""
    if "adaptive" in type(module).__name__.lower() and "pool" in type(module).__name__.lower():
        return True
    before = infer_layout(first, input_hw, model) if isinstance(first, Tensor) else None
    return before is not None and (
        layout.grid[0] > before.grid[0] or layout.grid[1] > before.grid[1]
    )


def _class_score_maps(logits: Tensor, seen: list[tuple[str, Tensor, LayerLayout]]) -> set[str]:
    """Paths of the outputs in ``seen`` that are class-score maps: one channel per class, and
    the first class's score has a gradient in that class's channel only (a head that already
    separated the classes, such as SqueezeNet's 1x1 convolution before its average pool).

    Only outputs with as many channels as there are classes are checked, so most models pay
    nothing; the check needs the logits' own gradient, not the features' (see the caller).
    """
    classes = logits.shape[1] if logits.ndim == 2 else 0
    candidates = [
        (path, out, layout)
        for path, out, layout in seen
        if classes > 1 and layout.to_grid(out).shape[1] == classes
    ]
    if not candidates:
        return set()
    grads = torch.autograd.grad(
        logits[:, 0].float().sum(),
        [out for _, out, _ in candidates],
        allow_unused=True,
        retain_graph=True,
    )
    found = set()
    for (path, _, layout), grad in zip(candidates, grads):
        if grad is None:
            continue
        per_channel = layout.to_grid(grad).abs().sum(dim=(2, 3))
        if bool(((per_channel > 0).sum(dim=1) == 1).all()) and bool(
            (per_channel[:, 0] > 0).all()
        ):
            found.add(path)
    return found


def find_target_layer(
    model: nn.Module, layer: str, input_hw: tuple[int, int] = (224, 224), channels: int = 3
) -> TargetLayer:
    """Resolve ``layer`` (a module path such as ``"blocks.6"``, or ``"auto"``) on ``model``,
    for inputs of ``input_hw`` and ``channels``.

    :raises UnknownLayerError: for a path that is not a module of ``model`` (see
        :func:`check_layer`).
    """
    if layer == "auto":
        path = auto_layer(model, input_hw, channels)
        return TargetLayer(path, get_module(model, path), auto=True)
    check_layer(model, layer)
    return TargetLayer(layer, get_module(model, layer), auto=False)


class UnknownLayerError(UnknownNameError):
    """A layer name that is not a module path of the model: the message names close matches,
    the model's top-level modules and the command that lists every layer."""

    def __init__(self, layer: str, model: nn.Module, model_name: str | None = None):
        paths = [path for path, _ in model.named_modules() if path]
        super().__init__("layer", layer, paths)
        owner = model_name or type(model).__name__
        message = f"unknown layer {layer!r} of {owner}{did_you_mean(layer, paths)}"
        top = [name for name, _ in model.named_children()]
        message += (
            f" It has {len(paths)} layers (module paths such as "
            f"{', '.join(top[:8]) + (', ...' if len(top) > 8 else '')}); "
            f"`xai list layers {model_name or 'MODEL'}` lists them with their output shapes, "
            "and `layer: auto` picks the last feature map."
        )
        self.args = (message,)


def check_layer(model: nn.Module, layer: str, model_name: str | None = None) -> str:
    """``layer`` if it is ``"auto"`` or a module path of ``model``, checked without running it.

    :param model_name: the registry name shown in the error (``"efficientnet_lite0"``).
    :raises UnknownLayerError: naming close matches (difflib) and ``xai list layers MODEL``.
    """
    if layer == "auto" or layer in dict(model.named_modules()):
        return layer
    raise UnknownLayerError(layer, model, model_name)


@dataclass(frozen=True)
class LayerInfo:
    """One module of a model, as :func:`list_layers` reports it.

    :ivar path: module path (``"blocks.6.0.conv_pw"``); what a ``layer`` parameter takes.
    :ivar type: the module's class name.
    :ivar output_shape: shape of its output for one image at the model's input size (the first
        tensor of a tuple output), or ``None`` when it never ran or returned no tensor.
    :ivar calls: how many times it ran in one forward pass (a shared module runs more than once;
        its shape is that of the last call).
    :ivar auto: whether ``layer: auto`` picks it (:func:`auto_layer`).
    """

    path: str
    type: str
    output_shape: tuple[int, ...] | None
    calls: int
    auto: bool


def list_layers(
    model: nn.Module, input_hw: tuple[int, int] = (224, 224), channels: int = 3
) -> list[LayerInfo]:
    """Every module of ``model`` (the model itself excluded), in definition order, with its
    output shape for a zero image of ``input_hw`` and ``channels``.

    One forward pass under ``no_grad`` with forward hooks; hooks, mode and parameter flags are
    restored afterwards. The automatic layer is found as :func:`auto_layer` finds it; a model
    without one lists no layer as ``auto``.
    """
    shapes: dict[str, tuple[int, ...] | None] = {}
    calls: dict[str, int] = {}

    def make_hook(path: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            first = output
            if isinstance(output, (tuple, list)):
                first = next((o for o in output if isinstance(o, Tensor)), None)
            shapes[path] = tuple(first.shape) if isinstance(first, Tensor) else None
            calls[path] = calls.get(path, 0) + 1

        return hook

    modules = [(path, sub) for path, sub in model.named_modules() if path]
    with model_state(model) as device, HookRecorder() as hooks, torch.no_grad():
        for path, sub in modules:
            hooks.forward(sub, make_hook(path))
        model(torch.zeros(1, channels, *input_hw, device=device))
    try:
        automatic: str | None = auto_layer(model, input_hw, channels)
    except XaiError:
        automatic = None
    return [
        LayerInfo(
            path, type(sub).__name__, shapes.get(path), calls.get(path, 0), path == automatic
        )
        for path, sub in modules
    ]
