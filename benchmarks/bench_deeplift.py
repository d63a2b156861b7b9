"""Benchmark: ``deeplift``, ``deeplift_shap`` and ``gradient_shap`` against Captum's ``DeepLift``,
``DeepLiftShap`` and ``GradientShap`` on the same model, batch, baselines and samples, in one run.
Run by hand.

    .venv/bin/python benchmarks/bench_deeplift.py [--threads 2] [--repeats 5] [--batch 2]
        [--size 224] [--model efficientnet_lite0] [--references 5] [--samples 20]

The model is ``xai_core.load_model(--model)`` (offline weights); inputs are a fixed random batch,
targets fixed. Each pair shares its work: ``deeplift`` runs with the reference Captum gets,
``deeplift_shap`` with ``--references`` fixed reference images (a tensor), ``gradient_shap`` with
the same set, ``--samples`` draws and noise ``0.1`` (Captum's ``nt_samples_batch_size`` is all
draws at once, so ours runs ``batch_size`` = all rows too). ``deeplift`` is timed with both rule
sets: ``all`` (default; the rule on ReLU6 too, more work than Captum does on EfficientNet-Lite)
and ``captum`` (Captum's rules, equal results). Ours and Captum alternate within each repeat
after one warm-up of each; the best time of each is kept and the ratio ``Captum / ours`` printed
(above 1: ours is faster), with the load average.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections.abc import Callable

os.environ.setdefault("XAI_CORE_OFFLINE", "1")

import torch  # noqa: E402


def _best(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    for call in calls.values():
        call()
    best = {name: float("inf") for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--references", type=int, default=5)
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)

    from captum.attr import DeepLift, DeepLiftShap, GradientShap

    import xai_core

    handle = xai_core.load_model(args.model)
    module = handle.module.eval()
    generator = torch.Generator().manual_seed(0)
    shape = (3, args.size, args.size)
    inputs = torch.randn(args.batch, *shape, generator=generator)
    references = 0.5 * torch.randn(args.references, *shape, generator=generator)
    targets = [i % 1000 for i in range(1, args.batch + 1)]
    baseline = references[:1]
    rows = args.batch * args.samples

    ours = {
        "deeplift (all)": xai_core.get_attributor("deeplift", baseline=baseline[0]),
        "deeplift (captum)": xai_core.get_attributor(
            "deeplift", baseline=baseline[0], rules="captum"
        ),
        "deeplift_shap": xai_core.get_attributor(
            "deeplift_shap", baselines=references, batch_size=args.batch * args.references
        ),
        "gradient_shap": xai_core.get_attributor(
            "gradient_shap",
            baselines=references,
            samples=args.samples,
            stdev=0.1,
            batch_size=rows,
        ),
    }
    for p in module.parameters():
        p.requires_grad_(False)
    reference = {
        "deeplift (all)": lambda: DeepLift(module).attribute(
            inputs.clone(), baseline, target=targets
        ),
        "deeplift (captum)": lambda: DeepLift(module).attribute(
            inputs.clone(), baseline, target=targets
        ),
        "deeplift_shap": lambda: DeepLiftShap(module).attribute(
            inputs.clone(), references, target=targets
        ),
        "gradient_shap": lambda: GradientShap(module).attribute(
            inputs.clone(), references, n_samples=args.samples, stdevs=0.1, target=targets
        ),
    }
    results = {}
    for name, method in ours.items():
        calls = {
            "ours": lambda m=method: m.attribute(handle, inputs, targets),
            "captum": reference[name],
        }
        results[name] = _best(calls, args.repeats)

    print(
        f"model {args.model}, batch {args.batch} at {args.size} px, {args.references} references, "
        f"{args.samples} samples; torch threads {args.threads}; best of {args.repeats}; "
        f"load average {', '.join(f'{v:.1f}' for v in os.getloadavg())}"
    )
    print("| method | ours (s) | Captum (s) | Captum / ours |")
    print("|---|---:|---:|---:|")
    for name, best in results.items():
        print(
            f"| {name} | {best['ours']:.3f} | {best['captum']:.3f} | "
            f"{best['captum'] / best['ours']:.2f} |"
        )


if __name__ == "__main__":
    main()
