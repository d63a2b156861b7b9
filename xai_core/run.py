"""Running an experiment: load the model and inputs, apply every method, write every output.

Output layout under ``output_dir``::

    config.yaml                  the resolved config
    results.json                 environment + one item per (image, method)
    report.html                  the run as a static web page (``xai report`` rebuilds it)
    inputs/<image>.npy           the exact normalized input tensor each map was computed on
    inputs/<image>.png           the same input in pixel space (resized and cropped)
    maps/<image>/<method>.npy    attribution maps, float32 [H, W] at input resolution
    images/<image>/<method>.png  synthesized images (and .npy, float32 [3, H, W] in [0, 1])
    figures/<image>/<method>.png image | map | overlay
    figures/grid.png             methods side by side per image

Every file is written atomically. One failing image or method fails its items (``error`` in
``results.json``), not the run.
"""

from __future__ import annotations

import dataclasses
import platform
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .config import ExperimentConfig, build_params, to_yaml
from .errors import XaiError
from .figures import attribution_figure, grid_figure
from .inputs import InputImage, load_image, resolve_inputs
from .io import write_json, write_npy, write_png, write_text
from .metrics import Metric, build_metrics, score_items, write_metrics_table
from .models import ModelHandle, load_model
from .plugins import get_registries, loaded_plugins
from .report import build_report
from .targets import resolve_targets
from .techniques import Attributor, Synthesizer, Technique

__all__ = ["run_experiment", "RunResult", "environment", "resolve_device"]


@dataclass
class RunResult:
    """What a run produced: the output folder and the ``results.json`` content."""

    output_dir: Path
    results: dict[str, Any]

    @property
    def items(self) -> list[dict[str, Any]]:
        return self.results["items"]

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [item for item in self.items if item.get("error")]


@dataclass
class _Image:
    source: InputImage
    pixels: torch.Tensor | None = None  # [3, H, W] in [0, 1]
    inputs: torch.Tensor | None = None  # normalized [3, H, W]
    error: str | None = None
    prediction: dict[str, Any] = field(default_factory=dict)
    target: int | None = None


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise XaiError(f"device {device!r} was asked for but CUDA is not available; use device=cpu")
    return torch.device(device)


def environment(device: torch.device | str = "cpu") -> dict[str, Any]:
    """Versions and hardware, for ``results.json``."""
    import timm
    import torchvision

    env = {
        "xai_core": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
        "numpy": np.__version__,
        "device": str(device),
        "plugins": {p.name: p.distribution or "local" for p in loaded_plugins()},
    }
    if str(device).startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return env


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _load_images(sources: list[InputImage], handle: ModelHandle) -> list[_Image]:
    images = []
    for source in sources:
        item = _Image(source)
        try:
            item.pixels = handle.preprocessing.to_pixels(load_image(source.path))
            item.inputs = handle.normalize(item.pixels)
        except XaiError as exc:
            item.error = str(exc)
        images.append(item)
    return images


def _predict(images: list[_Image], handle: ModelHandle, device: torch.device, batch: int) -> None:
    ok = [im for im in images if im.error is None]
    for start in range(0, len(ok), batch):
        chunk = ok[start : start + batch]
        x = torch.stack([im.inputs for im in chunk]).to(device)
        with torch.no_grad():
            probs = handle.module(x).softmax(dim=1).cpu()
        for im, p in zip(chunk, probs):
            top = int(p.argmax())
            im.prediction = {
                "predicted": top,
                "predicted_label": handle.label(top),
                "predicted_probability": float(p[top]),
                "probabilities": p,
            }


def _assign_targets(images: list[_Image], target: Any, handle: ModelHandle) -> None:
    if isinstance(target, list) and len(target) != len(images):
        raise XaiError(
            f"config 'target' lists {len(target)} targets for {len(images)} inputs; give one per "
            "input or a single target"
        )
    for i, im in enumerate(images):
        wanted = target[i] if isinstance(target, list) else target
        if im.error is not None:
            continue
        probabilities = im.prediction["probabilities"][None]
        im.target = int(resolve_targets(wanted, 1, handle, lambda p=probabilities: p)[0])


def _to_image(pixels: torch.Tensor) -> np.ndarray:
    return pixels.permute(1, 2, 0).clamp(0, 1).numpy()


