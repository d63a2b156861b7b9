"""Benchmark: ``deeplift``, ``deeplift_shap`` and ``gradient_shap`` against Captum's ``DeepLift``,
``DeepLiftShap`` and ``GradientShap`` on the same model, batch, baselines and samples, in one run.
Run by hand.

    .venv/bin/python benchmarks/bench_deeplift.py [--threads 1] [--repeats 5] [--batch 2]
        [--size 224] [--model efficientnet_lite0] [--references 5] [--samples 20]

The model is ``xai_core.load_model(--model)`` (offline weights); inputs are a fixed random batch,
targets fixed. Each pair shares its work: ``deeplift`` runs with the reference Captum gets,
``deeplift_shap`` with ``--references`` fixed reference images (a tensor), ``gradient_shap`` with
the same set, ``--samples`` draws and noise ``0.1`` (Captum's ``nt_samples_batch_size`` is all
draws at once, so ours runs ``batch_size`` = all rows too). ``deeplift`` and ``deeplift_shap``
are timed with both rule sets: ``(captum)`` rows run ``rules: captum`` against plain Captum (equal
results; on EfficientNet-Lite Captum's rule touches no layer, its ReLU6 passing the plain
gradient), ``(all)`` rows run the default ``rules: all`` against Captum with its own rescale rule
registered for ReLU6, hardswish and hardsigmoid too (the same rule on the same layers, equal
results on EfficientNet-Lite). Ours and Captum alternate within each repeat
after one warm-up of each; the best wall-clock time and the best process CPU time of each are
kept and the ratios ``Captum / ours`` printed (above 1: ours is faster), with the load average.
On a shared, overloaded machine wall-clock times are mostly waiting; CPU time (one thread by
default, so no spinning threads count) is the steadier measure there.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

os.environ.setdefault("XAI_CORE_OFFLINE", "1")

import torch  # noqa: E402
from _common import interleaved_best_times, parser_with  # noqa: E402


def _best(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, tuple[float, float]]:
    """Best wall-clock and best process CPU time of each call, alternating the calls."""
    wall, cpu = interleaved_best_times(calls, repeats)
    return {name: (wall[name], cpu[name]) for name in calls}


def main() -> None:
    args = parser_with(
        __doc__, threads=1, repeats=5, batch=2, size=224, model="efficientnet_lite0",
        references=5, samples=20,
    ).parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)

    from captum.attr import DeepLift, DeepLiftShap, GradientShap
    from captum.attr._core import deep_lift as captum_deep_lift

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
        "deeplift_shap (all)": xai_core.get_attributor(
            "deeplift_shap", baselines=references, batch_size=args.batch * args.references
        ),
        "deeplift_shap (captum)": xai_core.get_attributor(
            "deeplift_shap",
            baselines=references,
            batch_size=args.batch * args.references,
            rules="captum",
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

    def extended(call: Callable[[], object]) -> Callable[[], object]:
        """``call`` with Captum's rescale rule also on the activations ``rules: all`` adds
        (ReLU6, hardswish, hardsigmoid): the same rule and work as ours and, on networks without
        chained rule modules or overlapping max pools (EfficientNet-Lite), the same results."""

        def run() -> object:
            table = captum_deep_lift.SUPPORTED_NON_LINEAR
            saved = dict(table)
            for activation in (torch.nn.ReLU6, torch.nn.Hardswish, torch.nn.Hardsigmoid):
                table[activation] = captum_deep_lift.nonlinear
            try:
                return call()
            finally:
                table.clear()
                table.update(saved)

        return run

    reference = {
        "deeplift (all)": extended(
            lambda: DeepLift(module).attribute(inputs.clone(), baseline, target=targets)
        ),
        "deeplift (captum)": lambda: DeepLift(module).attribute(
            inputs.clone(), baseline, target=targets
        ),
        "deeplift_shap (all)": extended(
            lambda: DeepLiftShap(module).attribute(inputs.clone(), references, target=targets)
        ),
        "deeplift_shap (captum)": lambda: DeepLiftShap(module).attribute(
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
    print(
        "| method | ours wall (s) | Captum wall (s) | Captum / ours (wall) | ours CPU (s) | "
        "Captum CPU (s) | Captum / ours (CPU) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, best in results.items():
        (ours_wall, ours_cpu), (ref_wall, ref_cpu) = best["ours"], best["captum"]
        print(
            f"| {name} | {ours_wall:.3f} | {ref_wall:.3f} | {ref_wall / ours_wall:.2f} | "
            f"{ours_cpu:.3f} | {ref_cpu:.3f} | {ref_cpu / ours_cpu:.2f} |"
        )


if __name__ == "__main__":
    main()
