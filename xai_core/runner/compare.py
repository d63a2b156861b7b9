"""Models side by side: one figure per input image with the models of a run as rows and the
attribution methods as columns (``figures/compare/<image>.png``), each row titled with that
model's prediction and its probability, and a note when the model has no trained weights.

Built from the items and the files on disk after every model finished, like the grid figure of
a one-model run (:func:`xai_core.runner.results.write_grid`), so a resumed or sharded run draws
the same figures. Each model sees the photo at its own input size; the figure shows each row's
input as that model saw it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from xai_core.io import photo_beside, read_array
from xai_core.report.figures import FigureOptions
from xai_core.report.render import grid_figure

__all__ = ["COMPARE_DIR", "write_comparison", "model_row_title"]

#: Where the comparison figures go, under the run's output folder.
COMPARE_DIR = "figures/compare"


def model_row_title(model: str, item: dict[str, Any], random_weights: bool = False) -> str:
    """``"efficientnet_lite1: tabby (0.61)"``: the model and what it predicted."""
    label = item.get("predicted_label", "?")
    probability = item.get("predicted_probability") or 0.0
    title = f"{model}: {label} ({probability:.2f})"
    return title + "\n(random weights)" if random_weights else title


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as photo:
        return np.asarray(photo.convert("RGB"), dtype=np.float32) / 255


def write_comparison(
    out: Path,
    items: list[dict[str, Any]],
    models: list[str],
    methods: list[str],
    random_weights: set[str] | frozenset[str] = frozenset(),
    options: FigureOptions | None = None,
) -> list[str]:
    """Write one models x methods figure per input image; return their paths (relative).

    :param items: the run's items (every model's), as in ``results.json``.
    :param models: model labels, in row order.
    :param methods: attributor labels, in column order.
    :param random_weights: labels of models without trained weights (said in their row title).
    :param options: how maps are drawn (the config's ``figure``).
    """
    if not methods or not models:
        return []
    by_image, maps = _inputs_and_maps(out, items, models, methods)
    written = []
    for key, per_model in by_image.items():
        rows, cells = _grid(out, key, per_model, models, methods, maps, random_weights)
        if rows:
            rel = f"{COMPARE_DIR}/{key}.png"
            grid_figure(out / rel, rows, methods, cells, options)
            written.append(rel)
    return written


def _inputs_and_maps(
    out: Path, items: list[dict[str, Any]], models: list[str], methods: list[str]
) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[tuple[str, str, str], np.ndarray]]:
    """Per image key, each model's first successful attributor item (for its input picture);
    and the saved map of each (image key, model, method)."""
    by_image: dict[str, dict[str, dict[str, Any]]] = {}
    maps: dict[tuple[str, str, str], np.ndarray] = {}
    for item in items:
        key, model = item.get("key"), item.get("model")
        if key is None or item.get("kind") != "attributor" or model not in models:
            continue
        files = item.get("files", {})
        if item.get("error") is None and "input" in files:
            by_image.setdefault(key, {}).setdefault(model, item)
        if "map" in files and item["label"] in methods:
            maps.setdefault((key, model, item["label"]), read_array(out / files["map"]))
    return by_image, maps


def _grid(
    out: Path,
    key: str,
    per_model: dict[str, dict[str, Any]],
    models: list[str],
    methods: list[str],
    maps: dict[tuple[str, str, str], np.ndarray],
    random_weights: set[str] | frozenset[str],
) -> tuple[list[tuple[str, np.ndarray]], dict[tuple[int, int], np.ndarray]]:
    """One image's figure: a (title, picture) row per model whose input picture exists, and
    the maps by (row, column)."""
    rows, cells = [], {}
    for model in models:
        item = per_model.get(model)
        if item is None:
            continue
        photo = photo_beside(out / item["files"]["input"])
        if not photo.is_file():
            continue
        r = len(rows)
        rows.append((model_row_title(model, item, model in random_weights), _pixels(photo)))
        for c, method in enumerate(methods):
            found = maps.get((key, model, method))
            if found is not None:
                cells[(r, c)] = found
    return rows, cells
