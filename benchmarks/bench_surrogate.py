"""Benchmark: ``lime`` and ``kernel_shap`` against Captum's ``Lime`` and ``KernelShap``. Run by
hand.

    .venv/bin/python benchmarks/bench_surrogate.py [--threads 2] [--repeats 3] [--samples 200]

Setting: the offline ``efficientnet_lite0`` (``--model``), the cat sample photo at 224 px
(``--images 2`` adds the coffee photo), its predicted class, the zeros baseline, one SLIC
segmentation (``--segments``) given to both sides as the feature mask, ``--samples`` perturbed
images per image, ``--batch`` perturbed images per forward pass (Captum's
``perturbations_per_eval``). Each side uses its own defaults otherwise: Captum's ``Lime`` fits
scikit-learn's ``Lasso(alpha=0.01)``, ours the same lasso in torch; ``KernelShap`` draws its own
coalitions from the same distribution as ours.

All rows run in one process, in turns (``--repeats`` rounds of every row in order), with
``torch.set_num_threads`` fixed; the best time of each row is kept, so that a slow spell of this
shared machine does not fall on one row only. Ours includes the segmentation (Captum gets the mask
for free). ``x captum`` is Captum's best time over ours (above 1: ours is faster). The load
average is printed beside the table: other processes make the numbers noisy.
"""

from __future__ import annotations

import argparse
import math
import os
import time
import warnings

os.environ.setdefault("XAI_CORE_OFFLINE", "1")

import torch  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--segments", type=int, default=50)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--images", type=int, default=1, choices=(1, 2))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from captum.attr import KernelShap, Lime
    from xai_core_plugins.surrogate import segment_image

    import xai_core
    from xai_core.runner.inputs import load_image, sample_path

    handle = xai_core.load_model(args.model)
    names = ("cat", "coffee")[: args.images]
    x = torch.stack([handle.preprocessing(load_image(sample_path(n))) for n in names])
    with torch.no_grad():
        targets = handle.module(x).argmax(dim=1).tolist()
    common = {
        "n_samples": args.samples,
        "n_segments": args.segments,
        "batch_size": args.batch,
        "progress": False,
    }
    ours = {
        "lime": xai_core.get_attributor("lime", **common),
        "kernel_shap": xai_core.get_attributor("kernel_shap", **common),
    }
    masks = [segment_image(handle.denormalize(image), ours["lime"].params) for image in x]
    features = [int(m.max()) + 1 for m in masks]

    def captum(method) -> None:
        for i, target in enumerate(targets):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Captum's "one example at a time" advice
                method.attribute(
                    x[i : i + 1],
                    baselines=0.0,
                    target=target,
                    feature_mask=masks[i][None, None].expand(1, 3, -1, -1),
                    n_samples=args.samples,
                    perturbations_per_eval=args.batch,
                )

    rows = {
        "captum Lime": lambda: captum(Lime(handle.module)),
        "xai lime": lambda: ours["lime"].attribute(handle, x, targets),
        "captum KernelShap": lambda: captum(KernelShap(handle.module)),
        "xai kernel_shap": lambda: ours["kernel_shap"].attribute(handle, x, targets),
    }
    with torch.no_grad():
        handle.module(x[:1].expand(args.batch, -1, -1, -1))  # warm-up: oneDNN, allocations
    best = dict.fromkeys(rows, math.inf)
    for _ in range(args.repeats):
        for name, run in rows.items():
            torch.manual_seed(0)
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)

    print(
        f"{args.model}, {len(x)} image(s) at {tuple(x.shape[2:])}, {features} superpixels, "
        f"{args.samples} samples, batch {args.batch}, {args.threads} threads, "
        f"best of {args.repeats}"
    )
    print(f"{'row':<20} {'seconds':>8} {'x captum':>9}")
    for name, seconds in best.items():
        reference = best["captum Lime" if "lime" in name.lower() else "captum KernelShap"]
        print(f"{name:<20} {seconds:8.2f} {reference / seconds:9.2f}")
    print("load average (1, 5, 15 min): " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
