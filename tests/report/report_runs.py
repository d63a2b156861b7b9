"""Run folders made without a model, fast: what the report reads of a run, at any size.

``make_run`` writes what a run of ``images`` photos x ``methods`` x ``models`` leaves behind:
photos, maps (``write_array``), one record per (image, method) and ``results.json`` with its
``index`` (the layout :func:`xai_core.store.load_items` reads), and ``metrics.json``. Maps are
smooth blobs plus noise, signed for even-numbered methods and non-negative for odd ones; every
``fail_every``-th item failed. Used by tests/report/ and benchmarks/bench_report.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from xai_core.io import PHOTO_SUFFIX, write_array, write_json, write_photo
from xai_core.report.tables import metrics_table
from xai_core.store import index_entry

CLASSES = ("tabby", "tiger cat", "goldfish", "coffee mug", "volcano")


def _map(rng: np.random.Generator, size: int, signed: bool) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size] / size
    cy, cx = rng.random(2)
    blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) * 12)
    values = blob + 0.1 * rng.standard_normal((size, size))
    if signed:
        values = values - 0.4 * np.exp(-((x - 1 + cx) ** 2 + (y - 1 + cy) ** 2) * 12)
    else:
        values = np.abs(values)
    return (values * 10.0 ** rng.integers(-3, 2)).astype(np.float32)


def make_run(
    out: Path,
    images: int = 4,
    methods: tuple[str, ...] = ("gradient", "saliency"),
    models: tuple[str, ...] = ("tiny",),
    size: int = 32,
    fail_every: int = 0,
    seed: int = 0,
) -> Path:
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    several = len(models) > 1
    every: list[dict[str, Any]] = []
    index = []
    count = 0
    for model in models:
        base = f"{model}/" if several else ""
        keys = [f"img{n:05d}" for n in range(images)]
        for key in keys:
            write_photo(out / f"{base}inputs/{key}{PHOTO_SUFFIX}", rng.random((3, size, size)))
            predicted = int(rng.integers(len(CLASSES)))
            probability = round(float(rng.random()), 3)
            for m, method in enumerate(methods):
                count += 1
                map_rel = f"{base}maps/{key}/{method}.npz"
                item: dict[str, Any] = {
                    "image": f"photos/{key}.jpg", "key": key, "model": model,
                    "method": method, "kind": "attributor", "label": method,
                    "index": int(key[3:]), "target": predicted,
                    "target_label": CLASSES[predicted],
                    "target_probability": probability, "target_rank": 1,
                    "predicted": predicted, "predicted_label": CLASSES[predicted],
                    "predicted_probability": probability,
                    "top5": [{"class": c, "label": CLASSES[c], "probability": 0.1}
                             for c in range(3)],
                    "seconds": float(rng.random() / 10), "error": None,
                    "files": {"input": f"{base}inputs/{key}.npy", "map": map_rel},
                    "metrics": {"deletion": float(rng.random()),
                                "sparsity": float(rng.random())},
                }
                if fail_every and count % fail_every == 0:
                    item.update(error=f"failed on purpose ({key}, {method})", files={},
                                metrics=None)
                else:
                    write_array(out / map_rel, _map(rng, size, signed=m % 2 == 0))
                write_json(out / f"{base}records/{key}/{method}.json", {"items": [item]},
                           indent=None)
                every.append(item)
        index.append(index_entry(f"{base}records", keys, list(methods), []))
    table = metrics_table(every, {"deletion": False, "sparsity": True})
    write_json(out / "metrics.json", table)
    failed = sum(1 for i in every if i["error"])
    results = {
        "model": {"name": models[0], "weights": "random"},
        "models": [{"label": m, "name": f"net-{m}", "weights": f"weights-of-{m}",
                    "input_size": [size, size], "output_dir": m if several else "."}
                   for m in models],
        "config": {}, "complete": True, "seconds": 1.0, "wall_seconds": 1.0,
        "compute_seconds": float(sum(i["seconds"] for i in every)),
        "summary": {"items": len(every), "failed": failed, "skipped": 0},
        "index": index,
    }
    (out / "results.json").write_text(json.dumps(results))
    return out
