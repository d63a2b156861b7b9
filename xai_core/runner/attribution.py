"""Running attributors in an experiment: maps batch by batch, metric scores and figures.

A batch that fails is retried item by item, so one bad item fails alone (with its traceback);
what a technique reports about each item (the layer used, a completeness gap, ...) goes into the
item's ``metadata``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from xai_core.contracts.attributor import Attributor
from xai_core.contracts.model import ModelHandle
from xai_core.io import write_npy
from xai_core.report.figures import FigureOptions, attribution_figure, attribution_title
from xai_core.runner.scoring import score_items
from xai_core.runner.state import ImageItem, RunState, failure_details, to_image


def _item_metadata(metadata: dict[str, Any], index: int, count: int) -> dict[str, Any]:
    """What a technique reported (layer used, completeness gap, ...) as JSON for one item.

    Per-item values (tensors or lists with one entry per item) are cut to this item's entry;
    parameters are already in the config, timings in ``seconds``, and large arrays are left out.
    """
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if key in ("params", "seconds"):
            continue
        if isinstance(value, torch.Tensor):
            if value.ndim >= 1 and value.shape[0] == count:
                value = value[index]
            if value.numel() > 16:
                continue
            value = value.tolist()
        elif isinstance(value, (list, tuple)) and len(value) == count:
            value = value[index]
        if isinstance(value, (str, int, float, bool, type(None))) or (
            isinstance(value, (list, dict)) and len(str(value)) < 2000
        ):
            out[key] = value
    return out


def run_attributor(
    run: RunState,
    label: str,
    technique: Attributor,
    images: list[ImageItem],
    handle: ModelHandle,
    device: torch.device,
) -> None:
    """Maps, metric scores and figures of ``technique`` for ``images``, batch by batch."""
    ok = [im for im in images if im.error is None]
    batch = run.config.batch_size
    for start in range(0, len(ok), batch):
        chunk = ok[start : start + batch]
        results = _attribute_chunk(technique, chunk, handle, device)
        scores = score_items(
            run.metrics,
            handle,
            [im.inputs for im in chunk],
            [result for result, _, _ in results],
            [im.target for im in chunk],
            attributor=technique,
            seed=run.config.seed,
        )
        for im, (result, seconds, error), scored in zip(chunk, results, scores):
            item = run.base_item(im, label, technique, handle)
            item["seconds"] = seconds
            if error is not None:
                item.update(error)
            else:
                saliency = result.numpy().astype(np.float32)
                map_path = run.out / "maps" / im.source.key / f"{label}.npy"
                write_npy(map_path, saliency)
                item["files"]["map"] = run.rel(map_path)
                item["files"]["input"] = run.rel(run.input_path(im))
                if run.config.figures:
                    fig_path = run.out / "figures" / im.source.key / f"{label}.png"
                    attribution_figure(
                        fig_path, to_image(im.pixels), saliency, attribution_title(label, item),
                        FigureOptions.from_config(getattr(run.config, "figure", None)),
                    )
                    item["files"]["figure"] = run.rel(fig_path)
            item.update(scored)
            if error is None and im.method_metadata:
                item["metadata"] = im.method_metadata
            run.items.append(item)
    for im in images:
        if im.error is not None:
            run.items.append(run.base_item(im, label, technique, handle))


def _attribute_chunk(technique: Attributor, chunk: list[ImageItem], handle, device):
    """Maps for a chunk in one batch; if the batch fails, item by item to isolate failures."""
    x = torch.stack([im.inputs for im in chunk]).to(device)
    targets = [im.target for im in chunk]
    start = time.perf_counter()
    try:
        attribution = technique.attribute(handle, x, targets)
        seconds = (time.perf_counter() - start) / len(chunk)
        for i, im in enumerate(chunk):
            im.method_metadata = _item_metadata(attribution.metadata, i, len(chunk))
        return [(m, seconds, None) for m in attribution.maps]
    except Exception as exc:  # noqa: BLE001 - one broken call fails its items, not the run
        if len(chunk) == 1:
            return [(None, time.perf_counter() - start, failure_details(exc))]
    return [_attribute_chunk(technique, [one], handle, device)[0] for one in chunk]
