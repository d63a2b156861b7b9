"""Running an experiment: load the model and inputs, apply every method, write every output.

Output layout under ``output_dir``::

    config.yaml                  the resolved config
    results.json                 environment, summary, and one item per (image, method)
    report.html                  the run as a static web page (``xai report`` rebuilds it)
    inputs/<image>.npy           the exact normalized input tensor each map was computed on
    inputs/<image>.png           the same input in pixel space (resized and cropped)
    maps/<image>/<method>.npy    attribution maps, float32 [H, W] at input resolution
    images/<image>/<method>.png  synthesized images (and .npy, float32 [3, H, W] in [0, 1])
    figures/<image>/<method>.png image | map | overlay
    figures/grid.png             methods side by side for the first images
    records/<image>/<method>.json  what finished (the resume ledger, see xai_core.runner.ledger)

Runs scale to whole datasets: images are read and preprocessed in DataLoader workers and
explained batch by batch; every file is written atomically and every finished item recorded, so
running the same config again skips what is done and redoes what is missing or corrupt
(``force`` redoes everything). One unreadable image or one failing technique call fails its
items (``error`` in ``results.json``), never the run. Under ``torchrun`` the inputs are sharded
over ranks and rank 0 merges the results (:mod:`xai_core.runner.distributed`).
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

from xai_core.contracts.metric import Metric
from xai_core.contracts.model import ModelHandle
from xai_core.contracts.targets import resolve_targets
from xai_core.contracts.technique import Attributor, Synthesizer, Technique
from xai_core.errors import TargetError, XaiError
from xai_core.io import write_json, write_npy, write_png, write_text
from xai_core.models.loading import load_model
from xai_core.plugins.factory import build_entries, build_metrics
from xai_core.plugins.manager import loaded_plugins
from xai_core.report.figures import attribution_figure, grid_figure
from xai_core.report.html import build_report
from xai_core.report.tables import write_metrics_table
from xai_core.runner.config import ExperimentConfig, to_yaml
from xai_core.runner.distributed import DistContext
from xai_core.runner.inputs import ImageDataset, InputImage, collate_items, resolve_inputs
from xai_core.runner.ledger import Ledger, fingerprint, remove_stale_temporaries
from xai_core.runner.scoring import score_items
from xai_core.version import __version__

__all__ = ["run_experiment", "RunResult", "environment", "resolve_device", "GRID_ROWS"]

#: The side-by-side grid shows at most this many images (the report shows them all).
GRID_ROWS = 12
#: Record key of synthesizers that run once per run rather than once per image.
RUN_KEY = "_run"


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
    index: int = 0
    pixels: torch.Tensor | None = None  # [3, H, W] in [0, 1]
    inputs: torch.Tensor | None = None  # normalized [3, H, W]
    error: str | None = None
    prediction: dict[str, Any] = field(default_factory=dict)
    target: int | None = None
    method_metadata: dict[str, Any] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)  # labels of the methods still to do


def _item_metadata(metadata: dict[str, Any], index: int, count: int) -> dict[str, Any]:
    """What a technique reported (layer used, completeness gap, ...) as JSON for one item.

    Per-item values (tensors or lists with one entry per item) are cut to this item's entry;
    parameters are already in the config, timings in ``seconds``, and large arrays are left out.
    """
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if key in ("params", "seconds"):
            continue
        if isinstance(value, torch.Tensor):
            if value.ndim >= 1 and value.shape[0] == count:
                value = value[index]
            if value.numel() > 16:
                continue
            value = value.tolist()
        elif isinstance(value, (list, tuple)) and len(value) == count:
            value = value[index]
        if isinstance(value, (str, int, float, bool, type(None))) or (
            isinstance(value, (list, dict)) and len(str(value)) < 2000
        ):
            out[key] = value
    return out


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``auto`` is this rank's GPU when there is one, else the CPU."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
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


def _predict(images: list[_Image], handle: ModelHandle, device: torch.device) -> None:
    ok = [im for im in images if im.error is None]
    if not ok:
        return
    x = torch.stack([im.inputs for im in ok]).to(device)
    with torch.no_grad():
        probs = handle.module(x).softmax(dim=1).cpu()
    for im, p in zip(ok, probs):
        top = int(p.argmax())
        im.prediction = {
            "predicted": top,
            "predicted_label": handle.label(top),
            "predicted_probability": float(p[top]),
            "probabilities": p,
        }


def _wanted_target(target: Any, im: _Image, count: int) -> Any:
    if isinstance(target, list):
        if len(target) != count:
            raise XaiError(
                f"config 'target' lists {len(target)} targets for {count} inputs; give one per "
                "input or a single target"
            )
        return target[im.index]
    if isinstance(target, str) and target.strip().lower() == "label":
        if im.source.label is None:
            raise TargetError(
                f"target 'label' needs ImageFolder-style inputs (root/<class>/<image>); "
                f"{im.source.source!r} is not in a class folder"
            )
        return _imagenet_wnid(im.source.label)
    return target


def _imagenet_wnid(label: str) -> str:
    """ImageNet folders are often named by WordNet id (n02123159); map those to class names."""
    if len(label) == 9 and label[0] == "n" and label[1:].isdigit():
        try:
            from timm.data import ImageNetInfo

            info = ImageNetInfo()
            return str(info.label_names().index(label))
        except (ImportError, ValueError):
            return label
    return label


def _assign_targets(images: list[_Image], target: Any, handle: ModelHandle, count: int) -> None:
    for im in images:
        if im.error is not None:
            continue
        wanted = _wanted_target(target, im, count)
        probabilities = im.prediction["probabilities"][None]
        try:
            im.target = int(resolve_targets(wanted, 1, handle, lambda p=probabilities: p)[0])
        except TargetError as exc:
            if isinstance(target, str) and target.strip().lower() == "label":
                im.error = f"folder label {im.source.label!r}: {exc}"
            else:
                raise


def _to_image(pixels: torch.Tensor) -> np.ndarray:
    return pixels.permute(1, 2, 0).clamp(0, 1).numpy()


def _safe_label(label: str) -> str:
    """A method label as a file name: no separators, no parent references."""
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._") or "method"


class _Run:
    def __init__(self, config: ExperimentConfig, progress: Callable[[str], None] | None):
        self.config = config
        self.out = Path(config.output_dir)
        self.say = progress or (lambda _msg: None)
        self.items: list[dict[str, Any]] = []
        self.metrics: list[tuple[str, Metric]] = []
        self.rank = 0

    def rel(self, path: Path) -> str:
        return str(path.relative_to(self.out))

    def base_item(self, im: _Image, label: str, technique: Technique, handle: ModelHandle) -> dict:
        item: dict[str, Any] = {
            "image": im.source.source,
            "key": im.source.key,
            "index": im.index,
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
        item.update(seconds=None, files={}, error=im.error, rank=self.rank)
        return item

    def run_attributor(
        self, label: str, technique: Attributor, images: list[_Image], handle, device
    ) -> None:
        ok = [im for im in images if im.error is None]
        batch = self.config.batch_size
        for start in range(0, len(ok), batch):
            chunk = ok[start : start + batch]
            results = self._attribute_chunk(technique, chunk, handle, device)
            scores = score_items(
                self.metrics,
                handle,
                [im.inputs for im in chunk],
                [result for result, _, _ in results],
                [im.target for im in chunk],
                attributor=technique,
                seed=self.config.seed,
            )
            for im, (result, seconds, error), scored in zip(chunk, results, scores):
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
                item.update(scored)
                if error is None and im.method_metadata:
                    item["metadata"] = im.method_metadata
                self.items.append(item)
        for im in images:
            if im.error is not None:
                self.items.append(self.base_item(im, label, technique, handle))

    def _attribute_chunk(self, technique: Attributor, chunk, handle, device):
        """Maps for a chunk in one batch; if the batch fails, item by item to isolate failures."""
        x = torch.stack([im.inputs for im in chunk]).to(device)
        targets = [im.target for im in chunk]
        start = time.perf_counter()
        try:
            attribution = technique.attribute(handle, x, targets)
            seconds = (time.perf_counter() - start) / len(chunk)
            for i, im in enumerate(chunk):
                im.method_metadata = _item_metadata(attribution.metadata, i, len(chunk))
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
        from xai_core.report.figures import difference_panels, fooling_figure

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
        from xai_core.report.figures import class_visualization_figure

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


def _loader(sources: list[InputImage], handle: ModelHandle, config: ExperimentConfig):
    from torch.utils.data import DataLoader

    workers = max(0, config.workers)
    return DataLoader(
        ImageDataset(sources, handle.preprocessing),
        batch_size=config.batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate_items,
        worker_init_fn=_quiet_worker if workers else None,
        persistent_workers=False,
        prefetch_factor=2 if workers else None,
    )


def _quiet_worker(_worker_id: int) -> None:
    # Workers only decode and resize images; one thread each leaves the cores to the model.
    torch.set_num_threads(1)


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc="explaining", disable=None if enabled else True,
                dynamic_ncols=True)


def run_experiment(
    config: ExperimentConfig,
    progress: Callable[[str], None] | None = None,
    *,
    force: bool = False,
) -> RunResult:
    """Run ``config`` (validated by :func:`xai_core.runner.config.load_config`).

    :param force: recompute every item even if a previous run recorded it as done.
    """
    run = _Run(config, progress)
    methods = [
        (_safe_label(label), technique)
        for label, technique in build_entries(config.methods, "methods")
    ]
    run.metrics = build_metrics(config.metrics)
    if not config.inputs:
        raise XaiError("the config lists no inputs; set `inputs` (files, folders, globs, sample:NAME)")
    sources = resolve_inputs(list(config.inputs))
    dist = DistContext.from_env(config.device)
    run.rank = dist.rank
    try:
        return _run(run, config, methods, sources, dist, force)
    finally:
        dist.close()


def _settings(config: ExperimentConfig, label: str, technique: Technique, target: Any) -> str:
    return fingerprint(
        dataclasses.asdict(config.model), technique.name, dataclasses.asdict(technique.params),
        label, target, config.seed, config.figures,
        [dataclasses.asdict(m) for m in config.metrics],
    )


def _run(run: _Run, config, methods, sources, dist: DistContext, force: bool) -> RunResult:
    device = resolve_device(config.device, dist.local_rank)
    ledger = Ledger(run.out)
    if dist.is_main:
        run.out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(run.out)
        if force:
            ledger.clear()
        write_text(run.out / "config.yaml", to_yaml(config))
    dist.barrier()
    _seed(config.seed)
    run.say(f"loading model {config.model.name}")
    handle = load_model(
        config.model.name,
        pretrained=config.model.pretrained,
        checkpoint=config.model.checkpoint,
        device=device,
        **config.model.options,
    )
    if config.channels_last:
        handle.module.to(memory_format=torch.channels_last)
    per_image = [(label, t) for label, t in methods if getattr(t, "uses_images", True)]
    per_run = [(label, t) for label, t in methods if not getattr(t, "uses_images", True)]
    indexed = list(enumerate(sources))
    mine = dist.shard(indexed)

    def settings(label: str, technique: Technique, index: int) -> str:
        target = config.target[index] if isinstance(config.target, list) else config.target
        return _settings(config, label, technique, target)

    # Checked once here (it reads every recorded file back); batches only do what is missing.
    todo: list[tuple[int, InputImage, set[str]]] = []
    skipped = 0
    for index, source in mine:
        missing = {
            label for label, t in per_image
            if ledger.done(source.key, label, settings(label, t, index)) is None
        }
        skipped += len(per_image) - len(missing)
        if missing:
            todo.append((index, source, missing))
    if skipped:
        run.say(f"skipped {skipped} item(s) already done (use --force to redo them)")
    started = time.time()
    bar = _progress_bar(len(todo), enabled=dist.is_main)
    loader = _loader([source for _, source, _ in todo], handle, config)
    for batch in loader:
        images = []
        for local, pixels, error in batch:
            index, source, missing = todo[local]
            im = _Image(source, index=index, error=error, missing=missing)
            if pixels is not None:
                im.pixels = pixels
                im.inputs = handle.normalize(pixels)
            images.append(im)
        _explain_batch(
            run, config, per_image, images, handle, device, ledger, settings, len(sources)
        )
        bar.update(len(images))
    bar.close()
    for label, technique in per_run:
        if dist.is_main:
            key_settings = _settings(config, label, technique, config.target)
            if force or ledger.done(RUN_KEY, label, key_settings) is None:
                before = len(run.items)
                _seed(config.seed)
                run._synthesize_classes(label, technique, list(
                    str(c) for c in getattr(technique.params, "classes", None) or []
                ), handle, device)
                ledger.write(RUN_KEY, label, run.items[before:], key_settings)
            else:
                skipped += 1
    failed_here = sum(1 for item in run.items if item.get("error"))
    skipped = dist.sum(skipped)
    dist.barrier()
    if not dist.is_main:
        return RunResult(run.out, {"items": run.items, "summary": {"failed": failed_here}})
    items = _merge(ledger, sources, methods)
    results = _write_results(run, items, handle, device, started, skipped)
    if config.figures:
        _grid(run.out, items, [label for label, t in methods if isinstance(t, Attributor)])
    build_report(run.out)
    return RunResult(run.out, results)


def _explain_batch(
    run: _Run, config, per_image, images, handle, device, ledger, settings, count: int
) -> None:
    """Predict, pick targets, write inputs, then apply every method still to do on these images."""
    _predict(images, handle, device)
    _assign_targets(images, config.target, handle, count)
    for im in images:
        if im.error is None:
            write_npy(run.input_path(im), im.inputs.numpy().astype(np.float32))
            write_png(run.input_path(im).with_suffix(".png"), im.pixels)
    for label, technique in per_image:
        pending = [im for im in images if label in im.missing]
        if not pending:
            continue
        _seed(config.seed)
        before = len(run.items)
        if isinstance(technique, Attributor):
            run.run_attributor(label, technique, pending, handle, device)
        else:
            run.run_synthesizer(label, technique, pending, handle, device)
        by_key: dict[str, list[dict[str, Any]]] = {}
        for item in run.items[before:]:
            by_key.setdefault(item["key"], []).append(item)
        for im in pending:
            ledger.write(
                im.source.key, label, by_key.get(im.source.key, []),
                settings(label, technique, im.index),
            )


def _merge(ledger: Ledger, sources: list[InputImage], methods) -> list[dict[str, Any]]:
    """Every rank's recorded items for this run's inputs and methods, in input-then-method order."""
    items: list[dict[str, Any]] = []
    for source in sources:
        for label, technique in methods:
            if getattr(technique, "uses_images", True):
                items.extend(ledger.items(source.key, label))
    for label, technique in methods:
        if not getattr(technique, "uses_images", True):
            items.extend(ledger.items(RUN_KEY, label))
    return items


def _grid(out: Path, items: list[dict[str, Any]], labels: list[str]) -> None:
    """The side-by-side figure for the first :data:`GRID_ROWS` images, from the files on disk."""
    if not labels:
        return
    keys: list[str] = []
    first: dict[str, dict[str, Any]] = {}
    cells: dict[tuple[int, int], np.ndarray] = {}
    for item in items:
        key = item.get("key")
        if key is None or item.get("kind") != "attributor":
            continue
        if key not in first:
            if len(keys) >= GRID_ROWS or not (out / "inputs" / f"{key}.png").is_file():
                continue
            keys.append(key)
            first[key] = item
        if "map" in item.get("files", {}) and item["label"] in labels:
            cell = (keys.index(key), labels.index(item["label"]))
            cells[cell] = np.load(out / item["files"]["map"])
    if not keys:
        return
    from PIL import Image

    rows = []
    for key in keys:
        item = first[key]
        with Image.open(out / "inputs" / f"{key}.png") as photo:
            pixels = np.asarray(photo.convert("RGB"), dtype=np.float32) / 255
        title = f"{key}: {item.get('predicted_label', '?')}"
        rows.append((f"{title} ({item.get('predicted_probability') or 0:.2f})", pixels))
    grid_figure(out / "figures" / "grid.png", rows, labels, cells)


def _write_results(
    run: _Run, items, handle, device, started: float, skipped: int
) -> dict[str, Any]:
    failed = sum(1 for item in items if item.get("error"))
    results = {
        "environment": environment(device),
        "model": {"name": handle.name, **handle.info},
        "config": dataclasses.asdict(run.config),
        "complete": True,
        "seconds": time.time() - started,
        "summary": {"items": len(items), "failed": failed, "skipped": skipped},
        "items": items,
    }
    if run.config.figures and any(i.get("kind") == "attributor" for i in items):
        results["grid"] = "figures/grid.png"
    if run.metrics:
        results["metrics"] = write_metrics_table(run.out, items, run.metrics)
        results["metrics_table"] = "metrics.md"
    write_json(run.out / "results.json", results)
    return results
