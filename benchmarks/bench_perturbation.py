"""Benchmark: occlusion against Captum's ``Occlusion``, RISE against a plain RISE. Run by hand.

    .venv/bin/python benchmarks/bench_perturbation.py [--rounds 3] [--repeats 2] [--masks 250]

Setting of the issue: the offline ``efficientnet_lite0``, the cat and coffee sample photos at
224 px (2 images), window 32, stride 16, zeros baseline, the predicted classes. Every row runs in
a fresh process (one model load, one warm-up forward pass, then ``--repeats`` timed runs), so
that the peak memory of one row is not hidden by what an earlier row left allocated. The rows
take turns: ``--rounds`` times each row of a section in order, the best time of all kept, so
that a slow spell of this shared machine does not fall on one row only.

Columns: ``seconds`` (best run); ``x bare`` (seconds over the bare cost of the forward passes
the method needs: the same number of images through the plain model in batches of 16, no layout
change); ``x ref`` (how many times faster than the reference of its section: Captum's
``Occlusion`` at its default ``perturbations_per_eval=1``, or the plain RISE); ``peak MiB``
(resident memory reached during the timed runs, above what the process held before them; the
largest of the rounds).

Rows ``xai occlusion``: our default, which folds batch norms into their convolutions
(``fold_batch_norm``) and reuses the unoccluded image's activations up to early layers,
recomputing only the crops each window changes (``incremental``); ``full passes`` turns the
reuse off, ``no folding`` the folding, ``NCHW`` the channels-last layout. ``xai rise no folding``
likewise.

The load average is printed: other processes on the machine make the numbers noisy.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import time
from collections.abc import Callable

os.environ.setdefault("XAI_CORE_OFFLINE", "1")
os.environ.setdefault("XAI_CORE_DISABLE_PLUGIN_AUTOLOAD", "1")

import torch  # noqa: E402

WINDOW, STRIDE, BATCH = 32, 16, 16


def _setup():
    import xai_core
    from xai_core.runner.inputs import load_image, sample_path

    handle = xai_core.load_model("efficientnet_lite0")
    handle.module.eval()
    x = torch.stack([handle.preprocessing(load_image(sample_path(n))) for n in ("cat", "coffee")])
    with torch.no_grad():
        targets = handle.module(x).argmax(dim=1)
    return handle, x, targets


def _bare(model: torch.nn.Module, x: torch.Tensor, images: int) -> None:
    """``images`` forward images through the plain model in batches of ``BATCH``."""
    batch = x[torch.arange(BATCH) % len(x)]
    with torch.no_grad():
        for start in range(0, images, BATCH):
            model(batch[: min(BATCH, images - start)])


def _plain_rise(model, x, targets, masks, keep):
    """RISE written plainly: each image's masked copies in batches, probability-weighted sum."""
    maps = []
    with torch.no_grad():
        for image, target in zip(x, targets):
            total = torch.zeros(x.shape[2:])
            for start in range(0, len(masks), BATCH):
                m = masks[start : start + BATCH]
                p = model(image[None] * m[:, None]).softmax(dim=1)[:, target]
                total += (p[:, None, None] * m).sum(dim=0)
            maps.append(total / (len(masks) * keep))
    return torch.stack(maps)


def _make_run(name: str, masks: int, handle, x, targets) -> Callable[[], object]:
    """The timed callable of row ``name``."""
    from captum.attr import Occlusion
    from xai_core_plugins.perturbation.occlusion import occlusion_corners
    from xai_core_plugins.perturbation.rise import rise_grids, rise_masks

    import xai_core

    model = handle.module
    windows = len(occlusion_corners(224, WINDOW, STRIDE)) ** 2
    occlusion_images = len(x) * windows + len(x)
    if name == "bare forward (occlusion)":
        return lambda: _bare(model, x, occlusion_images)
    if name == "bare forward (RISE)":
        return lambda: _bare(model, x, len(x) * masks)
    if name.startswith("captum Occlusion"):
        ppe = int(name.rsplit("=", 1)[1])
        captum = Occlusion(model)
        return lambda: captum.attribute(
            x,
            sliding_window_shapes=(3, WINDOW, WINDOW),
            strides=(3, STRIDE, STRIDE),
            baselines=0.0,
            target=targets,
            perturbations_per_eval=ppe,
        )
    if name.startswith("xai occlusion"):
        occ = xai_core.get_attributor(
            "occlusion",
            window=WINDOW,
            stride=STRIDE,
            channels_last="NCHW" not in name,
            incremental="full passes" not in name,
            fold_batch_norm="no folding" not in name,
        )
        return lambda: occ.attribute(handle, x, targets)
    rise = xai_core.get_attributor(
        "rise", n_masks=masks, grid=7, keep=0.5, seed=0, fold_batch_norm="no folding" not in name
    )
    if name == "plain RISE (reference)":
        grids, shifts = rise_grids(masks, 7, 0.5, (224, 224), torch.Generator().manual_seed(0))
        soft = rise_masks(grids, shifts, (224, 224))
        return lambda: _plain_rise(model, x, targets, soft, 0.5)
    if name.startswith("xai rise"):
        return lambda: rise.attribute(handle, x, targets)
    raise ValueError(name)


def _peak_reset() -> int:
    """Reset the kernel's resident-memory high-water mark; return the current RSS in KiB."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status("VmRSS")


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _measure(name: str, masks: int, repeats: int, queue) -> None:
    torch.manual_seed(0)
    handle, x, targets = _setup()
    run = _make_run(name, masks, handle, x, targets)
    _bare(handle.module, x, BATCH)  # warm-up: first-call allocations, oneDNN
    before = _peak_reset()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    queue.put((best, (_status("VmHWM") - before) / 1024))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="turns of every row")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per turn")
    parser.add_argument("--masks", type=int, default=250, help="RISE masks")
    args = parser.parse_args()
    sections = {
        "occlusion": [
            "bare forward (occlusion)",
            "captum Occlusion ppe=1",
            "captum Occlusion ppe=4",
            "captum Occlusion ppe=8",
            "captum Occlusion ppe=16",
            "xai occlusion",
            "xai occlusion full passes",
            "xai occlusion no folding",
            "xai occlusion NCHW",
        ],
        "rise": [
            "bare forward (RISE)",
            "plain RISE (reference)",
            "xai rise",
            "xai rise no folding",
        ],
    }
    context = multiprocessing.get_context("spawn")
    print(
        f"efficientnet_lite0, 2 images 224x224, window {WINDOW}, stride {STRIDE}, "
        f"RISE {args.masks} masks grid 7; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; best of {args.rounds} rounds x {args.repeats} runs; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'row':<28}{'seconds':>9}{'x bare':>9}{'x ref':>8}{'peak MiB':>10}")
    for rows in sections.values():
        results = {name: (math.inf, 0.0) for name in rows}
        for _ in range(args.rounds):
            for name in rows:
                queue = context.Queue()
                measure = (name, args.masks, args.repeats, queue)
                child = context.Process(target=_measure, args=measure)
                child.start()
                seconds, peak = queue.get()
                child.join()
                results[name] = (min(seconds, results[name][0]), max(peak, results[name][1]))
        bare, reference = results[rows[0]][0], results[rows[1]][0]
        for name, (seconds, peak) in results.items():
            print(
                f"{name:<28}{seconds:>9.2f}{seconds / bare:>9.2f}"
                f"{reference / seconds:>8.2f}{peak:>10.0f}"
            )
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
