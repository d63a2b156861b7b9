"""What the built-in synthesizers share: logits of pixel images, 8-bit quantization, the records
the runner reads (:class:`~xai_core.contracts.synthesizer.SynthesisRecord`) and the
base of the methods that draw a class from noise (:class:`FromNoise`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from xai_core.contracts.model import ModelHandle
from xai_core.contracts.synthesizer import SynthesisRecord, Synthesizer
from xai_core.errors import InputError


def model_logits(model: nn.Module, handle: ModelHandle, pixels: Tensor) -> Tensor:
    """Logits for images in pixel space: the model's own normalization is applied here."""
    return model(handle.normalize(pixels))


def quantize(pixels: Tensor, start: Tensor | None = None, linf: float | None = None) -> Tensor:
    """Round to the 8-bit grid (what a PNG stores), staying within ``linf`` of ``start``.

    Plain rounding may step up to half a grey level past an L-infinity budget when ``start`` is
    not itself on the grid (resized photos are not); rounding is then moved to the nearest grid
    value inside the budget, which exists whenever ``linf >= 1/255``.
    """
    levels = (pixels * 255).round()
    if linf is not None and start is not None:
        low = ((start - linf) * 255).ceil().clamp(min=0)
        high = ((start + linf) * 255).floor().clamp(max=255)
        levels = torch.minimum(torch.maximum(levels, low), high)
    return levels.clamp(0, 255) / 255


def change_sizes(images: Tensor, start: Tensor) -> tuple[Tensor, Tensor]:
    """Per-image L2 and L-infinity norms of ``images - start`` in pixel space, each ``[N]``."""
    delta = (images - start).flatten(1)
    return delta.norm(dim=1), delta.abs().amax(dim=1)


def image_records(
    model: nn.Module,
    handle: ModelHandle,
    images: Tensor,
    targets: Tensor,
    start: Tensor,
    iterations: Iterable[int],
    seconds: Iterable[float],
    success: Iterable[bool] | None = None,
    **extra: Any,
) -> list[SynthesisRecord]:
    """One record per image, measured on the final ``images``.

    ``success`` defaults to "the model predicts the target"; ``l2`` and ``linf`` are the size of
    the change from ``start`` in pixel space; ``extra`` goes into every record's ``extra``.
    """
    with torch.no_grad():
        probs = model_logits(model, handle, images).softmax(dim=1)
    top_p, top = probs.max(dim=1)
    target_p = probs.gather(1, targets.view(-1, 1)).squeeze(1)
    l2, linf = change_sizes(images, start)
    hits = (top == targets).tolist() if success is None else list(success)
    records = []
    for i, (iters, secs) in enumerate(zip(iterations, seconds)):
        records.append(
            SynthesisRecord(
                success=bool(hits[i]),
                iterations=int(iters),
                target=int(targets[i]),
                target_label=handle.label(int(targets[i])),
                target_probability=float(target_p[i]),
                predicted=int(top[i]),
                predicted_label=handle.label(int(top[i])),
                predicted_probability=float(top_p[i]),
                l2=float(l2[i]),
                linf=float(linf[i]),
                seconds=float(secs),
                extra=dict(extra),
            )
        )
    return records


def per_image(values: Tensor) -> Tensor:
    """Shape ``[N, 1, 1, 1]`` for broadcasting a per-image value over images."""
    return values.view(-1, 1, 1, 1)


def needs_images(images: Tensor | None, name: str) -> Tensor:
    if images is None:
        raise InputError(f"{name} changes photos: pass starting images [N,C,H,W] in [0, 1]")
    if images.min() < 0 or images.max() > 1:
        raise InputError(
            f"{name} takes images in pixel space [0, 1] (not normalized model inputs); got "
            f"values in [{float(images.min()):.3g}, {float(images.max()):.3g}]"
        )
    return images


class FromNoise(Synthesizer):
    """A synthesizer that draws each class from noise (``class_visualization``,
    ``feature_visualization``): no photo needed, one image per class in ``classes``, snapshots
    every ``record_every`` steps. A subclass's ``Params`` derives from ``FromNoise.Params``."""

    starts_from_images = False
    per_class = True
    snapshots = True

    @dataclass
    class Params:
        #: Classes to visualize (names or indices), one image each; empty: the run's target.
        classes: list[str] = field(default_factory=list)
