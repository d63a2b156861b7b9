"""Benchmark: integrated gradients with ``steps: auto`` against 64 fixed steps. Run by hand.

    .venv/bin/python benchmarks/bench_ig_steps.py [--threads 2] [--tolerance 0.01]
        [--max-steps 1024] [--baselines black blur uniform]

Setting of issue 19: the four demo photos (``configs/demo.yaml``: cat, coffee, rocket,
astronaut) on the offline ``efficientnet_lite0`` at 224 px, each explained for the class the model
predicts, as the demo does. For each baseline, one call with 64 fixed Gauss-Legendre steps (the
rule Captum uses by default) and one with ``steps: auto`` on the batch of four, in turn, in one
process; ``auto`` refines each photo on its own until its completeness gap is within
``--tolerance`` or ``--max-steps`` is reached.

Printed per baseline and photo: the points ``auto`` used, the relative completeness gap it
reached and the one 64 fixed steps reach; per baseline, both calls' seconds and their ratio. The
load average is printed before and after: other processes on the machine make the times noisy.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("XAI_CORE_OFFLINE", "1")
os.environ.setdefault("XAI_CORE_DISABLE_PLUGIN_AUTOLOAD", "1")

import torch  # noqa: E402

PHOTOS = ("cat", "coffee", "rocket", "astronaut")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--tolerance", type=float, default=0.01)
    parser.add_argument("--max-steps", type=int, default=1024)
    parser.add_argument("--fixed-steps", type=int, default=64)
    parser.add_argument("--baselines", nargs="+", default=["black", "blur", "uniform"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]

    import xai_core
    from xai_core.runner.inputs import load_image, sample_path

    handle = xai_core.load_model("efficientnet_lite0")
    x = torch.stack([handle.preprocessing(load_image(sample_path(n))) for n in PHOTOS])
    with torch.no_grad():
        targets = handle.module(x).argmax(dim=1).tolist()

    lines = []
    times = []
    for baseline in args.baselines:
        fixed = xai_core.get_attributor(
            "integrated_gradients", steps=args.fixed_steps, baseline=baseline
        )
        auto = xai_core.get_attributor(
            "integrated_gradients", steps="auto", baseline=baseline,
            tolerance=args.tolerance, max_steps=args.max_steps,
        )
        start = time.perf_counter()
        fixed_result = fixed.attribute(handle, x, targets)
        fixed_s = time.perf_counter() - start
        start = time.perf_counter()
        auto_result = auto.attribute(handle, x, targets)
        auto_s = time.perf_counter() - start
        times.append((baseline, auto_s, fixed_s, sum(auto_result.metadata["steps_used"])))
        for i, photo in enumerate(PHOTOS):
            lines.append(
                (
                    baseline,
                    f"{photo} ({handle.label(targets[i])})",
                    auto_result.metadata["steps_used"][i],
                    auto_result.metadata["completeness_gap_relative"][i],
                    fixed_result.metadata["completeness_gap_relative"][i],
                )
            )
        print(
            f"{baseline}: auto {auto_s:.1f} s, fixed {fixed_s:.1f} s; auto steps "
            f"{auto_result.metadata['steps_used']}, auto gaps "
            f"{[round(g, 4) for g in auto_result.metadata['completeness_gap_relative']]}, fixed "
            f"gaps {[round(g, 4) for g in fixed_result.metadata['completeness_gap_relative']]}",
            flush=True,
        )

    print(
        f"\ntorch {torch.__version__}, threads {torch.get_num_threads()}, load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after; tolerance "
        f"{args.tolerance:g}, max_steps {args.max_steps}\n"
    )
    fixed_label = f"gap, {args.fixed_steps} steps"
    print(f"| baseline | {'photo (target)':32s} | auto steps | auto gap | {fixed_label} |")
    print("|---|---|---:|---:|---:|")
    for baseline, photo, steps, gap, fixed_gap in lines:
        print(
            f"| {baseline} | {photo:32s} | {steps:10d} | {100 * gap:7.2f}% | "
            f"{100 * fixed_gap:{len(fixed_label) - 1}.2f}% |"
        )
    header = f"auto seconds (points) | {args.fixed_steps} steps seconds"
    print(f"\n| baseline | {header} | ratio |")
    print("|---|---:|---:|---:|")
    for baseline, auto_s, fixed_s, points in times:
        print(f"| {baseline} | {auto_s:.1f} ({points}) | {fixed_s:.1f} | {auto_s / fixed_s:.2f} |")


if __name__ == "__main__":
    main()
