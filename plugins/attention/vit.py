"""What the attention methods need to know about a vision transformer: its attention modules, its
prefix tokens, the tokens its classifier reads, its patch grid, and how to read the attention
probabilities of one forward pass.

This is backbone-adapter knowledge (as :mod:`xai_core.nn.layers` is for the CAMs), kept apart
from the formulas so that both ``attention_rollout`` and ``attention_gradients`` use one copy and
so that it can move to the core (beside :mod:`xai_core.nn.layers`) unchanged when a second
technique family needs it. It knows timm's ``VisionTransformer`` family (``vit_*``, ``deit_*``
with or without a distillation token, register tokens of ``*_reg*`` models) and anything built the
same way:

* ``model.blocks``: the transformer blocks, each with an ``attn`` module that has a
  ``fused_attn`` switch and an ``attn_drop`` module; with ``fused_attn`` off, ``attn_drop``
  receives the softmaxed attention probabilities ``[N, heads, L, L]`` (timm's ``Attention``);
* ``model.num_prefix_tokens``: class, distillation and register tokens, in front of the patch
  tokens (raster order); ``model.cls_token``, ``model.dist_token``, ``model.global_pool``: which
  tokens the classifier reads;
* ``model.patch_embed.patch_size``: the patch grid of an input size.

It also knows Hugging Face's ViT and DeiT (``hf/*`` models: a wrapper whose ``model`` child is a
``ViTForImageClassification``, ``DeiTForImageClassification`` or
``DeiTForImageClassificationWithTeacher``, as :mod:`xai_core.models.huggingface` builds): each
layer's ``attention`` module returns ``(output, attention probabilities)`` when the model's
``config`` uses eager attention, which the capture switches on for the call (the fused kernels
return no probabilities) and reads from that output. Other Hugging Face models (Swin, ConvNeXt)
are refused with a message that names grad_cam.

What does not live here: the rollout formulas (:mod:`.rollout`, :mod:`.gradients`) and the map
post-processing (:mod:`xai_core.families.cam`'s ``minmax`` and ``upsample``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from xai_core.contracts.technique import AttributionContext
from xai_core.errors import XaiError

__all__ = [
    "READOUTS",
    "AttentionCapture",
    "VitAnatomy",
    "capture_attention",
    "check_captured",
    "vit_anatomy",
]

#: Which rows of the token-to-token relevance matrix make the map (the ``tokens`` parameter):
#: ``auto`` the tokens the classifier reads (the class token; the mean of the class and
#: distillation tokens for DeiT, whose logits average the heads on both; the mean of the patch
#: tokens for average-pooled models), ``class`` the class token, ``prefix_mean`` the mean over all
#: prefix tokens (class, distillation, registers), ``patch_mean`` the mean over the patch tokens.
READOUTS = ("auto", "class", "prefix_mean", "patch_mean")

_SUGGESTION = (
    "attention_rollout and attention_gradients need a vision transformer (timm vit_* or "
    "deit_*, e.g. timm/vit_small_patch16_224); for this model use grad_cam or another CAM or "
    "gradient method"
)


@dataclass(frozen=True)
class VitAnatomy:
    """The parts of a vision transformer that attention methods read.

    :ivar attention: ``(path, module)`` of each block's attention module, in forward order.
    :ivar prefix_tokens: tokens in front of the patch tokens (class, distillation, registers).
    :ivar head_tokens: indices of the tokens the classifier reads, or ``None`` when it reads the
        mean of the patch tokens (``global_pool: avg``).
    :ivar patch_size: ``(ph, pw)`` of the patch embedding.
    :ivar source: where the probabilities are read: ``"timm"`` (the input of each attention
        module's ``attn_drop``, with ``fused_attn`` off) or ``"transformers"`` (the second output
        of each attention module, with the model's config on eager attention).
    """

    attention: tuple[tuple[str, nn.Module], ...]
    prefix_tokens: int
    head_tokens: tuple[int, ...] | None
    patch_size: tuple[int, int]
    source: str = "timm"

    def grid(self, input_hw: tuple[int, int], tokens: int) -> tuple[int, int]:
        """The ``(h, w)`` patch grid of an input of ``input_hw`` whose sequence has ``tokens``
        tokens (prefix included)."""
        (height, width), (ph, pw) = input_hw, self.patch_size
        patches = tokens - self.prefix_tokens
        for h, w in ((height // ph, width // pw), (-(-height // ph), -(-width // pw))):
            if h * w == patches:
                return h, w
        raise XaiError(
            f"{patches} patch tokens do not form the {ph}x{pw}-patch grid of a "
            f"{height}x{width} input; is num_prefix_tokens ({self.prefix_tokens}) right?"
        )

    def readout(self, choice: str) -> tuple[int, ...] | None:
        """Token indices whose rows are averaged into the map for ``tokens: choice``
        (:data:`READOUTS`); ``None`` means the patch tokens."""
        if choice == "auto":
            return self.head_tokens
        if choice == "patch_mean":
            return None
        if self.prefix_tokens == 0:
            raise XaiError(
                f"tokens: {choice} needs prefix tokens, and this model has none "
                "(num_prefix_tokens is 0); use tokens: auto or patch_mean"
            )
        return (0,) if choice == "class" else tuple(range(self.prefix_tokens))


def _model_name(model: nn.Module, context: AttributionContext | None) -> str:
    name = getattr(context.handle, "name", None) if context is not None else None
    return name or type(model).__name__


def _is_transformers_model(model: nn.Module) -> bool:
    """Whether ``model`` is, or wraps, a Hugging Face ``transformers`` model (``hf/*``)."""
    return any(type(m).__module__.startswith("transformers.") for m in model.modules())


#: The Hugging Face classifiers whose attention is read, and the tokens their logits read: the
#: class token, or (DeiT with its teacher's head) the mean of the class and distillation heads.
_HF_HEADS = {
    "ViTForImageClassification": (0,),
    "DeiTForImageClassification": (0,),
    "DeiTForImageClassificationWithTeacher": (0, 1),
}


def _hf_anatomy(model: nn.Module, name: str) -> VitAnatomy:
    """The anatomy of a wrapped Hugging Face ViT or DeiT (``model.model``: the classifier,
    ``<base>.layers.N.attention``: each layer's attention module); a clear error for others."""
    inner = getattr(model, "model", None)
    kind = type(inner).__name__
    base = getattr(inner, getattr(inner, "base_model_prefix", ""), None)
    layers = getattr(base, "layers", None)
    prefix = getattr(model, "num_prefix_tokens", None)
    if kind not in _HF_HEADS or not isinstance(layers, nn.Module) or not isinstance(prefix, int):
        raise XaiError(
            f"model {name!r} is a Hugging Face {kind or type(model).__name__}, whose attention "
            "the attention methods cannot read: they read Hugging Face ViT and DeiT (hf/*) and "
            f"timm's vision transformers; {_SUGGESTION}"
        )
    base_path = f"model.{inner.base_model_prefix}.layers"
    attention = tuple(
        (f"{base_path}.{index}.attention", layer.attention)
        for index, layer in layers.named_children()
    )
    patch = inner.config.patch_size
    ph, pw = patch if isinstance(patch, (tuple, list)) else (patch, patch)
    return VitAnatomy(attention, prefix, _HF_HEADS[kind], (int(ph), int(pw)), "transformers")


def vit_anatomy(model: nn.Module, context: AttributionContext | None = None) -> VitAnatomy:
    """Find the attention modules, prefix tokens and classifier tokens of a timm-style ViT.

    :raises XaiError: naming the model, when it has no such blocks (a CNN, a Swin) or a pooling
        the attention methods cannot follow (attention pooling).
    """
    name = _model_name(model, context)
    blocks = getattr(model, "blocks", None)
    attention = []
    if isinstance(blocks, nn.Module):
        for index, block in blocks.named_children():
            attn = getattr(block, "attn", None)
            if not (
                isinstance(attn, nn.Module)
                and hasattr(attn, "fused_attn")
                and isinstance(getattr(attn, "attn_drop", None), nn.Module)
            ):
                attention = []
                break
            attention.append((f"blocks.{index}.attn", attn))
    prefix = getattr(model, "num_prefix_tokens", None)
    patch_size = getattr(getattr(model, "patch_embed", None), "patch_size", None)
    if not attention and _is_transformers_model(model):
        return _hf_anatomy(model, name)
    if not attention or not isinstance(prefix, int) or patch_size is None:
        raise XaiError(
            f"model {name!r} has no transformer blocks with readable attention (blocks.N.attn "
            f"with attn_drop and fused_attn, num_prefix_tokens, patch_embed): {_SUGGESTION}"
        )
    pool = getattr(model, "global_pool", "token")
    if pool == "token":
        if getattr(model, "cls_token", None) is None:
            raise XaiError(f"model {name!r} pools a class token it does not have")
        # timm's distilled DeiT averages the class head and the distillation head.
        distilled = getattr(model, "dist_token", None) is not None
        head_tokens: tuple[int, ...] | None = (0, 1) if distilled else (0,)
    elif pool == "avg":
        head_tokens = None
    else:
        raise XaiError(
            f"model {name!r} pools its tokens with global_pool={pool!r}, which attention "
            "rollout cannot follow (only 'token' and 'avg' pooling are read); "
            "use grad_cam or another CAM method"
        )
    ph, pw = patch_size if isinstance(patch_size, tuple) else (patch_size, patch_size)
    return VitAnatomy(tuple(attention), prefix, head_tokens, (int(ph), int(pw)))


@dataclass
class AttentionCapture:
    """The attention probabilities ``[N, heads, L, L]`` of each block during one forward pass,
    in block order (filled by :func:`capture_attention`)."""

    maps: list[Tensor]


@contextlib.contextmanager
def capture_attention(
    anatomy: VitAnatomy, context: AttributionContext
) -> Iterator[AttentionCapture]:
    """Record each block's attention probabilities for the forward passes inside the block.

    Fused scaled-dot-product attention never materialises the attention matrix, so each attention
    module's ``fused_attn`` is switched off for the duration (the unfused path computes the same
    attention explicitly); a forward hook on its ``attn_drop`` (identity in eval mode) records
    its input, the softmaxed probabilities, as part of the autograd graph so gradients with
    respect to it can be taken. Hooks go through ``context.hooks`` and are removed on leaving, as
    are the ``fused_attn`` flags restored, also after an exception.
    """
    if anatomy.source == "transformers":
        with _capture_transformers(anatomy, context) as capture:
            yield capture
        return
    capture = AttentionCapture([])

    def record(_module: nn.Module, args: tuple[Any, ...], _output: Any) -> None:
        capture.maps.append(args[0])

    flags = [(module, module.fused_attn) for _, module in anatomy.attention]
    handles = []
    try:
        for module, _ in flags:
            module.fused_attn = False
            handles.append(context.hooks.forward(module.attn_drop, record))
        yield capture
    finally:
        for handle in handles:
            handle.remove()
        for module, flag in flags:
            module.fused_attn = flag


@contextlib.contextmanager
def _capture_transformers(
    anatomy: VitAnatomy, context: AttributionContext
) -> Iterator[AttentionCapture]:
    """:func:`capture_attention` for a Hugging Face ViT or DeiT: each attention module's config
    on eager attention for the duration (restored afterwards, also after an exception), and the
    probabilities read from the second item of each attention module's output."""
    capture = AttentionCapture([])

    def record(_module: nn.Module, _args: tuple[Any, ...], output: Any) -> None:
        weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
        capture.maps.append(weights)

    configs = {id(module.config): module.config for _, module in anatomy.attention}
    saved = [(config, config._attn_implementation) for config in configs.values()]
    handles = []
    try:
        for config, _ in saved:
            config._attn_implementation = "eager"
        for _, module in anatomy.attention:
            handles.append(context.hooks.forward(module, record))
        yield capture
    finally:
        for handle in handles:
            handle.remove()
        for config, value in saved:
            config._attn_implementation = value


def check_captured(capture: AttentionCapture, anatomy: VitAnatomy, batch: int) -> None:
    """Check that each block ran once and gave attention probabilities ``[batch, heads, L, L]``."""
    if len(capture.maps) != len(anatomy.attention):
        raise XaiError(
            f"expected one attention matrix per block ({len(anatomy.attention)}), captured "
            f"{len(capture.maps)}: a block ran more than once or took the fused path"
        )
    for (path, _), attn in zip(anatomy.attention, capture.maps):
        if not isinstance(attn, Tensor):
            raise XaiError(
                f"{path} returned no attention probabilities (eager attention was asked for); "
                "this transformers version computes attention in another way"
            )
        if attn.ndim != 4 or attn.shape[0] != batch or attn.shape[-1] != attn.shape[-2]:
            raise XaiError(
                f"{path}{'.attn_drop received' if anatomy.source == 'timm' else ' returned'} "
                f"{tuple(attn.shape)}, not attention probabilities "
                f"[{batch}, heads, L, L]"
            )