class _Run:
    def __init__(self, config: ExperimentConfig, progress: Callable[[str], None] | None):
        self.config = config
        self.out = Path(config.output_dir)
        self.say = progress or (lambda _msg: None)
        self.items: list[dict[str, Any]] = []
        self.maps: dict[tuple[int, int], np.ndarray] = {}
        self.metrics: list[tuple[str, Metric]] = []

    def rel(self, path: Path) -> str:
        return str(path.relative_to(self.out))

    def base_item(self, im: _Image, label: str, technique: Technique, handle: ModelHandle) -> dict:
        item: dict[str, Any] = {
            "image": im.source.source,
            "key": im.source.key,
            "model": handle.name,
            "method": technique.name,
            "kind": technique.kind,
            "label": label,
            "target": im.target,
            "target_label": handle.label(im.target) if im.target is not None else None,
        }
        if im.prediction:
            probs = im.prediction["probabilities"]
            item.update(
                {k: v for k, v in im.prediction.items() if k != "probabilities"},
                target_probability=float(probs[im.target]) if im.target is not None else None,
            )
        item.update(seconds=None, files={}, error=im.error)
        return item

    def run_attributor(
        self, column: int, label: str, technique: Attributor, images: list[_Image], handle, device
    ) -> None:
        ok = [(i, im) for i, im in enumerate(images) if im.error is None]
        batch = self.config.batch_size
        for start in range(0, len(ok), batch):
            chunk = ok[start : start + batch]
            results = self._attribute_chunk(technique, chunk, handle, device)
            scores = score_items(
                self.metrics,
                handle,
                [im.inputs for _, im in chunk],
                [result for result, _, _ in results],
                [im.target for _, im in chunk],
                attributor=technique,
                seed=self.config.seed,
            )
            for (row, im), (result, seconds, error), scored in zip(chunk, results, scores):
                item = self.base_item(im, label, technique, handle)
                item["seconds"] = seconds
                if error is not None:
                    item["error"] = error
                else:
                    saliency = result.numpy().astype(np.float32)
                    map_path = self.out / "maps" / im.source.key / f"{label}.npy"
                    write_npy(map_path, saliency)
                    item["files"]["map"] = self.rel(map_path)
                    item["files"]["input"] = self.rel(self.input_path(im))
                    if self.config.figures:
                        fig_path = self.out / "figures" / im.source.key / f"{label}.png"
                        title = f"{label}: {item['target_label']} (target {im.target})"
                        attribution_figure(fig_path, _to_image(im.pixels), saliency, title)
                        item["files"]["figure"] = self.rel(fig_path)
                    self.maps[(row, column)] = saliency
                item.update(scored)
                self.items.append(item)
        for im in images:
            if im.error is not None:
                self.items.append(self.base_item(im, label, technique, handle))

    def _attribute_chunk(self, technique: Attributor, chunk, handle, device):
        """Maps for a chunk in one batch; if the batch fails, item by item to isolate failures."""
        x = torch.stack([im.inputs for _, im in chunk]).to(device)
        targets = [im.target for _, im in chunk]
        start = time.perf_counter()
        try:
            attribution = technique.attribute(handle, x, targets)
            seconds = (time.perf_counter() - start) / len(chunk)
            return [(m, seconds, None) for m in attribution.maps]
        except Exception as exc:
            if len(chunk) == 1:
                return [(None, time.perf_counter() - start, f"{type(exc).__name__}: {exc}")]
        return [self._attribute_chunk(technique, [one], handle, device)[0] for one in chunk]

    def run_synthesizer(
        self, label: str, technique: Synthesizer, images: list[_Image], handle, device
    ) -> None:
        """Synthesized images, their records and figures.

        A technique whose ``Params`` has ``classes`` makes one image per listed class (for every
        photo when it starts from photos); otherwise one per photo for the photo's target. One
        that does not start from photos (``uses_images = False``, e.g. class visualization) runs
        once per run, not once per photo.
        """
        classes = [str(c) for c in getattr(technique.params, "classes", None) or []]
        if not getattr(technique, "uses_images", True):
            self._synthesize_classes(label, technique, classes, handle, device)
            return
        for im in images:
            if im.error is not None:
                self.items.append(self.base_item(im, label, technique, handle))
                continue
            targets: list[Any] = classes or [im.target]
            start = time.perf_counter()
            try:
                starts = im.pixels[None].expand(len(targets), -1, -1, -1).to(device)
                result = technique.synthesize(handle, targets, images=starts)
            except Exception as exc:
                item = self.base_item(im, label, technique, handle)
                item.update(
                    error=f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - start
                )
                self.items.append(item)
                continue
            outputs = zip(result.images, result.targets.tolist(), result.records)
            for pixels, target, record in outputs:
                name = f"{label}-{target}" if classes else label
                item = self.base_item(im, label, technique, handle)
                item.update(target=target, target_label=handle.label(target), record=record)
                item["target_probability"] = float(im.prediction["probabilities"][target])
                item["seconds"] = record.get("seconds", result.metadata["seconds"] / len(targets))
                png = self.out / "images" / im.source.key / f"{name}.png"
                self._write_synthesized(item, png, pixels)
                if self.config.figures:
                    figure = self.out / "figures" / im.source.key / f"{name}.png"
                    self._difference_figure(
                        figure, im.pixels, pixels, handle, device, record, label
                    )
                    item["files"]["figure"] = self.rel(figure)
                self.items.append(item)

    def _write_synthesized(self, item: dict[str, Any], png: Path, pixels: torch.Tensor) -> None:
        """The image as an 8-bit PNG and as float32 ``.npy``; both paths go into ``item``."""
        write_png(png, pixels)
        npy = png.with_suffix(".npy")
        write_npy(npy, pixels.numpy().astype(np.float32))
        item["files"].update(image=self.rel(png), array=self.rel(npy))

    def _difference_figure(
        self, path: Path, original, result, handle, device, record: dict[str, Any], label: str
    ) -> None:
        """Original | result | difference | difference x10, each titled with the model's guess."""
        from .figures import difference_panels, fooling_figure

        panels = difference_panels(_to_image(original), _to_image(result))
        batch = torch.from_numpy(np.stack(panels)).permute(0, 3, 1, 2).to(device)
        with torch.no_grad():
            probs = handle.module(handle.normalize(batch)).softmax(dim=1).cpu()
        top_p, top = probs.max(dim=1)
        titles = [f"{handle.label(int(c))} ({float(p):.2f})" for c, p in zip(top, top_p)]
        outcome = "success" if record.get("success") else "failed"
        title = (
            f"{label}: target {record.get('target_label')} ({outcome}, "
            f"{record.get('iterations')} it., L-inf {255 * record.get('linf', 0):.1f}/255)"
        )
        fooling_figure(path, panels, titles, title)

    def _synthesize_classes(
        self, label: str, technique: Synthesizer, classes: list[str], handle, device
    ) -> None:
        """One image per class, once per run: ``images/<label>/``, ``figures/<label>.png``."""
        from .figures import class_visualization_figure

        target = self.config.target
        base = {"image": None, "key": None, "model": handle.name, "method": technique.name,
                "kind": technique.kind, "label": label, "seconds": None, "files": {}, "error": None}
        if not classes:
            if isinstance(target, list) or str(target).strip().lower() == "predicted":
                self.items.append({**base, "target": None, "error": (
                    f"{technique.name} starts from noise, so it needs classes: set "
                    f"params.classes (e.g. [tabby, goldfish]) or a single config target"
                )})
                return
            classes = [str(target)]
        start = time.perf_counter()
        try:
            result = technique.synthesize(handle, classes)
        except Exception as exc:
            self.items.append({**base, "target": classes, "seconds": time.perf_counter() - start,
                               "error": f"{type(exc).__name__}: {exc}"})
            return
        shown = []
        outputs = zip(result.images, result.targets.tolist(), result.records)
        for pixels, target_index, record in outputs:
            name = handle.label(target_index)
            item = {**base, "files": {}, "target": target_index, "target_label": name,
                    "record": record, "seconds": record.get("seconds")}
            slug = "".join(ch if ch.isalnum() else "_" for ch in name).strip("_")
            png = self.out / "images" / label / f"{target_index}_{slug}.png"
            self._write_synthesized(item, png, pixels)
            shown.append((f"{name} ({record['target_probability']:.2f})", _to_image(pixels)))
            self.items.append(item)
        if self.config.figures:
            snaps = result.metadata.get("snapshots")
            frames = None
            if snaps is not None:
                kept = snaps["images"].permute(0, 1, 3, 4, 2).clamp(0, 1).numpy()
                frames = (snaps["steps"], kept)
            figure = self.out / "figures" / f"{label}.png"
            class_visualization_figure(figure, shown, frames)
            for item in self.items[-len(shown):]:
                item["files"]["figure"] = self.rel(figure)

    def input_path(self, im: _Image) -> Path:
        return self.out / "inputs" / f"{im.source.key}.npy"


