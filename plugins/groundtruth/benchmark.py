"""The ground-truth benchmark: every selected method, scored by every selected metric, on images
whose decisive pixels are known exactly, beside control maps that know nothing about the model.

``xai benchmark configs/benchmark.yaml`` (or :func:`run_benchmark`) generates the held-out images
of the procedural set (``xai_core_plugins.groundtruth``), checks the model on them (accuracy, and
accuracy with the object left out: the leakage check), explains each image's true class with each
method and each control, scores the maps, and writes under ``output_dir``::

    benchmark.md     the table: mean ± standard error per method (rows) and metric (columns)
    benchmark.json   the same table, dataset facts (accuracy, leakage), mean cascade curves
    items.json       every (image, method) score and per-item details (curves, cascades)
    benchmark.png    one bar chart per metric, controls in grey
    cascade.png      the cascading randomisation curves (if that metric is selected)
    examples.png     the first images with every method's map

Controls (Adebayo et al. 2018 and the localisation literature use the same): a random map, a
centred Gaussian (the centre bias of photos, none here since objects are placed uniformly) and an
edge detector (model-independent, yet visually plausible).

What does not live here: the dataset and model (``plugins/groundtruth.py``), the metrics
(``plugins/metrics.py``), the metric contract (:mod:`xai_core.contracts.metric`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from xai_core.contracts.attributor import Attributor
from xai_core.contracts.metric import Metric
from xai_core.contracts.model import ModelHandle
from xai_core.errors import ConfigError, XaiError
from xai_core.io import save_figure, write_json, write_text
from xai_core.models.loading import load_model
from xai_core.plugins.factory import build_entries, build_metrics, technique_class
from xai_core.report.figures import plt
from xai_core.report.render import grid_figure
from xai_core.report.tables import metrics_table, table_markdown
from xai_core.runner.config import ExperimentConfig, model_run_config, to_yaml
from xai_core.runner.environment import environment, resolve_device, seed_everything
from xai_core.runner.scoring import score_maps

from .controls import CONTROLS, CentreGaussian, EdgeDetector, RandomMap
from .data import CLASS_NAMES, generate

__all__ = [
    "BenchmarkResult",
    "run_benchmark",
    "RandomMap",
    "CentreGaussian",
    "EdgeDetector",
    "CONTROLS",
    "model_accuracy",
]

SANITY_METRIC = "cascading_randomization"


@dataclass
class BenchmarkResult:
    """What a benchmark run produced."""

    output_dir: Path
    table: dict[str, Any]
    markdown: str
    dataset: dict[str, Any]
    figures: list[str] = field(default_factory=list)


def model_accuracy(handle: ModelHandle, pixels: Tensor, labels: Tensor, batch: int) -> float:
    """Top-1 accuracy on pixel images ``[N, 3, H, W]`` in ``[0, 1]``, in batches."""
    device = handle.device
    correct = 0
    with torch.no_grad():
        for start in range(0, len(pixels), batch):
            x = handle.normalize(pixels[start : start + batch].to(device))
            predicted = handle.module(x).argmax(1).cpu()
            correct += int((predicted == labels[start : start + batch]).sum())
    return correct / len(pixels)


def _rows(config: ExperimentConfig) -> list[tuple[str, Attributor, bool]]:
    """``(label, attributor, is_control)`` for each method, then each control."""
    rows: list[tuple[str, Attributor, bool]] = []
    for i, method in enumerate(config.methods):
        if not issubclass(technique_class(method.name), Attributor):
            raise ConfigError(
                f"methods[{i}]: {method.name!r} is not an attributor; the benchmark scores "
                "attribution maps, so it takes attributors only (`xai list attributors`)"
            )
    rows += [(label, a, False) for label, a in build_entries(config.methods, "methods")]
    for control in config.benchmark.controls:
        cls = CONTROLS[control]
        rows.append((cls.name, cls(), True))
    return rows


def run_benchmark(
    config: ExperimentConfig, progress: Callable[[str], None] | None = None
) -> BenchmarkResult:
    """Run the ground-truth benchmark described by ``config`` (see the module docstring).

    With several ``models`` (for instance ``groundtruth_cnn`` beside itself with
    ``pretrained: false``, a model-randomisation control), each model is benchmarked into
    ``<output_dir>/<model label>/`` and ``benchmark.md``/``benchmark.json`` at the top hold
    every model's table (``table`` is then ``{"models": {label: table}}``).
    """
    if not config.compares_models:
        return _run_one(config, progress)
    out = Path(config.output_dir)
    results = {}
    for model in config.model_list:
        (progress or (lambda _message: None))(f"model {model.run_label}")
        results[model.run_label] = _run_one(model_run_config(config, model), progress)
    markdown = "\n".join(
        f"## Model `{label}`\n\n{result.markdown}" for label, result in results.items()
    )
    figures = [f"{label}/{f}" for label, result in results.items() for f in result.figures]
    tables = {"models": {label: result.table for label, result in results.items()}}
    write_json(out / "benchmark.json", {
        **tables,
        "datasets": {label: result.dataset for label, result in results.items()},
        "figures": figures,
    })
    write_text(out / "benchmark.md", markdown)
    first = next(iter(results.values()))
    return BenchmarkResult(out, tables, markdown, first.dataset, figures)


def _run_one(
    config: ExperimentConfig, progress: Callable[[str], None] | None = None
) -> BenchmarkResult:
    say = progress or (lambda _message: None)
    bench = config.benchmark
    if not config.metrics:
        raise ConfigError("the benchmark config lists no metrics; set `metrics` (xai list metrics)")
    rows = _rows(config)
    metrics = build_metrics(config.metrics)
    device = resolve_device(config.device)
    seed_everything(config.seed)
    say(f"loading model {config.model.name}")
    # A model from code (`factory`, `hub/...`) gets the keys that describe it too.
    handle = load_model(config.model.name, device=device, **config.model.loader_options())
    if handle.num_classes != len(CLASS_NAMES):
        raise XaiError(
            f"model {handle.name!r} has {handle.num_classes} classes; the ground-truth set has "
            f"{len(CLASS_NAMES)} ({', '.join(CLASS_NAMES)}): use groundtruth_cnn or a model "
            "trained on the set"
        )
    say(f"generating {bench.images} held-out images (seed {bench.dataset_seed})")
    data = generate(bench.images, seed=bench.dataset_seed)
    batch = config.batch_size
    dataset = {
        "images": len(data),
        "seed": bench.dataset_seed,
        "classes": list(CLASS_NAMES),
        "accuracy": model_accuracy(handle, data.images, data.labels, batch),
        "accuracy_object_removed": model_accuracy(handle, data.backgrounds, data.labels, batch),
        "chance": 1 / len(CLASS_NAMES),
        "mean_object_fraction": float(data.masks.float().mean()),
    }
    say(
        f"accuracy {dataset['accuracy']:.3f}; with the object removed "
        f"{dataset['accuracy_object_removed']:.3f} (chance {dataset['chance']:.2f})"
    )
    inputs = handle.normalize(data.images)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "config.yaml", to_yaml(config))
    started = time.time()
    items: list[dict[str, Any]] = []
    example_maps: dict[str, Tensor] = {}
    cascade_layers: list[str] = []
    for label, technique, is_control in rows:
        say(f"{label}: {len(data)} image(s), {len(metrics)} metric(s)")
        seed_everything(config.seed)
        row_items, maps, layers = _score_row(
            label, technique, is_control, handle, inputs, data, metrics, bench.sanity_images,
            batch, config.seed,
        )
        items.extend(row_items)
        example_maps[label] = maps[:4]
        cascade_layers = layers or cascade_layers
    directions = {label: metric.higher_is_better for label, metric in metrics}
    table = metrics_table(items, directions)
    controls = [label for label, _, is_control in rows if is_control]
    markdown = _markdown(table, dataset, handle, controls)
    cascade = _cascade_means(items, cascade_layers)
    figures = _figures(out, table, controls, cascade, data, example_maps)
    summary = {
        "environment": environment(device),
        "model": {"name": handle.name, **handle.info},
        "config": dataclasses.asdict(config),
        "dataset": dataset,
        "seconds": time.time() - started,
        "controls": controls,
        "table": table,
        "cascade": cascade,
        "figures": figures,
        "items": "items.json",
    }
    write_json(out / "items.json", items)
    write_json(out / "benchmark.json", summary)
    write_text(out / "benchmark.md", markdown)
    return BenchmarkResult(out, table, markdown, dataset, figures)


def _score_row(
    label: str,
    technique: Attributor,
    is_control: bool,
    handle: ModelHandle,
    inputs: Tensor,
    data: Any,
    metrics: Sequence[tuple[str, Metric]],
    sanity_images: int,
    batch: int,
    seed: int,
) -> tuple[list[dict[str, Any]], Tensor, list[str]]:
    """Maps and scores of one method over the whole set, ``batch`` images at a time."""
    device = handle.device
    regular = [(name, m) for name, m in metrics if m.name != SANITY_METRIC]
    sanity = [(name, m) for name, m in metrics if m.name == SANITY_METRIC]
    items: list[dict[str, Any]] = []
    all_maps = []
    layers: list[str] = []
    for start in tqdm(range(0, len(inputs), batch), desc=label, leave=False):
        stop = min(start + batch, len(inputs))
        x = inputs[start:stop].to(device)
        targets = data.labels[start:stop]
        maps = technique.attribute(handle, x, targets.tolist()).maps
        all_maps.append(maps)
        masks = data.masks[start:stop]
        scored = score_maps(regular, handle, x, maps.to(device), targets, masks=masks,
                            attributor=technique, seed=seed)
        # The sanity check re-runs the method once per layer: only the first images pay for it.
        cascade_rows = max(0, min(stop, sanity_images) - start)
        if sanity and cascade_rows:
            scored.update(
                score_maps(sanity, handle, x[:cascade_rows], maps[:cascade_rows].to(device),
                           targets[:cascade_rows], attributor=technique, seed=seed)
            )
        for offset in range(stop - start):
            item: dict[str, Any] = {
                "image": start + offset,
                "label": label,
                "method": technique.name,
                "control": is_control,
                "target": int(targets[offset]),
                "metrics": {},
            }
            for name, result in scored.items():
                if isinstance(result, str):
                    item["metrics"][name] = None
                    item.setdefault("metric_errors", {})[name] = result
                    continue
                if offset >= len(result):
                    continue
                value = float(result.scores[offset])
                item["metrics"][name] = value if math.isfinite(value) else None
                if result.details[offset]:
                    item.setdefault("metric_details", {})[name] = result.details[offset]
                if "cascade" in result.metadata:
                    layers = list(result.metadata["cascade"])
            items.append(item)
    return items, torch.cat(all_maps), layers


def _cascade_means(items: Sequence[dict[str, Any]], layers: list[str]) -> dict[str, Any]:
    """Mean cascade curves per method: ``{"layers": [...], "methods": {label: {kind: [...]}}}``."""
    curves: dict[str, dict[str, list[list[float]]]] = {}
    for item in items:
        details = item.get("metric_details", {})
        for detail in details.values():
            if "spearman_abs" not in detail:
                continue
            per_method = curves.setdefault(item["label"], {})
            for kind in ("spearman_abs", "spearman", "ssim"):
                per_method.setdefault(kind, []).append(detail[kind])
    means = {
        label: {kind: np.mean(np.array(v), axis=0).round(5).tolist() for kind, v in kinds.items()}
        for label, kinds in curves.items()
    }
    return {"layers": layers, "methods": means}


def _markdown(
    table: dict[str, Any], dataset: dict[str, Any], handle: ModelHandle, controls: list[str]
) -> str:
    lines = [
        "# Ground-truth benchmark",
        "",
        f"Model `{handle.name}` on {dataset['images']} held-out images (seed {dataset['seed']}): "
        f"accuracy {dataset['accuracy']:.3f}; with the object left out "
        f"{dataset['accuracy_object_removed']:.3f} (chance {dataset['chance']:.2f}). "
        f"Objects cover {100 * dataset['mean_object_fraction']:.1f}% of the image on average.",
        "",
        "Mean ± standard error over images; ↑ higher is better, ↓ lower is better; the best "
        f"mean per column is bold. Controls: {', '.join(controls) or 'none'}.",
        "",
        table_markdown(table),
    ]
    if SANITY_METRIC in table["metrics"]:
        lines.append(
            f"`{SANITY_METRIC}`: mean Spearman rank correlation of |map| between the original "
            "model and the model randomised layer by layer from the logits down; a method that "
            "passes Adebayo et al.'s check scores low (see cascade.png)."
        )
    return "\n".join(lines) + "\n"


def _figures(
    out: Path,
    table: dict[str, Any],
    controls: list[str],
    cascade: dict[str, Any],
    data: Any,
    example_maps: dict[str, Tensor],
) -> list[str]:
    written = []
    metrics = table["metrics"]
    if metrics:
        cols = min(4, len(metrics))
        n_rows = (len(metrics) + cols - 1) // cols
        fig, axes = plt.subplots(n_rows, cols, figsize=(4.2 * cols, 3.4 * n_rows), squeeze=False)
        labels = [row["method"] for row in table["rows"]]
        for ax, metric in zip(axes.flat, metrics):
            means = [row[metric]["mean"] for row in table["rows"]]
            sems = [row[metric]["sem"] or 0.0 for row in table["rows"]]
            colours = ["0.7" if label in controls else "C0" for label in labels]
            heights = [m if m is not None else 0.0 for m in means]
            ax.barh(range(len(labels)), heights, xerr=sems, color=colours)
            ax.set_yticks(range(len(labels)), labels, fontsize=8)
            ax.invert_yaxis()
            arrow = "↑" if table["higher_is_better"].get(metric) else "↓"
            ax.set_title(f"{metric} {arrow}", fontsize=9)
        for ax in list(axes.flat)[len(metrics) :]:
            ax.axis("off")
        fig.tight_layout()
        save_figure(out / "benchmark.png", fig)
        plt.close(fig)
        written.append("benchmark.png")
    if cascade["methods"] and cascade["layers"]:
        steps = ["original", *cascade["layers"]]
        fig, axes = plt.subplots(1, 2, figsize=(12, 4))
        for label, curves in cascade["methods"].items():
            style = "--" if label in controls else "-"
            for ax, kind in zip(axes, ("spearman_abs", "ssim")):
                ax.plot(range(len(steps)), [1.0, *curves[kind]], style, marker="o", label=label)
        lowest = min(
            min(curves[kind]) for curves in cascade["methods"].values() for kind in curves
        )
        for ax, title in zip(axes, ("Spearman rank correlation (|map|)", "SSIM (|map|)")):
            ax.set_xticks(range(len(steps)), steps, rotation=60, ha="right", fontsize=7)
            # Correlations can turn negative (Grad-CAM after the head is randomised): keep them.
            ax.set_ylim(min(-0.1, lowest - 0.05), 1.05)
            ax.set_title(title + " vs. layers randomised, from the logits down", fontsize=9)
            ax.axhline(0, color="0.8", linewidth=0.8)
        axes[1].legend(fontsize=7, loc="upper right")
        fig.tight_layout()
        save_figure(out / "cascade.png", fig)
        plt.close(fig)
        written.append("cascade.png")
    if example_maps:
        columns = list(example_maps)
        count = min(len(m) for m in example_maps.values())
        rows = []
        for i in range(count):
            image = data.images[i].permute(1, 2, 0).numpy().copy()
            # A one-pixel outline of the ground-truth mask, so the maps can be judged by eye.
            mask = data.masks[i].numpy()
            edge = mask & ~np.pad(mask, 1)[2:, 1:-1] | mask & ~np.pad(mask, 1)[:-2, 1:-1]
            image[edge] = (1.0, 1.0, 1.0)
            rows.append((f"image {i}", image))
        cells = {
            (r, c): example_maps[label][r].numpy()
            for c, label in enumerate(columns)
            for r in range(count)
        }
        grid_figure(out / "examples.png", rows, columns, cells)
        written.append("examples.png")
    return written
