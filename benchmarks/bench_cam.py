"""Benchmark: the CAM plugins against pytorch-grad-cam and Captum's ``LayerGradCam``. Run by hand.

    .venv/bin/python benchmarks/bench_cam.py [--repeats 3] [--threads 2]
        [--skip-score-cam | --score-cam-only] [--score-repeats 2]

Setting of the issue: the offline ``efficientnet_lite0`` at 224 px, target layer ``bn2`` (what
``layer: auto`` picks) for every library, the four sample photos repeated to a batch of 8, fixed
target classes. Each row is timed ``--repeats`` times after one warm-up run; the best is kept.

Sections and their reference (the ``x ref`` column is reference seconds over row seconds, so
``3.0`` means three times faster):

* Grad-CAM, batch 8: pytorch-grad-cam's ``GradCAM`` (which runs a full backward pass including
  parameter gradients); also Captum's ``LayerGradCam`` followed by bilinear upsampling, and the
  bare cost of one forward and one full backward pass to the input, for scale.
* Several targets, one image: Grad-CAM for 5 classes in one call against Grad-CAM for 1 class
  (``x ref`` below 1 here: it is the cost ratio, which should stay above 1/1.5).
* Score-CAM, one image: pytorch-grad-cam's ``ScoreCAM`` (batches of 16 masked images) against
  ``score_cam`` with its defaults and with ``fold_batch_norm: true``. The three alternate
  ``--score-repeats`` times (reference, ours, ours folded, reference, ...), so that a change in
  the machine's load hits them alike; the best time of each is kept. The maps' largest
  difference from pytorch-grad-cam's is printed beside each.

The load average is printed before and after: other processes on the machine make the numbers
noisy; the ratios compare runs made in the same process, interleaved.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

os.environ.setdefault("XAI_CORE_OFFLINE", "1")
os.environ.setdefault("XAI_CORE_DISABLE_PLUGIN_AUTOLOAD", "1")

import torch  # noqa: E402

SAMPLES = ("cat", "coffee", "rocket", "astronaut")
TARGETS = [281, 967, 812, 834, 285, 504, 403, 817]


def best_seconds(run: Callable[[], object], repeats: int) -> float:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def score_cam_rows(
    handle: object, one: torch.Tensor, layer: torch.nn.Module, repeats: int
) -> list[tuple[str, str, float, float | None]]:
    """Score-CAM on one image: pytorch-grad-cam's ``ScoreCAM``, ours and ours with folded batch
    norms, run in turn ``repeats`` times; the best time of each."""
    from pytorch_grad_cam import ScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    import xai_core

    model = handle.module  # type: ignore[attr-defined]

    def reference() -> object:
        with ScoreCAM(model=model, target_layers=[layer]) as cam:
            return cam(input_tensor=one, targets=[ClassifierOutputTarget(281)])

    runs: dict[str, Callable[[], object]] = {"reference": reference}
    for name, params in (("ours", {}), ("ours folded", {"fold_batch_norm": True})):
        method = xai_core.get_attributor("score_cam", **params)
        runs[name] = lambda method=method: method.attribute(handle, one, [281])
    times: dict[str, list[float]] = {name: [] for name in runs}
    outputs: dict[str, object] = {}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            outputs[name] = run()
            times[name].append(time.perf_counter() - start)
    ref_s = min(times["reference"])
    expected = torch.from_numpy(outputs["reference"])[0]  # type: ignore[arg-type]
    rows: list[tuple[str, str, float, float | None]] = [
        ("Score-CAM, 1 image", "pytorch-grad-cam ScoreCAM", ref_s, 1.0)
    ]
    for name in ("ours", "ours folded"):
        result = outputs[name]
        diff = (result.maps[0] - expected).abs().max().item()  # type: ignore[attr-defined]
        passes = result.metadata["score_cam_forward_passes"]  # type: ignore[attr-defined]
        label = "xai-core score_cam" + (", folded BN" if name == "ours folded" else "")
        print(f"Score-CAM {name}: max |ours - pytorch-grad-cam| = {diff:.2e}, {passes} passes")
        rows.append(("", label, min(times[name]), ref_s / min(times[name])))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--score-repeats", type=int, default=2)
    sections = parser.add_mutually_exclusive_group()
    sections.add_argument("--skip-score-cam", action="store_true")
    sections.add_argument("--score-cam-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]

    from captum.attr import LayerAttribution, LayerGradCam
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    import xai_core
    from xai_core.runner.inputs import load_image, sample_path

    handle = xai_core.load_model("efficientnet_lite0")
    model = handle.module.eval()
    photos = torch.stack([handle.preprocessing(load_image(sample_path(n))) for n in SAMPLES])
    x = torch.cat([photos, photos])
    layer = model.bn2
    assert handle.last_conv_block() == "bn2"
    ref_targets = [ClassifierOutputTarget(t) for t in TARGETS]

    grad_cam = xai_core.get_attributor("grad_cam")

    def ours() -> object:
        return grad_cam.attribute(handle, x, TARGETS)

    def reference_pgc() -> object:
        with GradCAM(model=model, target_layers=[layer]) as cam:
            out = cam(input_tensor=x, targets=ref_targets)
        model.zero_grad(set_to_none=True)
        return out

    captum = LayerGradCam(model, layer)

    def reference_captum() -> object:
        low = captum.attribute(x, target=TARGETS, relu_attributions=True)
        return LayerAttribution.interpolate(low, (224, 224), interpolate_mode="bilinear")

    def bare_forward_backward() -> object:
        inputs = x.clone().requires_grad_(True)
        scores = model(inputs).gather(1, torch.tensor(TARGETS)[:, None]).sum()
        return torch.autograd.grad(scores, inputs)

    rows: list[tuple[str, str, float, float | None]] = []
    one = photos[:1]
    if not args.score_cam_only:
        pgc_s = best_seconds(reference_pgc, args.repeats)
        rows.append(("Grad-CAM, batch 8", "pytorch-grad-cam GradCAM", pgc_s, 1.0))
        captum_s = best_seconds(reference_captum, args.repeats)
        rows.append(("", "Captum LayerGradCam + upsampling", captum_s, pgc_s / captum_s))
        bare_s = best_seconds(bare_forward_backward, args.repeats)
        rows.append(("", "bare forward + full backward", bare_s, pgc_s / bare_s))
        ours_s = best_seconds(ours, args.repeats)
        rows.append(("", "xai-core grad_cam", ours_s, pgc_s / ours_s))
        rows.append(("", "xai-core grad_cam vs Captum", ours_s, captum_s / ours_s))

        one_s = best_seconds(lambda: grad_cam.attribute(handle, one, [281]), args.repeats)
        rows.append(("Grad-CAM, 1 image", "xai-core, 1 target", one_s, 1.0))
        five = [[281, 282, 285, 967, 504]]
        five_s = best_seconds(lambda: grad_cam.attribute(handle, one, five), args.repeats)
        rows.append(("", "xai-core, 5 targets in one call", five_s, one_s / five_s))

    if not args.skip_score_cam:
        rows += score_cam_rows(handle, one, layer, args.score_repeats)

    if not args.score_cam_only:
        maps = ours().maps
        ref = torch.from_numpy(reference_pgc())
        print(f"Grad-CAM max |ours - pytorch-grad-cam| = {(maps - ref).abs().max().item():.2e}")
        low = captum.attribute(x, target=TARGETS, relu_attributions=True)
        check = xai_core.get_attributor("grad_cam", normalize="none", upsample="nearest")
        cells = check.attribute(handle, x, TARGETS).maps[:, 16::32, 16::32]
        captum_diff = (cells - low[:, 0]).abs().max()
        print(f"Grad-CAM max |ours - Captum| before upsampling = {captum_diff:.2e}")

    print(
        f"\ntorch {torch.__version__}, threads {torch.get_num_threads()}, load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after, best of {args.repeats} "
        f"(Score-CAM: best of {args.score_repeats}, interleaved)\n"
    )
    print(f"| {'section':20s} | {'row':38s} | {'seconds':>8s} | {'x ref':>6s} |")
    print(f"|{'-' * 22}|{'-' * 40}|{'-' * 10}|{'-' * 8}|")
    for section, name, seconds, ratio in rows:
        shown = f"{ratio:6.2f}" if ratio is not None else ""
        print(f"| {section:20s} | {name:38s} | {seconds:8.3f} | {shown:>6s} |")


if __name__ == "__main__":
    main()
