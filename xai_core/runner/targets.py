"""Predictions and targets of a run's images: what the model predicts for each image and which
class each image is explained for (``predicted``, an index or name, one per input, or the
ImageFolder label).
"""

from __future__ import annotations

from typing import Any

import torch

from xai_core.contracts.model import ModelHandle
from xai_core.contracts.targets import resolve_targets
from xai_core.errors import TargetError, XaiError
from xai_core.runner.state import ImageItem


def predict(images: list[ImageItem], handle: ModelHandle, device: torch.device) -> None:
    ok = [im for im in images if im.error is None]
    if not ok:
        return
    x = torch.stack([im.inputs for im in ok]).to(device)
    with torch.no_grad():
        probs = handle.module(x).softmax(dim=1).cpu()
    for im, p in zip(ok, probs):
        top = int(p.argmax())
        im.prediction = {
            "predicted": top,
            "predicted_label": handle.label(top),
            "predicted_probability": float(p[top]),
            "probabilities": p,
        }


def _wanted_target(target: Any, im: ImageItem, count: int) -> Any:
    if isinstance(target, list):
        if len(target) != count:
            raise XaiError(
                f"config 'target' lists {len(target)} targets for {count} inputs; give one per "
                "input or a single target"
            )
        return target[im.index]
    if isinstance(target, str) and target.strip().lower() == "label":
        if im.source.label is None:
            raise TargetError(
                f"target 'label' needs ImageFolder-style inputs (root/<class>/<image>); "
                f"{im.source.source!r} is not in a class folder"
            )
        return _imagenet_wnid(im.source.label)
    return target


def _imagenet_wnid(label: str) -> str:
    """ImageNet folders are often named by WordNet id (n02123159); map those to class names."""
    if len(label) == 9 and label[0] == "n" and label[1:].isdigit():
        try:
            from timm.data import ImageNetInfo  # timm takes ~2 s to import: only here

            info = ImageNetInfo()
            return str(info.label_names().index(label))
        except (ImportError, ValueError):
            return label
    return label


def assign_targets(images: list[ImageItem], target: Any, handle: ModelHandle, count: int) -> None:
    for im in images:
        if im.error is not None:
            continue
        wanted = _wanted_target(target, im, count)
        probabilities = im.prediction["probabilities"][None]
        try:
            im.target = int(resolve_targets(wanted, 1, handle, lambda p=probabilities: p)[0])
        except TargetError as exc:
            if isinstance(target, str) and target.strip().lower() == "label":
                im.error = f"folder label {im.source.label!r}: {exc}"
            else:
                raise
