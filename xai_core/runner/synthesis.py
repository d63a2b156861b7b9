"""Running synthesizers in an experiment: their images, records and figures.

The runner reads only what the synthesizer contract declares
(:class:`~xai_core.contracts.synthesizer.Synthesizer`): ``starts_from_images`` (per photo, or once
per run from noise), ``per_class`` (one image per class of ``params.classes``), ``snapshots``
(a progress figure), and the :class:`~xai_core.contracts.synthesizer.SynthesisRecord` fields.
Everything it does with one call's result is inside the ``try`` that fails the call's items, so
a synthesizer that breaks the contract fails its items, named, never the run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xai_core.contracts.model import ModelHandle
from xai_core.contracts.synthesizer import Synthesis, SynthesisRecord, Synthesizer
from xai_core.io import write_array, write_png
from xai_core.report.figures import (
    class_visualization_figure,
    difference_panels,
    fooling_figure,
)
from xai_core.runner.inputs import photo_is_input
from xai_core.runner.item import ResultItem
from xai_core.runner.state import ImageItem, RunState, failure_details, to_image

__all__ = ["run_synthesizer", "synthesize_per_run", "synthesis_classes"]


def synthesis_classes(technique: Synthesizer) -> list[str]:
    """The classes a ``per_class`` synthesizer makes images of (empty: the run's target)."""
    if not technique.per_class:
        return []
    return [str(c) for c in technique.params.classes or []]


def run_synthesizer(
    run: RunState,
    label: str,
    technique: Synthesizer,
    images: list[ImageItem],
    handle: ModelHandle,
    device: torch.device,
) -> None:
    """Synthesized images from each photo: one per class for a ``per_class`` technique,
    otherwise one for the photo's target."""
    classes = synthesis_classes(technique)
    for im in images:
        if im.error is not None:
            run.items.append(run.base_item(im, label, technique, handle))
            continue
        targets: list[Any] = classes or [im.target]
        start = time.perf_counter()
        try:
            starts = im.pixels[None].expand(len(targets), -1, -1, -1).to(device)
            result = technique.synthesize(handle, targets, images=starts)
            items = [
                _photo_item(run, im, label, technique, handle, device, result, i, bool(classes))
                for i in range(len(result))
            ]
        except Exception as exc:  # noqa: BLE001 - one broken call fails its items, not the run
            item = run.base_item(im, label, technique, handle)
            item.fail(failure_details(exc))
            item.seconds = time.perf_counter() - start
            run.items.append(item)
            continue
        run.items.extend(items)


def _seconds(result: Synthesis) -> float:
    """An item's share of the call's time. The images of one call are made together, so a
    record's own ``seconds`` (until that image succeeded, kept in its ``record``) would count the
    shared time once per image, and ``compute_seconds`` would exceed what the run spent."""
    return result.metadata["seconds"] / len(result)


def _photo_item(
    run: RunState,
    im: ImageItem,
    label: str,
    technique: Synthesizer,
    handle: ModelHandle,
    device: torch.device,
    result: Synthesis,
    i: int,
    per_class: bool,
) -> ResultItem:
    pixels, record = result.images[i], result.records[i]
    target = record.target
    name = f"{label}-{target}" if per_class else label
    item = run.base_item(im, label, technique, handle)
    item.target, item.target_label = target, handle.label(target)
    item.record = record.as_dict()
    item.target_probability = float(im.prediction["probabilities"][target])
    item.seconds = _seconds(result)
    _write_synthesized(run, item, run.layout.image(im.source.key, name), pixels)
    if run.item_figures:
        figure = run.layout.figure(im.source.key, name)
        _difference_figure(
            figure, im.pixels, pixels, handle, device, record, label, run.config.display_channels
        )
        item.files["figure"] = run.rel(figure)
    return item


def _write_synthesized(
    run: RunState, item: ResultItem, png: Path, pixels: torch.Tensor
) -> None:
    """The image as an 8-bit PNG (``files["image"]``) and, when the PNG cannot hold it exactly
    (:func:`~xai_core.runner.inputs.photo_is_input`: a class visualization's float pixels, an
    image of other than 3 channels, whose PNG is its RGB view), as an array too
    (``files["array"]``, ``.npz`` of the run's ``storage`` dtype). A fooling image or an attack
    on the 8-bit grid is its PNG."""
    shown = pixels if pixels.shape[0] == 3 else to_image(pixels, run.config.display_channels)
    write_png(png, shown)
    item.files["image"] = run.rel(png)
    if not photo_is_input(pixels):
        array = png.with_suffix(".npz")
        write_array(array, pixels.numpy(), run.config.storage.dtype)
        item.files["array"] = run.rel(array)


def _difference_figure(
    path: Path,
    original: torch.Tensor,
    result: torch.Tensor,
    handle: ModelHandle,
    device: torch.device,
    record: SynthesisRecord,
    label: str,
    channels: Sequence[int] | None = None,
) -> None:
    """Original | result | difference | difference x10, each titled with the model's guess on
    it and shown as its RGB view of the input channels ``channels``."""
    panels = difference_panels(_channels_last(original), _channels_last(result))
    batch = torch.from_numpy(np.stack(panels)).permute(0, 3, 1, 2).to(device)
    with torch.no_grad():
        probs = handle.module(handle.normalize(batch)).softmax(dim=1).cpu()
    top_p, top = probs.max(dim=1)
    titles = [f"{handle.label(int(c))} ({float(p):.2f})" for c, p in zip(top, top_p)]
    outcome = "reached" if record.success else "not reached"
    # An untargeted attack's record names the class it moves away from.
    goal = "away from" if record.extra.get("targeted") is False else "target"
    title = (
        f"{label}: {goal} {record.target_label} {outcome} in {record.iterations} steps, "
        f"p = {record.target_probability:.2f}, L∞ {255 * (record.linf or 0):.1f}/255"
    )
    shown = [to_image(torch.from_numpy(panel.transpose(2, 0, 1)), channels) for panel in panels]
    fooling_figure(path, shown, titles, title)


def _channels_last(pixels: torch.Tensor) -> np.ndarray:
    """``[C, H, W]`` pixels as ``[H, W, C]`` in ``[0, 1]``, in numpy (see :func:`to_image`)."""
    return np.clip(pixels.detach().cpu().numpy().transpose(1, 2, 0), 0, 1)


def synthesize_per_run(
    run: RunState, label: str, technique: Synthesizer, handle: ModelHandle
) -> None:
    """A synthesizer that starts from noise, once per run: one image per class (or for the
    run's single target) in ``images/<label>/``, all of them in ``figures/<label>.png``."""
    classes = synthesis_classes(technique)
    target = run.config.target

    def once(**fields: Any) -> ResultItem:
        return ResultItem(image=None, key=None, model=run.model_label, method=technique.name,
                          kind=technique.kind, label=label, **fields)

    if not classes:
        if isinstance(target, list) or str(target).strip().lower() == "predicted":
            run.items.append(once(error=(
                f"{technique.name} starts from noise, so it needs classes: set "
                f"params.classes (e.g. [tabby, goldfish]) or a single config target"
            )))
            return
        classes = [str(target)]
    start = time.perf_counter()
    try:
        result = technique.synthesize(handle, classes)
        items, shown = [], []
        for pixels, record in zip(result.images, result.records):
            name = handle.label(record.target)
            item = once(target=record.target, target_label=name, record=record.as_dict(),
                        seconds=_seconds(result))
            slug = "".join(ch if ch.isalnum() else "_" for ch in name).strip("_")
            png = run.layout.run_image(label, f"{record.target}_{slug}")
            _write_synthesized(run, item, png, pixels)
            shown.append((f"{name} ({record.target_probability:.2f})",
                          to_image(pixels, run.config.display_channels)))
            items.append(item)
        if run.config.figures:
            frames = None
            if technique.snapshots and result.snapshots is not None:
                frames = (result.snapshots.steps,
                          _frames(result.snapshots.images, run.config.display_channels))
            figure = run.layout.run_figure(label)
            class_visualization_figure(figure, shown, frames)
            for item in items:
                item.files["figure"] = run.rel(figure)
    except Exception as exc:  # noqa: BLE001 - one broken call fails its items, not the run
        item = once(target=classes, seconds=time.perf_counter() - start)
        item.fail(failure_details(exc))
        run.items.append(item)
        return
    run.items.extend(items)


def _frames(images: torch.Tensor, channels: Sequence[int] | None) -> np.ndarray:
    """Snapshots ``[K, N, C, H, W]`` as the ``[K, N, H, W, 3]`` views a figure shows."""
    if images.shape[2] == 3 and channels is None:
        return images.permute(0, 1, 3, 4, 2).clamp(0, 1).numpy()
    return np.stack([np.stack([to_image(image, channels) for image in frame]) for frame in images])
