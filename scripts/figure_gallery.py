"""The figures of docs/reading-figures.md: one real figure per method family, drawn as a run draws
them (:mod:`xai_core.report.figures`).

    python scripts/figure_gallery.py                 # docs/figures/, EfficientNet-Lite0 (offline)
    python scripts/figure_gallery.py --out /tmp/g --model timm/resnet10t --size 64   # quick check

Families: gradients (saliency: non-negative; integrated gradients: signed), class activation
maps (Grad-CAM), perturbation (occlusion: signed), and one synthesizer (a fooling image). The
figures are JPEGs at a modest size so the docs stay light; the page lists what each shows.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import xai_core
from xai_core.report.figures import FigureOptions, difference_panels, fooling_figure
from xai_core.report.render import attribution_image
from xai_core.runner.inputs import load_image, sample_path

#: ``(file stem, technique, params, what the figure shows)``.
FIGURES = [
    ("saliency", "saliency", {}, "gradients, non-negative"),
    ("integrated_gradients", "integrated_gradients", {"steps": 16}, "gradients, signed"),
    ("grad_cam", "grad_cam", {}, "class activation map"),
    ("occlusion", "occlusion", {"window": 64, "stride": 32}, "perturbation, signed"),
]


def _item(handle, probabilities: torch.Tensor, target: int) -> dict:
    predicted = int(probabilities.argmax())
    return {
        "target_label": handle.label(target),
        "target_probability": float(probabilities[target]),
        "predicted_label": handle.label(predicted),
        "predicted_probability": float(probabilities[predicted]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).parents[1] / "docs" / "figures"))
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--size", type=int, default=None, help="input size (default: model's)")
    parser.add_argument("--sample", default="cat")
    parser.add_argument("--iterations", type=int, default=20, help="of the fooling image")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    pretrained = not args.model.startswith(("timm/", "torchvision/"))
    handle = xai_core.load_model(args.model, pretrained=pretrained)
    if args.size:
        pre = handle.preprocessing
        handle.preprocessing = dataclasses.replace(
            pre, input_size=(args.size, args.size),
            resize_size=max(args.size, round(args.size * pre.resize_size / max(pre.input_size))),
        )
    pixels = handle.preprocessing.to_pixels(load_image(sample_path(args.sample)))
    inputs = handle.normalize(pixels)[None]
    with torch.no_grad():
        probabilities = handle.module(inputs).softmax(dim=1)[0]
    target = int(probabilities.argmax())
    image = pixels.permute(1, 2, 0).clamp(0, 1).numpy()
    item = _item(handle, probabilities, target)
    options = FigureOptions()
    for stem, name, params, family in FIGURES:
        if args.size and name == "occlusion":
            params = {"window": max(2, args.size // 4), "stride": max(1, args.size // 8)}
        technique = xai_core.get_attributor(name, **params)
        saliency = technique.attribute(handle, inputs, [target]).maps[0].numpy()
        title = f"{stem} ({family}): target {item['target_label']} " \
                f"({item['target_probability']:.2f})"
        figure = attribution_image(image, saliency, title, options)
        size = (figure.width * 9 // 10, figure.height * 9 // 10)
        figure.resize(size, Image.Resampling.LANCZOS).save(
            out / f"{stem}.jpg", format="JPEG", quality=80, optimize=True
        )
        print(out / f"{stem}.jpg")
    fooling = xai_core.get_synthesizer(
        "fooling", max_iterations=args.iterations, linf_budget=4 / 255
    )
    result = fooling.synthesize(handle, ["goldfish"], images=pixels[None])
    record = result.records[0]
    fooled = result.images[0].permute(1, 2, 0).clamp(0, 1).numpy()
    panels = difference_panels(image, fooled)
    batch = torch.from_numpy(np.stack(panels)).permute(0, 3, 1, 2)
    with torch.no_grad():
        probs = handle.module(handle.normalize(batch)).softmax(dim=1)
    top_p, top = probs.max(dim=1)
    titles = [f"{handle.label(int(c))} ({float(p):.2f})" for c, p in zip(top, top_p)]
    path = out / "fooling.png"
    fooling_figure(
        path, panels, titles,
        f"fooling: target {record.target_label}, p = {record.target_probability:.2f}, "
        f"L∞ {255 * (record.linf or 0):.1f}/255",
    )
    with Image.open(path) as png:
        size = (png.width * 7 // 10, png.height * 7 // 10)
        png.convert("RGB").resize(size, Image.Resampling.LANCZOS).save(
            out / "fooling.jpg", format="JPEG", quality=82, optimize=True
        )
    path.unlink()
    print(out / "fooling.jpg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
