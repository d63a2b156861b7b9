"""``xai_core.explain`` against the CLI's run of the same config, on the same images. Run by hand.

    .venv/bin/python benchmarks/bench_explain.py [--images 16] [--repeats 2] [--figures 1]
        [--methods saliency grad_cam]

Makes a folder of photo-sized JPEGs (``bench_throughput.make_images``), then times, in turn
(one warm-up each, best of ``--repeats``), each into a fresh output folder:

- the CLI's run: ``run_experiment(load_config(config))``, what ``xai run`` calls, the reference;
- ``xai_core.explain`` on the same files and settings, up to the returned ``Explanations``
  (building the config, the run, reading the run's items back);
- ``xai_core.explain`` on the same images given as PIL images (written under ``given/`` first).

Every side loads ``efficientnet_lite0`` inside its clock. Prints wall and CPU seconds and their
ratio to the CLI's run (the issue asks for explain within 1.1x), and the load average before
and after: only ratios from one run of this script mean anything on a shared machine.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("XAI_CORE_DISABLE_PLUGIN_AUTOLOAD", "1")
os.environ.setdefault("XAI_CORE_OFFLINE", "1")

from _common import interleaved_best_times, parser_with  # noqa: E402
from bench_throughput import make_images  # noqa: E402
from PIL import Image  # noqa: E402

import xai_core  # noqa: E402
from xai_core.runner.config import load_config  # noqa: E402
from xai_core.runner.run import run_experiment  # noqa: E402

MODEL = "efficientnet_lite0"
CLI = "CLI run (run_experiment)"
FILES = "xai_core.explain (files)"
PIL_IMAGES = "xai_core.explain (PIL images)"


def main() -> None:
    parser = parser_with(__doc__, images=16, repeats=2, figures=1)
    parser.add_argument("--methods", nargs="+", default=["saliency", "grad_cam"])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-explain-"))
    try:
        make_images(work / "images", args.images)
        files = sorted(str(p) for p in (work / "images").iterdir())
        photos = [Image.open(p).convert("RGB") for p in files]
        settings = {"figures": bool(args.figures)}
        counter = iter(range(10**6))

        def fresh() -> Path:
            folder = work / f"out{next(counter)}"
            return folder

        def cli() -> None:
            config = {"model": {"name": MODEL}, "inputs": files, "methods": args.methods,
                      "output_dir": str(fresh()), **settings}
            run_experiment(load_config(config))

        def explain_files() -> None:
            ex = xai_core.explain(MODEL, files, methods=args.methods, output_dir=fresh(),
                                  **settings)
            assert len(ex) == args.images * len(args.methods) and not ex.failures

        def explain_pil() -> None:
            ex = xai_core.explain(MODEL, photos, methods=args.methods, output_dir=fresh(),
                                  **settings)
            assert len(ex) == args.images * len(args.methods) and not ex.failures

        load_before = os.getloadavg()
        wall, cpu = interleaved_best_times(
            {CLI: cli, FILES: explain_files, PIL_IMAGES: explain_pil}, args.repeats
        )
        load_after = os.getloadavg()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.images} images x {', '.join(args.methods)} on {MODEL}, figures "
          f"{'on' if args.figures else 'off'}; best of {args.repeats} after one warm-up each")
    print(f"{'':32} {'wall s':>8} {'ratio':>7} {'CPU s':>8} {'ratio':>7}")
    for name in wall:
        print(f"{name:32} {wall[name]:8.2f} {wall[name] / wall[CLI]:7.3f} "
              f"{cpu[name]:8.2f} {cpu[name] / cpu[CLI]:7.3f}")
    print("load average (1, 5, 15 min): before", " ".join(f"{v:.2f}" for v in load_before),
          "after", " ".join(f"{v:.2f}" for v in load_after))


if __name__ == "__main__":
    main()
