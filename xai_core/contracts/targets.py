"""Turning a user's target (``"predicted"``, ``281``, ``"tiger cat"``, one per item) into class
indices, with errors that say what the valid targets are."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Union

import torch
from torch import Tensor

from xai_core.errors import TargetError, close_matches

if TYPE_CHECKING:
    from xai_core.contracts.model import ModelHandle

__all__ = ["TargetSpec", "resolve_targets", "class_index"]

TargetSpec = Union[str, int, Sequence[str | int], Tensor, None]

PREDICTED = "predicted"


def class_index(value: Any, class_names: Sequence[str] | None, num_classes: int | None) -> int:
    """One target value (index, numeric string or class name) as a class index."""
    if isinstance(value, Tensor):
        value = value.item()
    if isinstance(value, bool):
        raise TargetError(f"target {value!r} is a boolean; give a class index or name")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, int):
        if value < 0:
            raise TargetError(f"target class {value} is negative; class indices start at 0")
        if num_classes is not None and value >= num_classes:
            raise TargetError(
                f"target class {value} is out of range for a model with {num_classes} classes "
                f"(valid: 0..{num_classes - 1})"
            )
        return value
    if isinstance(value, str):
        if not class_names:
            raise TargetError(
                f"target {value!r} is a class name, but this model has no class names; "
                "give a class index"
            )
        wanted = value.strip().lower()
        for i, name in enumerate(class_names):
            if name.lower() == wanted:
                return i
        matches = close_matches(value, class_names)
        hint = f"; did you mean {', '.join(repr(m) for m in matches)}?" if matches else ""
        raise TargetError(
            f"unknown class name {value!r}{hint} Give a class index or an exact name."
        )
    raise TargetError(
        f"target {value!r} of type {type(value).__name__} is not a class index, class name or "
        f"'{PREDICTED}'"
    )


def resolve_targets(
    target: TargetSpec,
    n: int,
    handle: ModelHandle,
    logits: Callable[[], Tensor] | None = None,
) -> Tensor:
    """Class indices ``[n]`` (or ``[n, k]``) for ``target``.

    :param target: ``"predicted"`` (or ``None``), a class index or name for every item, a
        sequence/tensor with one per item, or one equal-length list per item (several targets
        per input: the result is then ``[n, k]``).
    :param n: batch size.
    :param handle: gives class names and the number of classes.
    :param logits: called (under ``no_grad``) only when the predicted class is needed.
    """
    names = handle.class_names
    num_classes = handle.num_classes

    def predicted() -> Tensor:
        if logits is None:
            raise TargetError(f"target '{PREDICTED}' needs the model's output")
        with torch.no_grad():
            return logits().argmax(dim=1).long().cpu()

    if target is None or (isinstance(target, str) and target.strip().lower() == PREDICTED):
        return predicted()
    if isinstance(target, Tensor):
        target = target.tolist() if target.ndim else target.item()
    if isinstance(target, (str, int)):
        return torch.full((n,), class_index(target, names, num_classes), dtype=torch.long)
    if isinstance(target, Sequence):
        if len(target) != n:
            raise TargetError(
                f"{len(target)} targets given for {n} inputs; give one target per input, or a "
                "single target for all"
            )
        if all(isinstance(t, Sequence) and not isinstance(t, str) for t in target):
            return _several_per_item(target, n, handle)
        is_predicted = [isinstance(t, str) and t.strip().lower() == PREDICTED for t in target]
        pred = predicted() if any(is_predicted) else None
        out = [
            int(pred[i])
            if pred is not None and is_predicted[i]
            else class_index(t, names, num_classes)
            for i, t in enumerate(target)
        ]
        return torch.tensor(out, dtype=torch.long)
    raise TargetError(
        f"target {target!r} is not '{PREDICTED}', a class index, a class name or a list of them"
    )


def _several_per_item(target: Sequence[Any], n: int, handle: ModelHandle) -> Tensor:
    sizes = {len(t) for t in target}
    if len(sizes) != 1 or 0 in sizes:
        raise TargetError(
            "several targets per input must be the same non-zero number for every input; got "
            f"{sorted(sizes)}"
        )
    return torch.tensor(
        [[class_index(t, handle.class_names, handle.num_classes) for t in row] for row in target],
        dtype=torch.long,
    )
