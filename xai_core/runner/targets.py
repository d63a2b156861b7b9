"""Predictions and targets of a run's images: what the model predicts for each image (with its
top 5) and which classes each image is explained for.

A config's ``target`` is a target kind (``{kind: multilabel, ...}``: :func:`predict_kind`
chooses each image's targets under it, from the same kind of pass), or one class target spec or
a list of them, and every image gets each of them (the list does *not* mean one per input):

* ``predicted`` (the default): the predicted class;
* ``top-k``: the ``k`` most probable classes, most probable first;
* a class index, a class name (any ImageNet synonym) or a WordNet id;
* ``label``: the image's ImageFolder label (``root/<class>/<image>``; a WordNet-id folder name
  is mapped to its ImageNet class).

``[predicted, goldfish]`` explains every image for its prediction and for goldfish; ``top-3``
gives three maps per image and method. :func:`~xai_core.contracts.targets.check_target` says
which lists are refused (two ``top-k``, ``predicted`` beside a ``top-k``, a class twice).
"""

from __future__ import annotations

from typing import Any

import torch

from xai_core.contracts.attributor import Attribution
from xai_core.contracts.model import ModelHandle
from xai_core.contracts.target_kinds import BoundTarget, TargetKind, target_scope
from xai_core.contracts.targets import check_target, class_index, is_predicted, top_k
from xai_core.errors import TargetError
from xai_core.nn.hooks import HookRecorder
from xai_core.runner.state import ImageItem

__all__ = [
    "predict",
    "set_predictions",
    "ChosenTargetError",
    "choose_targets",
    "one_class_per_image",
    "assign_targets",
    "image_targets",
    "target_specs",
    "TOP_PREDICTIONS",
    "predict_kind",
    "kind_targets_from",
    "kind_for",
]

#: How many of the most probable classes each image's prediction lists (``top5``).
TOP_PREDICTIONS = 5


def predict(images: list[ImageItem], handle: ModelHandle, device: torch.device) -> None:
    """Each readable image's prediction: the class, its label and probability, the
    :data:`TOP_PREDICTIONS` most probable classes (``top5``: ``class``, ``label``,
    ``probability``), and every probability (kept off the result items)."""
    ok = [im for im in images if im.error is None]
    if not ok:
        return
    x = torch.stack([im.inputs for im in ok]).to(device)
    with torch.no_grad():
        logits = handle.module(x)
    set_predictions(ok, logits, handle)


def set_predictions(images: list[ImageItem], logits: torch.Tensor, handle: ModelHandle) -> None:
    """Each image's prediction (see :func:`predict`) from the model's ``logits`` on them, one
    row per image: from a technique's own pass, when it served the prediction."""
    probs = logits.detach().float().softmax(dim=1).cpu()
    values, indices = probs.topk(min(TOP_PREDICTIONS, probs.shape[1]), dim=1)
    for im, p, top_p, top_i in zip(images, probs, values.tolist(), indices.tolist()):
        top = top_i[0]
        im.prediction = {
            "predicted": top,
            "predicted_label": handle.label(top),
            "predicted_probability": float(p[top]),
            "top5": [
                {"class": c, "label": handle.label(c), "probability": q}
                for c, q in zip(top_i, top_p)
            ],
            "probabilities": p,
        }


def target_specs(target: Any) -> list[Any]:
    """The target specs every image gets: the config's list, or its single spec."""
    return list(target) if isinstance(target, (list, tuple)) else [target]


def image_targets(im: ImageItem) -> list[int]:
    """The classes ``im`` is explained for, in the config's order (the first is ``im.target``).

    Read from ``im.targets`` (set by :func:`assign_targets`); an item built elsewhere with only
    ``im.target`` has that one.
    """
    several = getattr(im, "targets", None)
    if several:
        return list(several)
    return [] if im.target is None else [im.target]


def _entry_classes(entry: Any, im: ImageItem, handle: ModelHandle) -> list[int]:
    """The classes one target spec means for ``im``."""
    probabilities = im.prediction["probabilities"]
    if is_predicted(entry):
        return [int(im.prediction["predicted"])]
    k = top_k(entry)
    if k is not None:
        return [int(i) for i in probabilities.topk(min(k, len(probabilities))).indices]
    if isinstance(entry, str) and entry.strip().lower() == "label":
        if im.source.label is None:
            raise TargetError(
                f"target 'label' needs ImageFolder-style inputs (root/<class>/<image>); "
                f"{im.source.source!r} is not in a class folder"
            )
        try:
            return [class_index(im.source.label, handle.class_names, handle.num_classes)]
        except TargetError as exc:
            raise _FolderLabelError(f"folder label {im.source.label!r}: {exc}") from None
    return [class_index(entry, handle.class_names, handle.num_classes)]


class _FolderLabelError(TargetError):
    """A folder label that names no class: fails its image, not the run."""


class ChosenTargetError(TargetError):
    """A target wrong for the model found by :func:`choose_targets`, inside a technique's call:
    it fails the run (as :func:`assign_targets` does before any map), not that call's items."""


