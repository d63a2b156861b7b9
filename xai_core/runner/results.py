"""A run's outputs from its items: ``results.json``, the merged item list and the grid figure.

Rank 0 builds these from the ledger (every rank's recorded items), so a resumed or sharded run
writes the same files as one uninterrupted run.

``results.json`` is written twice: by :func:`write_results` with ``"complete": false`` before
the grid figure and the report, and by :func:`finish_results` with ``"complete": true`` and the
digests of the run-level files (``run_files``) last of all. Its timings:

- ``wall_seconds``: this invocation, from start to the results (a resume that skips everything
  is short);
- ``compute_seconds``: the run's compute, the sum of every item's ``seconds``, resumed items
  included (the same for a run done at once or in several invocations);
- ``seconds``: this invocation's time explaining items (after the model loaded);
- ``time_breakdown``: this invocation's wall time by phase (model load, waiting for inputs,
  model passes, metrics, writing, figures, report, other; see :mod:`xai_core.runner.timing`),
  in the final file only.

It is one line of JSON (``python -m json.tool results.json`` indents it): encoding it indented
takes Python's slow encoder, which alone would cost more than resuming a finished run.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from xai_core.contracts.model import ModelHandle
from xai_core.contracts.synthesizer import Synthesizer
from xai_core.contracts.technique import Technique
from xai_core.io import FileDigest, digest_file, read_array, write_json
from xai_core.report.figures import FigureOptions, grid_figure, image_title
from xai_core.report.tables import write_metrics_table
from xai_core.runner.environment import environment
from xai_core.runner.inputs import InputImage
from xai_core.runner.layout import RunLayout
from xai_core.runner.ledger import Ledger
from xai_core.runner.state import RunState
from xai_core.store import RUN_KEY

__all__ = [
    "GRID_ROWS",
    "RUN_KEY",
    "per_run",
    "merge_items",
    "write_grid",
    "write_results",
    "finish_results",
    "compute_seconds",
    "model_entry",
    "model_info",
]

#: The side-by-side grid shows at most this many images (the report shows them all).
GRID_ROWS = 12


def per_run(technique: Technique) -> bool:
    """Whether ``technique`` runs once per run (a synthesizer starting from noise)."""
    return isinstance(technique, Synthesizer) and not technique.starts_from_images


def merge_items(
    ledger: Ledger, sources: Sequence[InputImage], methods: Sequence[tuple[str, Technique]]
) -> list[dict[str, Any]]:
    """Every rank's recorded items for this run's inputs and methods, in input-then-method order."""
    items: list[dict[str, Any]] = []
    for source in sources:
        for label, technique in methods:
            if not per_run(technique):
                items.extend(ledger.items(source.key, label))
    for label, technique in methods:
        if per_run(technique):
            items.extend(ledger.items(RUN_KEY, label))
    return items


def write_grid(
    out: Path,
    items: list[dict[str, Any]],
    labels: list[str],
    options: FigureOptions | None = None,
) -> None:
    """The side-by-side figure for the first :data:`GRID_ROWS` images, from the files on disk.

    One row per image, titled with its target and predicted class and their probabilities; when
    an image was explained for several targets (or by several models), the row shows the first
    target (and model) of its items, so every map in a row answers the same question.
    """
    if not labels:
        return
    layout = RunLayout(out, out)
    keys: list[str] = []
    first: dict[str, dict[str, Any]] = {}
    cells: dict[tuple[int, int], np.ndarray] = {}
    for item in items:
        key = item.get("key")
        if key is None or item.get("kind") != "attributor":
            continue
        if key not in first:
            if len(keys) >= GRID_ROWS or not layout.photo(key).is_file():
                continue
            keys.append(key)
            first[key] = item
        row = first[key]
        same = (repr(item.get("target")), item.get("model")) == (
            repr(row.get("target")), row.get("model")
        )
        if not same:
            continue
        if "map" in item.get("files", {}) and item["label"] in labels:
            cell = (keys.index(key), labels.index(item["label"]))
            cells[cell] = read_array(out / item["files"]["map"])
    if not keys:
        return

    rows = []
    for key in keys:
        with Image.open(layout.photo(key)) as photo:
            pixels = np.asarray(photo.convert("RGB"), dtype=np.float32) / 255
        rows.append((f"{key}\n{image_title(first[key])}", pixels))
    grid_figure(layout.grid, rows, labels, cells, options)


#: The fields of a ``models`` entry that the run adds to what the model says of itself.
RUN_MODEL_FIELDS = ("label", "input_size", "output_dir")


def model_entry(label: str, handle: ModelHandle, output_dir: str) -> dict[str, Any]:
    """A model's entry in ``models`` of ``results.json``: what the model says of itself (its
    name and ``info``) and :data:`RUN_MODEL_FIELDS` (its label, input size and folder)."""
    return {
        "label": label, "name": handle.name, **handle.info,
        "input_size": list(handle.preprocessing.input_size), "output_dir": output_dir,
    }


def model_info(entry: dict[str, Any]) -> dict[str, Any]:
    """What the model of a :func:`model_entry` says of itself: ``results.json``'s ``model``."""
    return {k: v for k, v in entry.items() if k not in RUN_MODEL_FIELDS}


def compute_seconds(items: list[dict[str, Any]]) -> float:
    """The run's compute: the recorded ``seconds`` of every item, whichever invocation ran it."""
    return float(sum(item["seconds"] for item in items if item.get("seconds") is not None))


def write_results(
    run: RunState,
    items: list[dict[str, Any]],
    model: dict[str, Any],
    device: torch.device,
    started: float,
    skipped: int,
    invoked: float,
    index: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``results.json`` with ``"complete": false`` (and the metrics table) for the merged
    ``items``; returns its content for :func:`finish_results`.

    The items themselves stay in their records: ``results.json`` holds the summary and the
    ``index`` (:func:`xai_core.store.index_entry`, one per model) that
    :func:`xai_core.store.load_items` reads them in order by, so a run that adds a few items
    to a large folder rewrites a small file, not every item.

    :param model: the (first) model's :func:`model_entry`; ``model`` is its :func:`model_info`."""
    failed = sum(1 for item in items if item.get("error"))
    now = time.time()
    results = {
        "environment": environment(device),
        "model": model_info(model),
        "config": dataclasses.asdict(run.config),
        "complete": False,
        "seconds": now - started,
        "wall_seconds": now - invoked,
        "compute_seconds": compute_seconds(items),
        "summary": {"items": len(items), "failed": failed, "skipped": skipped},
        "index": index or [],
    }
    attributions = any(i.get("kind") == "attributor" for i in items)
    if run.config.figures and not run.config.compares_models and attributions:
        results["grid"] = "figures/grid.png"
    if run.metrics:
        results["metrics"] = write_metrics_table(run.out, items, run.metrics)
        results["metrics_table"] = "metrics.md"
    write_json(run.layout.results, results, indent=None)
    return results


#: Files of the whole run whose digests ``results.json`` records (``report.html`` is left out:
#: ``xai report`` rebuilds it at will).
RUN_FILES = ("config.yaml", "figures/grid.png", "metrics.md", "metrics.json")


def finish_results(
    out: Path, results: dict[str, Any], written: dict[str, FileDigest] | None = None
) -> None:
    """Mark the run complete, last: after every figure and the report exist."""
    written = written or {}
    run_files = {}
    for rel in RUN_FILES:
        path = out / rel
        if path.is_file():
            digest = written.get(os.path.abspath(path)) or digest_file(path)
            run_files[rel] = digest.as_dict()
    results["run_files"] = run_files
    results["complete"] = True
    write_json(out / "results.json", results, indent=None)
