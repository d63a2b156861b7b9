"""Benchmark: the CAM plugins against pytorch-grad-cam and Captum's ``LayerGradCam``. Run by hand.

    .venv/bin/python benchmarks/bench_cam.py [--repeats 3] [--skip-score-cam]

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
* Score-CAM, one image: pytorch-grad-cam's ``ScoreCAM`` (batches of 16 masked images).

The load average is printed: other processes on the machine make the numbers noisy; the ratios
compare runs made minutes apart in the same process.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-score-cam", action="store_true")
    args = parser.parse_args()

    from captum.attr import LayerAttribution, LayerGradCam
    from pytorch_grad_cam import GradCAM, ScoreCAM
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
    pgc_s = best_seconds(reference_pgc, args.repeats)
    rows.append(("Grad-CAM, batch 8", "pytorch-grad-cam GradCAM", pgc_s, 1.0))
    captum_s = best_seconds(reference_captum, args.repeats)
    rows.append(("", "Captum LayerGradCam + upsampling", captum_s, pgc_s / captum_s))
    bare_s = best_seconds(bare_forward_backward, args.repeats)
    rows.append(("", "bare forward + full backward", bare_s, pgc_s / bare_s))
    ours_s = best_seconds(ours, args.repeats)
    rows.append(("", "xai-core grad_cam", ours_s, pgc_s / ours_s))
    rows.append(("", "xai-core grad_cam vs Captum", ours_s, captum_s / ours_s))

    one = photos[:1]
    one_s = best_seconds(lambda: grad_cam.attribute(handle, one, [281]), args.repeats)
    rows.append(("Grad-CAM, 1 image", "xai-core, 1 target", one_s, 1.0))
    five = [[281, 282, 285, 967, 504]]
    five_s = best_seconds(lambda: grad_cam.attribute(handle, one, five), args.repeats)
    rows.append(("", "xai-core, 5 targets in one call", five_s, one_s / five_s))

    if not args.skip_score_cam:
        score_cam = xai_core.get_attributor("score_cam")
        ours_score = score_cam.attribute(handle, one, [281])
        passes = ours_score.metadata["score_cam_forward_passes"]

        def reference_score() -> object:
            with ScoreCAM(model=model, target_layers=[layer]) as cam:
                return cam(input_tensor=one, targets=[ClassifierOutputTarget(281)])

        start = time.perf_counter()
        reference = reference_score()
        ref_score_s = time.perf_counter() - start
        score_s = best_seconds(lambda: score_cam.attribute(handle, one, [281]), 1)
        diff = (ours_score.maps[0] - torch.from_numpy(reference)[0]).abs().max().item()
        rows.append(("Score-CAM, 1 image", "pytorch-grad-cam ScoreCAM", ref_score_s, 1.0))
        rows.append(
            ("", f"xai-core score_cam ({passes} passes)", score_s, ref_score_s / score_s)
        )
        print(f"Score-CAM max |ours - pytorch-grad-cam| = {diff:.2e}")

    maps = ours().maps
    ref = torch.from_numpy(reference_pgc())
    print(f"Grad-CAM max |ours - pytorch-grad-cam| = {(maps - ref).abs().max().item():.2e}")
    low = captum.attribute(x, target=TARGETS, relu_attributions=True)
    check = xai_core.get_attributor("grad_cam", normalize="none", upsample="nearest")
    cells = check.attribute(handle, x, TARGETS).maps[:, 16::32, 16::32]
    print(f"Grad-CAM max |ours - Captum| before upsampling = {(cells - low[:, 0]).abs().max():.2e}")

    print(
        f"\ntorch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"load average {os.getloadavg()[0]:.1f}, best of {args.repeats}\n"
    )
    print(f"| {'section':20s} | {'row':38s} | {'seconds':>8s} | {'x ref':>6s} |")
    print(f"|{'-' * 22}|{'-' * 40}|{'-' * 10}|{'-' * 8}|")
    for section, name, seconds, ratio in rows:
        shown = f"{ratio:6.2f}" if ratio is not None else ""
        print(f"| {section:20s} | {name:38s} | {seconds:8.3f} | {shown:>6s} |")


if __name__ == "__main__":
    main()
