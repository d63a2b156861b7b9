"""What resuming a finished run costs, against the run itself.

    .venv/bin/python benchmarks/bench_resume.py [--images 1000] [--size 32] [--figures]
    .venv/bin/python benchmarks/bench_resume.py --model efficientnet_lite0 --size 256 --figures

Makes a folder of random PNGs (seeded), runs saliency over it, by default on ``timm/resnet10t``
(random weights, input as large as the images: the cheapest compute, so the resume's fixed costs
weigh the most), or on ``--model`` at its own input size, then runs the same config again. The
second run must verify every recorded output (input identity, file sizes and sha256) and skip
every item. Prints:

- the first run's wall time and its compute (``compute_seconds``: every item's seconds);
- the resume's wall time, and the part spent on the resume check itself (records read, inputs
  and outputs hashed); the rest is loading the model, results.json and the report;
- the ratios of the resume to the run's compute and to the run's wall time.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

os.environ.setdefault("XAI_CORE_DISABLE_PLUGIN_AUTOLOAD", "1")

from xai_core.runner import run as run_module  # noqa: E402
from xai_core.runner.config import load_config  # noqa: E402
from xai_core.runner.run import run_experiment  # noqa: E402


def make_images(folder: Path, n: int, size: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i:05d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--figures", action="store_true", help="also write a figure per item")
    parser.add_argument(
        "--model", default=None, help="a registered model at its own input size (default: "
        "timm/resnet10t with random weights at --size px)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder, out = Path(tmp) / "in", Path(tmp) / "out"
        make_images(folder, args.images, args.size)
        overlay = {"input_size": [3, args.size, args.size], "crop_pct": 1.0}
        model = {"name": args.model} if args.model else {
            "name": "timm/resnet10t", "pretrained": False,
            "options": {"pretrained_cfg_overlay": overlay},
        }
        config = load_config(
            {
                "model": model,
                "inputs": [str(folder)],
                "methods": ["saliency"],
                "metrics": [],
                "output_dir": str(out),
                "batch_size": args.batch_size,
                "workers": 0,
                "figures": args.figures,
            }
        )
        first = run_experiment(config).results

        check = 0.0
        still_to_do = run_module.plan_items

        def timed(*a, **k):
            nonlocal check
            start = time.perf_counter()
            try:
                return still_to_do(*a, **k)
            finally:
                check += time.perf_counter() - start

        run_module.plan_items = timed
        start = time.perf_counter()
        again = run_experiment(config).results
        resume = time.perf_counter() - start
        run_module.plan_items = still_to_do

    assert again["summary"]["skipped"] == args.images, again["summary"]
    compute, wall = first["compute_seconds"], first["wall_seconds"]
    figures = "on" if args.figures else "off"
    model_name = args.model or "timm/resnet10t"
    print(f"items: {args.images} ({args.size} px images, {model_name}, saliency, "
          f"figures {figures})")
    print(f"first run: wall {wall:.2f} s, compute {compute:.2f} s (sum of item seconds)")
    print(f"resume:    wall {resume:.2f} s, of which the check {check:.2f} s (records, input "
          "and output hashes)")
    print(f"resume / run compute: {resume / compute:.1%}; resume / run wall: {resume / wall:.1%}; "
          f"check / run compute: {check / compute:.1%}")


if __name__ == "__main__":
    main()
