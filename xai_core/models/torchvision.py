"""The torchvision adapter: any torchvision classifier, semantic segmentation model (FCN,
DeepLabV3, LR-ASPP: ``segmentation/<arch>``) or detector (Faster R-CNN, RetinaNet, FCOS, SSD:
``detection/<arch>``) as a :class:`~xai_core.ModelHandle`.

``torchvision.models`` is imported inside the functions, for the same start-up reason as timm.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from xai_core.contracts.model import (
    RANDOM_WEIGHTS,
    ModelHandle,
    Preprocessing,
    load_checkpoint,
)
from xai_core.errors import ModelLoadError
from xai_core.models.network import require_network


def torchvision_classifiers() -> list[str]:
    import torchvision.models as tvm

    return sorted(tvm.list_models(module=tvm))


def handle_from_torchvision(
    arch: str, pretrained: bool = True, checkpoint: str | None = None, **kwargs: Any
) -> ModelHandle:
    """A handle for any torchvision classification model (``torchvision.models.list_models``)."""
    import torchvision.models as tvm

    try:
        weights_enum = tvm.get_model_weights(arch)
        default = weights_enum.DEFAULT
    except (ValueError, AttributeError):
        default = None
    pretrained = bool(pretrained) and checkpoint is None
    if pretrained:
        if default is None:
            raise ModelLoadError(f"torchvision/{arch} has no pretrained weights")
        cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(default.url)
        if not cached.is_file():
            require_network("download.pytorch.org", f"pretrained weights for torchvision/{arch}")
    module = tvm.get_model(arch, weights=default if pretrained else None, **kwargs)
    if checkpoint is not None:
        load_checkpoint(module, checkpoint)
    preprocessing = Preprocessing()
    names = None
    if default is not None:
        t = default.transforms()
        crop = t.crop_size[0] if isinstance(t.crop_size, list) else t.crop_size
        resize = t.resize_size[0] if isinstance(t.resize_size, list) else t.resize_size
        preprocessing = Preprocessing(
            input_size=(crop, crop),
            resize_size=resize,
            interpolation=t.interpolation.value,
            mean=tuple(t.mean),
            std=tuple(t.std),
        )
        categories = default.meta.get("categories")
        num_out = kwargs.get("num_classes", len(categories) if categories else None)
        if categories and num_out == len(categories):
            names = list(categories)
    source = "checkpoint" if checkpoint else ("pretrained" if pretrained else RANDOM_WEIGHTS)
    return ModelHandle(
        name=f"torchvision/{arch}",
        module=module.eval(),
        preprocessing=preprocessing,
        class_names=names,
        info={"weights": source, "checkpoint": checkpoint, "architecture": arch},
    )


#: The square input of a segmentation model without weights to say otherwise (torchvision's
#: VOC recipes resize to 520).
SEGMENTATION_INPUT = 520


def torchvision_segmenters() -> list[str]:
    import torchvision.models as tvm

    return sorted(tvm.list_models(module=tvm.segmentation))


def _dense_or_detector(
    task: str, arch: str, pretrained: bool, checkpoint: str | None, kwargs: dict[str, Any],
    preprocessing: Callable[[Any], Preprocessing],
) -> ModelHandle:
    """The handle of a torchvision segmenter or detector (``task``): weights (pretrained,
    a checkpoint, or random with a random backbone too: nothing downloads), the preprocessing
    ``preprocessing(weights)`` makes, and the class names of the weights' categories."""
    import torchvision.models as tvm

    weights = tvm.get_model_weights(arch).DEFAULT
    pretrained = bool(pretrained) and checkpoint is None
    if pretrained:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
        if not cached.is_file():
            require_network("download.pytorch.org", f"pretrained weights for {task}/{arch}")
        module = tvm.get_model(arch, weights=weights, **kwargs)
    else:
        kwargs.setdefault("weights_backbone", None)
        module = tvm.get_model(arch, weights=None, **kwargs)
    if checkpoint is not None:
        load_checkpoint(module, checkpoint)
    categories = weights.meta.get("categories")
    same = categories and kwargs.get("num_classes", len(categories)) == len(categories)
    source = "checkpoint" if checkpoint else ("pretrained" if pretrained else RANDOM_WEIGHTS)
    return ModelHandle(
        name=f"{task}/{arch}",
        module=module.eval(),
        preprocessing=preprocessing(weights),
        class_names=list(categories) if same else None,
        info={"weights": source, "checkpoint": checkpoint, "architecture": arch, "task": task},
    )


def handle_from_torchvision_segmentation(
    arch: str, pretrained: bool = True, checkpoint: str | None = None, **kwargs: Any
) -> ModelHandle:
    """A handle for a torchvision semantic segmentation model: its output is a dict whose
    ``"out"`` is ``[N, classes, H, W]`` at input resolution (what the ``segmentation`` target
    kind reads). Without pretrained weights its backbone is random too (nothing downloads)."""

    def preprocessing(weights: Any) -> Preprocessing:
        t = weights.transforms()
        size = t.resize_size[0] if isinstance(t.resize_size, list) else (
            t.resize_size or SEGMENTATION_INPUT
        )
        return Preprocessing(
            input_size=(size, size), resize_size=size, interpolation=t.interpolation.value,
            mean=tuple(t.mean), std=tuple(t.std),
        )

    return _dense_or_detector("segmentation", arch, pretrained, checkpoint, kwargs, preprocessing)


#: The square input of a detector whose weights do not say (its own transform resizes again).
DETECTION_INPUT = 320


def torchvision_detectors() -> list[str]:
    import torchvision.models as tvm

    return sorted(tvm.list_models(module=tvm.detection))


def handle_from_torchvision_detection(
    arch: str, pretrained: bool = True, checkpoint: str | None = None, **kwargs: Any
) -> ModelHandle:
    """A handle for a torchvision detector (Faster R-CNN, RetinaNet, FCOS, SSD): it takes pixels
    in ``[0, 1]`` (it normalizes and resizes inside, so the handle's mean is 0 and std 1) and
    returns one dict per image (``boxes``, ``labels``, ``scores``: what the ``detection`` target
    kind reads). Without pretrained weights its backbone is random too (nothing downloads)."""

    def preprocessing(weights: Any) -> Preprocessing:
        del weights
        size = DETECTION_INPUT
        return Preprocessing(input_size=(size, size), resize_size=size, mean=(0.0, 0.0, 0.0),
                             std=(1.0, 1.0, 1.0))

    return _dense_or_detector("detection", arch, pretrained, checkpoint, kwargs, preprocessing)
