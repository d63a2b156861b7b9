"""The timm adapter: any ``timm`` architecture as a :class:`~xai_core.ModelHandle`.

``timm`` is imported inside the functions: importing it takes about a second, which commands
that never build a timm model (``xai list``, config checks) should not pay.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from xai_core.contracts.model import (
    RANDOM_WEIGHTS,
    ModelHandle,
    class_names_for,
    load_checkpoint,
    timm_preprocessing,
)
from xai_core.errors import XaiError
from xai_core.models.network import require_network


def _timm_weights_cached(arch: str) -> bool:
    import timm

    try:
        cfg = timm.models.get_pretrained_cfg(arch)
        repo = getattr(cfg, "hf_hub_id", None)
        if not repo:
            return False
        from huggingface_hub import try_to_load_from_cache

        return any(
            isinstance(try_to_load_from_cache(repo, f), str)
            for f in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")
        )
    except Exception:
        return False


def handle_from_timm(
    arch: str, pretrained: bool = True, checkpoint: str | None = None, **kwargs: Any
) -> ModelHandle:
    """A handle for any ``timm`` architecture (``timm.list_models()``)."""
    import timm

    pretrained = bool(pretrained) and checkpoint is None
    if pretrained and not _timm_weights_cached(arch):
        require_network("huggingface.co", f"pretrained weights for timm/{arch}")
    try:
        module = timm.create_model(arch, pretrained=pretrained, **kwargs)
    except (TypeError, ValueError) as exc:
        raise XaiError(f"timm/{arch}: {exc}") from exc
    if checkpoint is not None:
        load_checkpoint(module, checkpoint)
    source = "checkpoint" if checkpoint else ("pretrained" if pretrained else RANDOM_WEIGHTS)
    return timm_handle(f"timm/{arch}", module, arch, source, checkpoint)


def timm_handle(
    name: str, module: nn.Module, architecture: str, weights: str, checkpoint: str | None
) -> ModelHandle:
    """The handle of a model ``timm.create_model(architecture)`` built, in eval mode: timm's
    preprocessing for it, ImageNet's class names for 1000 classes, and ``weights`` (where
    they came from) and ``checkpoint`` in its ``info``."""
    return ModelHandle(
        name=name,
        module=module.eval(),
        preprocessing=timm_preprocessing(module),
        class_names=class_names_for(module.num_classes),
        info={"weights": weights, "checkpoint": checkpoint, "architecture": architecture},
    )