def assign_targets(
    images: list[ImageItem], target: Any, handle: ModelHandle, count: int | None = None
) -> None:
    """Set ``im.targets`` (every class the image is explained for, in the config's order) and
    ``im.target`` (the first) on each readable image; needs :func:`predict` first.

    Every image gets the same number of targets, so items line up across images: a class that
    two specs both give (``[predicted, tabby]`` for a photo predicted as tabby) is explained
    twice rather than leaving that image one item short.

    A target that is wrong for the model (an unknown name, an index out of range: for a model
    that knows its number of classes only from its output, past the width of the predictions)
    or ``label`` for an image outside a class folder fails the run before any map is computed;
    a folder label that names no class fails its image only.

    :param count: unused (a list in ``target`` once meant one target per input); kept so
        existing callers need no change.
    """
    del count
    # A plain module's number of classes is the width of its output.
    widths = [len(im.prediction["probabilities"]) for im in images if im.error is None]
    num_classes = handle.num_classes or (widths[0] if widths else None)
    check_target(target, handle.class_names, num_classes)
    specs = target_specs(target)
    for im in images:
        if im.error is not None:
            continue
        try:
            classes = [c for entry in specs for c in _entry_classes(entry, im, handle)]
        except _FolderLabelError as exc:
            im.error = str(exc)
            continue
        # ImageItem has no `targets` field yet: set as an attribute (read by image_targets).
        im.targets = classes  # type: ignore[attr-defined]
        im.target = im.targets[0]  # type: ignore[attr-defined]


def one_class_per_image(target: Any) -> bool:
    """Whether ``target`` gives each image one class chosen from the model's output or fixed
    (``predicted``, a class): the targets a technique's own pass can pick
    (:func:`choose_targets`). ``top-k``, lists and ``label`` are resolved before the methods."""
    specs = target_specs(target)
    if len(specs) != 1:
        return False
    spec = specs[0]
    if is_predicted(spec):
        return True
    return top_k(spec) is None and not (isinstance(spec, str) and spec.strip().lower() == "label")


def choose_targets(
    images: list[ImageItem], logits: torch.Tensor, target: Any, handle: ModelHandle
) -> list[int]:
    """Predictions and targets of ``images`` from ``logits`` (one row each), as
    :func:`predict` then :func:`assign_targets` would set them; returns the targets. For
    :func:`one_class_per_image` targets."""
    set_predictions(images, logits, handle)
    try:
        assign_targets(images, target, handle)
    except TargetError as exc:
        raise ChosenTargetError(str(exc)) from None
    return [int(im.target) for im in images]


def predict_kind(
    images: list[ImageItem], kind: TargetKind, handle: ModelHandle, device: torch.device
) -> None:
    """Each readable image's targets under ``kind`` (what it chooses, with the target's score
    and probability), from one pass without gradients. An image the kind cannot explain (a
    class the model predicts nowhere on it) fails alone, with the kind's message."""
    ok = [im for im in images if im.error is None]
    if not ok:
        return
    try:
        _predict_kind(ok, kind, handle, device)
    except TargetError as exc:
        if len(ok) == 1:
            ok[0].error = f"TargetError: {exc}"
            return
        for im in ok:
            predict_kind([im], kind, handle, device)


def _predict_kind(
    images: list[ImageItem], kind: TargetKind, handle: ModelHandle, device: torch.device
) -> None:
    x = torch.stack([im.inputs for im in images]).to(device)
    with torch.no_grad(), HookRecorder() as hooks, target_scope(kind, handle, hooks, x) as scope:
        assert scope is not None
        scope.columns()
        scores = scope.first_scores if scope.first_scores is not None else handle.module(x)
    bound = scope.bound
    assert bound is not None
    probabilities = bound.probability(scores) if bound.probability is not None else None
    for i, im in enumerate(images):
        regions = bound.regions[i] if bound.regions is not None else [None] * len(bound.labels[i])
        info = [
            _info(bound, label, float(scores[i, c]),
                  None if probabilities is None else float(probabilities[i, c]), region)
            for label, c, region in zip(bound.labels[i], bound.columns[i], regions)
        ]
        _set_kind_targets(im, list(bound.choices[i]), info, kind)


def _info(bound: BoundTarget, label: str, value: float | None, probability: float | None,
          region: Any = None) -> dict[str, Any]:
    return {"label": label, "value": value, "value_name": bound.value, "probability": probability,
            "region": region}


def _set_kind_targets(
    im: ImageItem, choices: list[Any], info: list[dict[str, Any]], kind: TargetKind
) -> None:
    im.targets, im.target_info = choices, info
    im.target = choices[0] if choices else None
    im.prediction = {"kind": kind.name}
    if not choices:
        im.error = (
            f"TargetError: target kind {kind.name!r} chose no target for this image (for "
            "multilabel: no label's probability is over `threshold`; lower it or name labels)"
        )


def kind_targets_from(
    images: list[ImageItem], attribution: Attribution, kind: TargetKind
) -> None:
    """Each image's targets under ``kind`` from a technique's call that chose them itself (one
    pass serves the prediction and the attribution)."""
    per_image: list[tuple[list[Any], list[dict[str, Any]]]] = [([], []) for _ in images]
    values = attribution.target_values
    probabilities = attribution.target_probabilities
    for row, i in enumerate(attribution.input_index.tolist()):
        choices, info = per_image[i]
        choices.append(attribution.target_choices[row])  # type: ignore[index]
        info.append({
            "label": attribution.target_labels[row],  # type: ignore[index]
            "value": None if values is None else float(values[row]),
            "value_name": attribution.target_value_name,
            "probability": None if probabilities is None else float(probabilities[row]),
            "region": None if attribution.target_regions is None
            else attribution.target_regions[row],
        })
    for im, (choices, info) in zip(images, per_image):
        _set_kind_targets(im, choices, info, kind)


def kind_for(images: list[ImageItem], kind: TargetKind) -> TargetKind:
    """``kind`` explaining the targets already chosen for ``images`` (in their order)."""
    return kind.with_choices([image_targets(im) for im in images])
