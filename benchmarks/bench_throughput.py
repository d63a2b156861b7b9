"""Throughput of dataset-scale runs against a plain loop, on the same images. Run by hand.

    .venv/bin/python benchmarks/bench_throughput.py [--images 256] [--batch-size 16]
        [--workers 0 1 2] [--figures] [--threads 2] [--repeats 2] [--methods saliency grad_cam]

Makes a folder of photo-sized JPEGs (random crops of the scikit-image samples, seeded), then for
each method on efficientnet_lite0 measures, in the same process, one after the other:

- plain loop: for each image, load, preprocess, predict (class and probability), explain that
  class for the image alone, save the map (.npy) and, with ``--figures``, the same figure the
  run draws: two forward passes and one backward per image, the reference of the ratios;
- the same loop calling ``attribute(..., "predicted")`` without its own prediction (one pass
  serves both since ``Attributor.forward_pass``; printed for comparison);
- xai-core: ``run_experiment`` over the folder (DataLoader workers, batches, resume records,
  atomic writes, the report), once per ``--workers`` value.

Both sides are timed the same way: from before the model loads to the last file written (the
model load is inside both clocks). Prints images per second and the ratio to the plain loop,
and, for each run of ours, where its wall time went (``time_breakdown`` of ``results.json``:
model passes, waiting for inputs, writing, metrics, figures, report, model load, other). The
load average is printed before and after: other processes make every number noisy, so only
ratios from one run mean anything; ``--repeats`` runs every side several times, in turn, and
reports medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("XAI_CORE_DISABLE_PLUGIN_AUTOLOAD", "1")
os.environ.setdefault("XAI_CORE_OFFLINE", "1")

import xai_core  # noqa: E402
from xai_core.report.render import attribution_figure  # noqa: E402
from xai_core.runner.config import load_config  # noqa: E402
from xai_core.runner.inputs import SAMPLES, load_image, resolve_inputs, sample_path  # noqa: E402
from xai_core.runner.run import run_experiment  # noqa: E402

MODEL = "efficientnet_lite0"
PLAIN = "plain loop (predict, then explain)"
ALONE = "plain loop (explain 'predicted' only)"
SHOWN = ("model", "inputs", "writing", "metrics", "figures", "report", "model_load", "other")


def make_images(folder: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    photos = [
        np.asarray(load_image(sample_path(name)))
        for name in ("cat", "coffee", "astronaut", "rocket", "motorcycle")
    ]
    folder.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        ch, cw = int(h * rng.uniform(0.6, 1.0)), int(w * rng.uniform(0.6, 1.0))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        Image.fromarray(photo[y : y + ch, x : x + cw]).save(folder / f"img{i:04d}.jpg", quality=90)


def plain_loop(folder: Path, method: str, out: Path, figures: bool, predict: bool) -> float:
    """The loop a user writes by hand: one image at a time, its map (and figure) saved.

    ``predict``: the loop first asks the model for its prediction (class and probability, which
    a run reports too), then explains that class: two forward passes and one backward per image,
    the issue's reference. Without it, ``attribute(..., "predicted")`` alone, where the
    technique's own pass picks the class (:meth:`xai_core.Attributor.forward_pass`).
    """
    start = time.perf_counter()
    model = xai_core.load_model(MODEL)
    technique = xai_core.get_attributor(method)
    out.mkdir(parents=True, exist_ok=True)
    for source in resolve_inputs([str(folder)]):
        pixels = model.preprocessing.to_pixels(load_image(source.path))
        x = model.normalize(pixels)[None]
        target: object = "predicted"
        if predict:
            with torch.no_grad():
                probabilities = model.module(x).softmax(dim=1)
            target = int(probabilities.argmax(dim=1))
        result = technique.attribute(model, x, target)
        saliency = result.maps[0].numpy()
        np.save(out / f"{source.key}.npy", saliency)
        if figures:
            image = pixels.permute(1, 2, 0).numpy()
            attribution_figure(out / f"{source.key}.png", image, saliency, method)
    return time.perf_counter() - start


def ours(
    folder: Path, method: str, out: Path, batch_size: int, workers: int, figures: bool
) -> tuple[float, dict[str, float]]:
    config = load_config(
        {
            "inputs": [str(folder)],
            "model": MODEL,
            "methods": [method],
            "output_dir": str(out),
            "figures": figures,
            "batch_size": batch_size,
            "workers": workers,
        }
    )
    start = time.perf_counter()
    result = run_experiment(config)
    seconds = time.perf_counter() - start
    assert not result.failures, result.failures[:1]
    results = json.loads((out / "results.json").read_text())
    return seconds, results["time_breakdown"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=["saliency", "grad_cam"])
    parser.add_argument("--figures", action="store_true", help="figures on, on both sides")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of every side, in turn")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cpus, "
        f"load average {os.getloadavg()[0]:.2f} before"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        make_images(folder, args.images)
        print(
            f"{args.images} JPEGs from {len(SAMPLES)} samples; {MODEL}, 224x224, batch "
            f"{args.batch_size}, figures {'on' if args.figures else 'off'}; model load inside "
            "both clocks"
        )
        # Imports, plugin loading and the first call's one-time set-up happen once per process:
        # done here, before any clock, so neither side pays them.
        warm = xai_core.load_model(MODEL)
        for method in args.methods:
            xai_core.get_attributor(method).attribute(warm, torch.zeros(1, 3, 224, 224), 0)
        # Each repeat runs every side once, in turn, so drifts in the machine's load hit all
        # sides alike; the table shows each side's median over the repeats.
        seconds: dict[tuple[str, str], list[float]] = {}
        breakdowns: dict[tuple[str, int], list[dict[str, float]]] = {}
        for _ in range(args.repeats):
            for method in args.methods:
                for predict, run in ((True, PLAIN), (False, ALONE)):
                    out = Path(tmp) / f"plain-{method}-{predict}"
                    took = plain_loop(folder, method, out, args.figures, predict)
                    seconds.setdefault((method, run), []).append(took)
                for workers in args.workers:
                    out = Path(tmp) / f"ours-{method}-{workers}"
                    shutil.rmtree(out, ignore_errors=True)  # a fresh run, not a resume
                    took, breakdown = ours(
                        folder, method, out, args.batch_size, workers, args.figures
                    )
                    seconds.setdefault((method, f"xai-core, {workers} workers"), []).append(took)
                    breakdowns.setdefault((method, workers), []).append(breakdown)
        print(
            f"\n| method | run | img/s (median of {args.repeats}) | ratio to plain loop |"
            "\n|---|---|---:|---:|"
        )
        for (method, run), times in seconds.items():
            median = statistics.median(times)
            plain = statistics.median(seconds[(method, PLAIN)])
            print(f"| {method} | {run} | {args.images / median:.2f} | {plain / median:.2f}x |")
        print("\nwhere our wall time went (share of wall time; the run of median wall time):")
        print("| method | workers | " + " | ".join(SHOWN) + " | wall s |")
        print("|---|---:|" + "---:|" * (len(SHOWN) + 1))
        for (method, workers), runs in breakdowns.items():
            breakdown = sorted(runs, key=lambda b: b["wall"])[len(runs) // 2]
            wall = breakdown["wall"]
            shares = " | ".join(f"{100 * breakdown.get(k, 0.0) / wall:.1f}%" for k in SHOWN)
            print(f"| {method} | {workers} | {shares} | {wall:.1f} |")
    print(f"\nload average {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    main()
