"""Benchmark: the gradient attributors against Captum and against the bare passes they need.

    .venv/bin/python benchmarks/bench_gradients.py [--repeats 5] [--ig-steps 32] [--samples 10]
                                                   [--memory-steps 200] [--skip-memory]

Setting of the issue: the offline ``efficientnet_lite0``, a batch of 8 at 224 px (the four sample
photos twice), fixed target classes, parameters frozen. For each method the table gives our
seconds, Captum's counterpart's seconds on the same model and batch, and the cost of a bare
forward and backward pass to the input times the number of passes the method needs:

* guided backprop, deconvnet, gradient x input: 1 pass. Captum's ``GuidedBackprop`` and
  ``Deconvolution`` only hook ``nn.ReLU`` modules, so they run on a copy whose ReLU6 layers are
  ``nn.ReLU`` subclasses (otherwise they would return the plain gradient).
* integrated gradients, ``--ig-steps`` Gauss-Legendre steps from black: that many passes; ours
  also runs the forward passes for the completeness gap, so Captum is asked for its convergence
  delta too. Both get 16 path points per pass (our ``batch_size``, Captum's
  ``internal_batch_size``).
* SmoothGrad over saliency, ``--samples`` noisy copies: that many passes. Captum's
  ``NoiseTunnel`` draws all copies at once (its default).

Our methods feed the model NHWC (channels-last) inputs by default (``channels_last``): the same
values, faster convolution kernels on CPU. ``x bare`` compares with the plain NCHW pass the issue
defines; the header also gives the bare pass on an NHWC input, so the layout's share of the gain
can be read off.

Rows are timed in turns, ``--repeats`` rounds after one warm-up, and each keeps its best time, so
that load from other processes hits all rows alike (the load average is printed). The ratios
``x bare`` and ``x captum`` are our time over the bare cost and over Captum's time, in
wall-clock and in CPU seconds (all threads; less disturbed by other processes).

Peak memory of integrated gradients (``--memory-steps`` steps, a batch of 16, default
``batch_size``) is measured in a fresh subprocess as the peak resident set size: ``VmHWM`` in
``/proc/self/status``, reset to the current size through ``/proc/self/clear_refs`` just before
the call (Linux; CPU tensors are not seen by tracemalloc, and ``ru_maxrss`` would include the
parent's peak).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable

os.environ.setdefault("XAI_CORE_OFFLINE", "1")
os.environ.setdefault("XAI_CORE_DISABLE_PLUGIN_AUTOLOAD", "1")

import torch  # noqa: E402
from _common import interleaved_best_times, parser_with, relu6_as_relu  # noqa: E402

SAMPLES = ("cat", "coffee", "rocket", "astronaut")
TARGETS = [281, 967, 812, 834, 285, 504, 403, 817, 281, 967, 812, 834, 285, 504, 403, 817]


def load(batch: int):
    import xai_core
    from xai_core.runner.inputs import load_image, sample_path

    handle = xai_core.load_model("efficientnet_lite0")
    module = handle.module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    photos = [handle.preprocessing(load_image(sample_path(name))) for name in SAMPLES]
    inputs = torch.stack([photos[i % len(photos)] for i in range(batch)])
    return handle, inputs, TARGETS[:batch]


def _resident(field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak since the last reset) of this process, in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory(steps: int) -> None:
    """Peak RSS of integrated gradients, ``steps`` steps, batch 16 (run in a fresh process)."""
    import xai_core

    handle, inputs, targets = load(16)
    method = xai_core.get_attributor("integrated_gradients", steps=steps)
    # Reset the peak to the current RSS (Linux); getrusage's ru_maxrss would also count the
    # parent's peak, which a child inherits.
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    before = _resident("VmRSS")
    start = time.perf_counter()
    result = method.attribute(handle, inputs, targets)
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "steps": steps,
                "batch": 16,
                "batch_size": method.params.batch_size,
                "rss_before": before,
                "rss_peak": _resident("VmHWM"),
                "seconds": seconds,
                "max_relative_gap": max(result.metadata["completeness_gap_relative"]),
            }
        )
    )


def main() -> None:
    parser = parser_with(__doc__, repeats=5, ig_steps=32, samples=10, memory_steps=200)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_only:
        memory(args.memory_steps)
        return
    warnings.filterwarnings("ignore")

    from captum import attr as captum

    import xai_core

    handle, inputs, targets = load(8)
    model = handle.module
    model_relu = relu6_as_relu(model)
    target_tensor = torch.tensor(targets)
    steps, samples = args.ig_steps, args.samples

    def bare(layout: torch.memory_format = torch.contiguous_format) -> None:
        x = inputs.clone(memory_format=layout).requires_grad_(True)
        scores = model(x).gather(1, target_tensor[:, None]).sum()
        torch.autograd.grad(scores, x)

    def ours(name: str, **params) -> Callable[[], object]:
        method = xai_core.get_attributor(name, **params)
        return lambda: method.attribute(handle, inputs, targets)

    def theirs(captum_method, **kwargs) -> Callable[[], object]:
        return lambda: captum_method.attribute(
            inputs.clone().requires_grad_(True), target=target_tensor, **kwargs
        )

    black = handle.normalize(torch.zeros_like(inputs))
    rows = [
        ("guided_backprop", 1, ours("guided_backprop"), theirs(captum.GuidedBackprop(model_relu))),
        ("deconvnet", 1, ours("deconvnet"), theirs(captum.Deconvolution(model_relu))),
        ("gradient_x_input", 1, ours("gradient_x_input"), theirs(captum.InputXGradient(model))),
        (
            f"integrated_gradients ({steps} steps)",
            steps,
            ours("integrated_gradients", steps=steps, batch_size=16),
            theirs(
                captum.IntegratedGradients(model),
                baselines=black,
                n_steps=steps,
                method="gausslegendre",
                internal_batch_size=16,
                return_convergence_delta=True,
            ),
        ),
        (
            f"smoothgrad over saliency ({samples} samples)",
            samples,
            ours("noise_tunnel", samples=samples, relative=False, stdev=0.3),
            theirs(
                captum.NoiseTunnel(captum.Saliency(model)),
                nt_type="smoothgrad",
                nt_samples=samples,
                stdevs=0.3,
                abs=True,
            ),
        ),
    ]
    runners: dict[str, Callable[[], object]] = {
        "bare": bare,
        "bare NHWC": lambda: bare(torch.channels_last),
    }
    for label, _, mine, reference in rows:
        runners[label] = mine
        runners[label + " / captum"] = reference
    wall, cpu = interleaved_best_times(runners, args.repeats)
    _print_table(rows, wall, cpu, args.repeats)
    if not args.skip_memory:
        _print_memory(args.memory_steps)


def _print_table(rows: list, wall: dict[str, float], cpu: dict[str, float], repeats: int) -> None:
    print(
        f"efficientnet_lite0, batch 8, 224x224, CPU ({torch.get_num_threads()} threads), "
        f"torch {torch.__version__}; best of {repeats}; load average "
        f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}"
    )
    print(
        f"bare forward+backward pass (params frozen): {wall['bare']:.3f} s wall, "
        f"{cpu['bare']:.3f} s CPU (the same pass on an NHWC input, as our methods run it by "
        f"default: {wall['bare NHWC']:.3f} s wall, {cpu['bare NHWC']:.3f} s CPU)\n"
    )
    print(
        "| method | passes | ours s wall / CPU | captum s wall / CPU | x bare wall / CPU "
        "| x captum wall / CPU |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for label, passes, _, _ in rows:
        ref = label + " / captum"
        print(
            f"| {label} | {passes} | {wall[label]:.2f} / {cpu[label]:.2f} | "
            f"{wall[ref]:.2f} / {cpu[ref]:.2f} | "
            f"{wall[label] / (passes * wall['bare']):.3f} / "
            f"{cpu[label] / (passes * cpu['bare']):.3f} | "
            f"{wall[label] / wall[ref]:.3f} / {cpu[label] / cpu[ref]:.3f} |"
        )


def _print_memory(memory_steps: int) -> None:
    """Integrated gradients' peak memory, measured in a fresh process (VmHWM is per process)."""
    out = subprocess.run(
        [sys.executable, __file__, "--memory-only", "--memory-steps", str(memory_steps)],
        check=True,
        capture_output=True,
        text=True,
    )
    m = json.loads(out.stdout.strip().splitlines()[-1])
    gib = 1024**3
    print(
        f"\nintegrated_gradients, {m['steps']} steps, batch {m['batch']}, batch_size "
        f"{m['batch_size']}: peak RSS {m['rss_peak'] / gib:.2f} GiB (before the call "
        f"{m['rss_before'] / gib:.2f} GiB, so +{(m['rss_peak'] - m['rss_before']) / gib:.2f} "
        f"GiB) in {m['seconds']:.0f} s; largest completeness gap "
        f"{100 * m['max_relative_gap']:.2f}% (VmHWM)"
    )

if __name__ == "__main__":
    main()
