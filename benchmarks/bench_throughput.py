"""Throughput of dataset-scale runs against a plain loop, on the same images.

    .venv/bin/python benchmarks/bench_throughput.py [--images 256] [--batch-size 16] [--workers 2]

Makes a folder of photo-sized JPEGs (random crops of the scikit-image samples, seeded), then for
saliency and Grad-CAM on efficientnet_lite0 measures, in the same process:

- plain loop: for each image, load, preprocess, explain it alone, save the map (.npy);
- xai-core: ``run_experiment`` over the folder (DataLoader workers, batches, resume records,
  atomic writes; figures off, as the plain loop makes none).

Prints images per second for both and the ratio.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("XAI_CORE_DISABLE_PLUGIN_AUTOLOAD", "1")

import xai_core  # noqa: E402
from xai_core.runner.config import load_config
from xai_core.runner.inputs import SAMPLES, load_image, resolve_inputs, sample_path
from xai_core.runner.run import run_experiment


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


def plain_loop(folder: Path, method: str, out: Path) -> float:
    model = xai_core.load_model("efficientnet_lite0")
    technique = xai_core.get_attributor(method)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for source in resolve_inputs([str(folder)]):
        x = model.preprocessing(load_image(source.path))[None]
        result = technique.attribute(model, x, "predicted")
        np.save(out / f"{source.key}.npy", result.maps[0].numpy())
    return time.perf_counter() - start


def ours(folder: Path, method: str, out: Path, batch_size: int, workers: int) -> float:
    config = load_config(
        {
            "inputs": [str(folder)],
            "methods": [method],
            "output_dir": str(out),
            "figures": False,
            "batch_size": batch_size,
            "workers": workers,
        }
    )
    start = time.perf_counter()
    result = run_experiment(config)
    assert not result.failures
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=["saliency", "grad_cam"])
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cpus")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        make_images(folder, args.images)
        print(f"{args.images} JPEGs from {len(SAMPLES)} samples; efficientnet_lite0, 224x224")
        print(f"{'method':<12} {'plain img/s':>12} {'xai-core img/s':>15} {'ratio':>7}")
        for method in args.methods:
            plain = plain_loop(folder, method, Path(tmp) / f"plain-{method}")
            batched = ours(
                folder, method, Path(tmp) / f"ours-{method}", args.batch_size, args.workers
            )
            rate_plain, rate_ours = args.images / plain, args.images / batched
            print(
                f"{method:<12} {rate_plain:>12.2f} {rate_ours:>15.2f} "
                f"{rate_ours / rate_plain:>6.2f}x"
            )


if __name__ == "__main__":
    main()
