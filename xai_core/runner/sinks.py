"""The end of a run: hand the finished run to the config's ``sinks`` (trackers) and record how
each did in ``results.json``.

Sinks run after ``results.json`` is complete, one after the other, each reading the run back
from its folder (:class:`~xai_core.contracts.sink.SinkRun`). A sink that raises is recorded
(``results.json``'s ``sinks``: ``{"label", "name", "ok", "error", "seconds", "logged"}``) and
the others still run; the run's own outputs are not touched. ``xai run`` then exits non-zero,
naming the sink and its error (:func:`failed_sinks`).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xai_core.contracts.sink import Sink, SinkRun
from xai_core.io import photo_beside, read_array, write_json
from xai_core.report.figures import FigureOptions, overlay, render_map

__all__ = ["run_sinks", "failed_sinks", "render_item"]


def render_item(
    folder: Path, item: Mapping[str, Any], options: FigureOptions | None = None
) -> np.ndarray | None:
    """``item``'s map drawn on its photo (``inputs/<key>.webp``) as ``[H, W, 3]`` uint8; ``None``
    for an item without a 2-D map or a photo of its size."""
    files = item.get("files") or {}
    if not files.get("map") or not files.get("input"):
        return None
    map_path, photo = folder / files["map"], photo_beside(folder / files["input"])
    if not (map_path.is_file() and photo.is_file()):
        return None
    saliency = np.asarray(read_array(map_path), dtype=np.float32)
    if saliency.ndim == 3 and saliency.shape[0] == 1:
        saliency = saliency[0]
    from PIL import Image

    with Image.open(photo) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    if saliency.ndim != 2 or saliency.shape != pixels.shape[:2]:
        return None
    drawn = overlay(pixels, render_map(saliency, options), options)
    return np.round(drawn * 255).astype(np.uint8)


def run_sinks(
    sinks: Sequence[tuple[str, Sink]],
    out: Path,
    results: dict[str, Any],
    figure: Mapping[str, Any] | None = None,
    say: Any = None,
) -> list[dict[str, Any]]:
    """Call every sink on the finished run in ``out`` and record each outcome in
    ``results["sinks"]`` and ``results.json``; returns the records (``[]`` without sinks)."""
    if not sinks:
        return []
    options = FigureOptions.from_config(dict(figure or {}))
    run = SinkRun.from_folder(out, render=lambda folder, item: render_item(folder, item, options))
    records = []
    for label, sink in sinks:
        started = time.perf_counter()
        record: dict[str, Any] = {"label": label, "name": sink.name, "ok": True, "error": None}
        try:
            logged = sink.log(run)
            record["logged"] = dict(logged or {})
        except Exception as exc:  # any failure of a plugin's tracker: recorded, never hidden
            record.update(ok=False, error=f"{type(exc).__name__}: {exc}",
                          traceback=traceback.format_exc())
        record["seconds"] = time.perf_counter() - started
        records.append(record)
        if say is not None:
            say(f"sink {label}: " + ("ok" if record["ok"] else f"FAILED: {record['error']}"))
    results["sinks"] = records
    write_json(out / "results.json", results, indent=None)
    return records


def failed_sinks(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``sinks`` records of ``results`` whose sink failed."""
    return [s for s in results.get("sinks") or [] if not s.get("ok")]
