"""Bytes a run folder holds per item, and what resuming it rewrites. Run by hand.

    .venv/bin/python benchmarks/bench_storage.py [--images 100] [--methods saliency grad_cam
        integrated_gradients] [--figures] [--dtype float16] [--threads 2]

Makes ``--images`` photo-sized JPEGs (bench_throughput's random crops of the scikit-image
samples), runs them through efficientnet_lite0 at 224x224 with ``--methods`` (figures off by
default), then prints the folder's bytes per item (one item: an image, a method, a target),
by top-level entry (maps, inputs, records, report, ...). Then it resumes the finished run and
prints what that rewrote: which files changed and their bytes, records apart. Per-item bytes do
not depend on the number of images beyond the report's and results.json's small share, so 100
images tell what 1,000 or 50,000 would hold.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("XAI_CORE_DISABLE_PLUGIN_AUTOLOAD", "1")
os.environ.setdefault("XAI_CORE_OFFLINE", "1")

from bench_throughput import MODEL, make_images  # noqa: E402

from xai_core.runner.config import load_config  # noqa: E402
from xai_core.runner.run import run_experiment  # noqa: E402


def _sizes(folder: Path) -> dict[str, tuple[int, int]]:
    """Bytes and mtime of every file under ``folder``, by path relative to it."""
    out = {}
    for path in folder.rglob("*"):
        if path.is_file():
            stat = path.stat()
            out[str(path.relative_to(folder))] = (stat.st_size, stat.st_mtime_ns)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--methods", nargs="+",
                        default=["saliency", "grad_cam", "integrated_gradients"])
    parser.add_argument("--figures", action="store_true")
    parser.add_argument("--dtype", default="float16", choices=("float16", "float32"))
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"load average {os.getloadavg()[0]:.2f}; {args.images} images x {args.methods}, "
          f"{MODEL} 224x224, figures {'on' if args.figures else 'off'}, {args.dtype}")
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        make_images(images, args.images)
        out = Path(tmp) / "run"
        methods = [m if m != "integrated_gradients" else {"name": m, "params": {"steps": 8}}
                   for m in args.methods]
        config = load_config({
            "inputs": [str(images)], "model": MODEL, "methods": methods,
            "output_dir": str(out), "figures": args.figures,
            "storage": {"dtype": args.dtype},
        })
        start = time.perf_counter()
        result = run_experiment(config)
        print(f"run: {time.perf_counter() - start:.1f} s, {len(result.items)} items, "
              f"{len(result.failures)} failed")
        before = _sizes(out)
        items = len(result.items)
        total = sum(size for size, _ in before.values())
        by_entry: dict[str, int] = {}
        for rel, (size, _) in before.items():
            entry = rel.split("/")[0]
            by_entry[entry] = by_entry.get(entry, 0) + size
        print("\n| entry | KB per item | share |\n|---|---:|---:|")
        for entry, size in sorted(by_entry.items(), key=lambda kv: -kv[1]):
            print(f"| {entry} | {size / items / 1024:.1f} | {100 * size / total:.1f}% |")
        print(f"| **all** | **{total / items / 1024:.1f}** | 100% |")

        start = time.perf_counter()
        run_experiment(config)
        took = time.perf_counter() - start
        after = _sizes(out)
        changed = {
            rel: size for rel, (size, stamp) in after.items() if before.get(rel) != (size, stamp)
        }
        records = sum(size for rel, size in changed.items() if rel.startswith("records"))
        print(f"\nresume of the finished run: {took:.1f} s; rewrote {len(changed)} file(s), "
              f"{sum(changed.values()) / 1024:.1f} KB in all, {records / 1024:.1f} KB of records")
        for rel, size in sorted(changed.items(), key=lambda kv: -kv[1])[:8]:
            print(f"  {rel}: {size / 1024:.1f} KB")


if __name__ == "__main__":
    main()