def run_experiment(
    config: ExperimentConfig, progress: Callable[[str], None] | None = None
) -> RunResult:
    """Run ``config`` (already validated by :func:`xai_core.config.load_config`)."""
    run = _Run(config, progress)
    techniques = get_registries().techniques
    methods: list[tuple[str, Technique]] = []
    for i, method in enumerate(config.methods):
        cls = techniques.get(method.name)
        params = build_params(cls.Params, method.params, where=f"methods[{i}].params")
        methods.append((method.label or method.name, cls(params)))
    run.metrics = build_metrics(config.metrics)
    if not config.inputs:
        raise XaiError("the config lists no inputs; set `inputs` (files, folders, globs, sample:NAME)")
    sources = resolve_inputs(list(config.inputs))
    device = resolve_device(config.device)
    _seed(config.seed)
    run.say(f"loading model {config.model.name}")
    handle = load_model(
        config.model.name,
        pretrained=config.model.pretrained,
        checkpoint=config.model.checkpoint,
        device=device,
        **config.model.options,
    )
    images = _load_images(sources, handle)
    _predict(images, handle, device, config.batch_size)
    _assign_targets(images, config.target, handle)
    run.out.mkdir(parents=True, exist_ok=True)
    write_text(run.out / "config.yaml", to_yaml(config))
    for im in images:
        if im.error is None:
            write_npy(run.input_path(im), im.inputs.numpy().astype(np.float32))
            write_png(run.input_path(im).with_suffix(".png"), im.pixels)
    started = time.time()
    attribution_columns: list[str] = []
    for label, technique in methods:
        run.say(f"{label}: {len([im for im in images if im.error is None])} image(s)")
        _seed(config.seed)
        if isinstance(technique, Attributor):
            attribution_columns.append(label)
            run.run_attributor(
                len(attribution_columns) - 1, label, technique, images, handle, device
            )
        else:
            run.run_synthesizer(label, technique, images, handle, device)
        _write_results(run, handle, device, started, final=False)
    if config.figures and attribution_columns:
        rows = [
            (
                f"{im.source.key}: {im.prediction.get('predicted_label', '?')} "
                f"({im.prediction.get('predicted_probability', 0):.2f})",
                _to_image(im.pixels),
            )
            for im in images
            if im.error is None
        ]
        ok_rows = [i for i, im in enumerate(images) if im.error is None]
        remap = {old: new for new, old in enumerate(ok_rows)}
        cells = {(remap[r], c): m for (r, c), m in run.maps.items()}
        if rows:
            grid_figure(run.out / "figures" / "grid.png", rows, attribution_columns, cells)
    results = _write_results(run, handle, device, started, final=True)
    build_report(run.out)
    return RunResult(run.out, results)


def _write_results(run: _Run, handle, device, started: float, final: bool) -> dict[str, Any]:
    failed = sum(1 for item in run.items if item.get("error"))
    results = {
        "environment": environment(device),
        "model": {"name": handle.name, **handle.info},
        "config": dataclasses.asdict(run.config),
        "complete": final,
        "seconds": time.time() - started,
        "summary": {"items": len(run.items), "failed": failed},
        "items": run.items,
    }
    if final and (run.out / "figures" / "grid.png").is_file():
        results["grid"] = "figures/grid.png"
    if final and run.metrics:
        results["metrics"] = write_metrics_table(run.out, run.items, run.metrics)
        results["metrics_table"] = "metrics.md"
    write_json(run.out / "results.json", results)
    return results
