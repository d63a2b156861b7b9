"""What per-item figures cost a run: the same run with figures on and off. Run by hand.

    .venv/bin/python benchmarks/bench_figures.py [--images 100] [--size 64] [--repeats 2]
        [--method saliency] [--batch-size 16]

Makes a folder of photo-sized JPEGs (random crops of the scikit-image samples, seeded, as
``bench_throughput.py`` does), then runs ``run_experiment`` on it with ``efficientnet_lite0`` at
``--size`` px input, ``figures: true`` and ``figures: false``, in turn, ``--repeats`` times;
prints each side's best wall time, where it went (``time_breakdown``) and the CPU seconds of the
process (all threads), the ratio on / off (issue 28's target: at most 1.5x), the size of the
figures, and one figure's drawing time alone (``attribution_figure``, in this thread).

Per-item figures are drawn in the run's writer thread: its ``writing`` column is the time the
loop waited for that thread (near zero: the drawing overlapped the model); ``figures`` is the
grid, drawn at the end. The load average is printed before and after: other
processes make every number noisy, so only the ratio from one run means anything.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("XAI_CORE_DISABLE_PLUGIN_AUTOLOAD", "1")
os.environ.setdefault("XAI_CORE_OFFLINE", "1")

from _common import parser_with  # noqa: E402
from bench_throughput import MODEL, make_images  # noqa: E402

from xai_core.report.render import attribution_figure  # noqa: E402
from xai_core.runner.config import load_config  # noqa: E402
from xai_core.runner.run import run_experiment  # noqa: E402

SHOWN = ("cpu", "model", "inputs", "writing", "figures", "report", "model_load", "other")


def run(folder: Path, out: Path, args, figures: bool) -> tuple[float, dict[str, float]]:
    shutil.rmtree(out, ignore_errors=True)  # a fresh run, not a resume
    config = load_config({
        "inputs": [str(folder)],
        "model": {"name": MODEL, "input_size": args.size},
        "methods": [args.method],
        "output_dir": str(out),
        "figures": figures,
        "batch_size": args.batch_size,
    })
    start, cpu = time.perf_counter(), time.process_time()
    result = run_experiment(config)
    seconds = time.perf_counter() - start
    assert not result.failures, result.failures[:1]
    breakdown = json.loads((out / "results.json").read_text())["time_breakdown"]
    return seconds, {**breakdown, "cpu": time.process_time() - cpu}


def one_figure(out: Path) -> float:
    """Best time of drawing and saving one of the run's figures again, alone."""
    from xai_core.io import read_array

    maps = sorted(p for p in (out / "maps").rglob("*") if p.suffix in (".npy", ".npz"))
    saliency = read_array(maps[0])
    rng = np.random.default_rng(0)
    image = rng.random((*saliency.shape, 3)).astype(np.float32)
    best = float("inf")
    for _ in range(10):
        start = time.perf_counter()
        attribution_figure(out / "again.png", image, saliency, "saliency: target: x (0.50)")
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    args = parser_with(
        __doc__, images=100, size=64, repeats=2, method="saliency", batch_size=16
    ).parse_args()
    print(f"{os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f} before")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        make_images(folder, args.images)
        run(folder, Path(tmp) / "warm", args, False)  # imports, model files, first calls
        best: dict[bool, tuple[float, dict[str, float]]] = {}
        for _ in range(args.repeats):
            for figures in (True, False):
                took = run(folder, Path(tmp) / f"figures-{figures}", args, figures)
                if figures not in best or took[0] < best[figures][0]:
                    best[figures] = took
        on_dir = Path(tmp) / "figures-True"
        pngs = list((on_dir / "figures").rglob("*.png"))
        per_item = [p for p in pngs if p.name != "grid.png"]
        kb = [p.stat().st_size / 1024 for p in per_item]
        print(
            f"\n{args.images} images, {args.method} on {MODEL} at {args.size} px, batch "
            f"{args.batch_size}; best of {args.repeats} runs each, taken in turn\n"
        )
        print("| figures | wall s | img/s | " + " | ".join(f"{k} s" for k in SHOWN) + " |")
        print("|---|---:|---:|" + "---:|" * len(SHOWN))
        for figures in (True, False):
            wall, breakdown = best[figures]
            shares = " | ".join(f"{breakdown.get(k, 0.0):.2f}" for k in SHOWN)
            print(f"| {'on' if figures else 'off'} | {wall:.2f} | {args.images / wall:.1f} | "
                  f"{shares} |")
        print(
            f"\nratio on / off: {best[True][0] / best[False][0]:.2f}x wall (target: at most "
            f"1.5x), {best[True][1]['cpu'] / best[False][1]['cpu']:.2f}x CPU of this process "
            "(all its threads; the less disturbed by other processes)"
        )
        print(
            f"{len(per_item)} per-item figures: {np.mean(kb):.1f} KB mean, {max(kb):.1f} KB "
            f"max, {sum(kb) / 1024:.2f} MB in all; one figure drawn alone: "
            f"{1000 * one_figure(on_dir):.1f} ms"
        )
    print(f"load average {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    main()
