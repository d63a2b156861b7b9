"""The metric contract: :class:`Metric`, what it gets (:class:`MetricContext`) and what it returns
(:class:`MetricResult`), plus the two things every caller of metrics needs: scoring one batch of
maps with several metrics (:func:`score_maps`) and tabulating scores per method
(:func:`metrics_table`, :func:`table_markdown`).

A metric scores attribution maps: ``Metric.evaluate(model, inputs, maps, targets, masks=...)``
returns one number per map. Like techniques, a metric class has a public ``name``, a ``Params``
dataclass (its config schema) and one method to implement, :meth:`Metric.compute`. It declares
what it needs besides the maps in ``requires``: ``"mask"`` (a ground-truth object mask per
item, for localisation metrics) and ``"attributor"`` (the technique that made the maps, for
metrics that explain other inputs or other models, like max-sensitivity and the randomisation
sanity check).

What does not live here: the built-in metrics (``plugins/metrics.py``), running experiments
(:mod:`xai_core.run`) and the ground-truth benchmark (:mod:`xai_core.benchmark`).
"""

from __future__ import annotations

import abc
import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .errors import InputError, PluginError, XaiError
from .models import ModelHandle, as_model_handle
from .module_hooks import model_state
from .techniques import Attributor, Technique

__all__ = [
    "Metric",
    "MetricContext",
    "MetricResult",
    "REQUIREMENTS",
    "get_metric",
    "list_metrics",
    "score_maps",
    "metrics_table",
    "table_markdown",
    "score_items",
    "build_metrics",
    "write_metrics_table",
]

#: What a metric may need besides model, inputs, maps and targets.
REQUIREMENTS = ("mask", "attributor")


@dataclass
class MetricResult:
    """One score per map, and what the metric reports about each.

    :ivar scores: float tensor ``[N]`` on the CPU; ``nan`` where the score is undefined for an
        item (a localisation metric on an image without object, say).
    :ivar metric: the metric's registered name.
    :ivar higher_is_better: the direction of the score, for tables and plots.
    :ivar details: one dict per item with anything beyond the score (curves, per-layer values);
        JSON-serialisable.
    :ivar metadata: run-level facts (parameters, seconds).
    """

    scores: Tensor
    metric: str
    higher_is_better: bool
    details: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.scores.shape[0]


@dataclass
class MetricContext:
    """What :meth:`Metric.compute` gets besides the model, inputs, maps and targets.

    :ivar handle: the model handle (preprocessing: ``handle.normalize`` / ``denormalize``).
    :ivar masks: ground-truth masks ``[N, H, W]`` (bool, on the model's device) when given.
    :ivar attributor: the technique that made the maps, when given.
    :ivar generator: the only source of randomness a metric should use, seeded per call, so a
        metric's score is reproducible.
    :ivar metadata: put run-level facts here.
    """

    handle: ModelHandle
    masks: Tensor | None = None
    attributor: Attributor | None = None
    generator: torch.Generator = field(default_factory=torch.Generator)
    metadata: dict[str, Any] = field(default_factory=dict)

    def explain(self, inputs: Tensor, targets: Tensor, module: nn.Module | None = None) -> Tensor:
        """Maps ``[N, H, W]`` of the attributor on other ``inputs`` (or another ``module``).

        The result is on the device of ``inputs``. ``module`` replaces the model (a randomised
        copy, say) while keeping the handle's preprocessing and class names.
        """
        if self.attributor is None:
            raise XaiError("this metric needs the attributor that made the maps")
        handle = self.handle
        if module is not None:
            handle = dataclasses.replace(handle, module=module)
        result = self.attributor.attribute(handle, inputs, targets.tolist())
        return result.maps.to(inputs.device)


class Metric(Technique):
    """Scores attribution maps: ``evaluate(model, inputs, maps, targets)`` -> one score per map.

    Subclasses set ``name``, ``Params``, ``higher_is_better`` and ``requires`` (a subset of
    :data:`REQUIREMENTS`), and implement :meth:`compute`. Parameter validation is the one
    techniques use (a metric is built from a mapping or its ``Params``, unknown keys and wrong
    types are rejected); everything else (shape checks, requirements, model mode and device,
    seeding) is done here, identically for every metric.
    """

    kind: ClassVar[str] = "metric"
    higher_is_better: ClassVar[bool] = True
    requires: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def check_class(cls, technique: type, plugin: str) -> None:
        super().check_class(technique, plugin)
        unknown = set(getattr(technique, "requires", ())) - set(REQUIREMENTS)
        if unknown:
            raise PluginError(
                f"plugin {plugin!r}: {technique.__qualname__}.requires has "
                f"{', '.join(sorted(unknown))}; metrics may require {', '.join(REQUIREMENTS)}"
            )

    def evaluate(
        self,
        model: ModelHandle | nn.Module,
        inputs: Tensor,
        maps: Tensor,
        targets: Tensor | Sequence[int],
        *,
        masks: Tensor | None = None,
        attributor: Attributor | None = None,
        seed: int = 0,
    ) -> MetricResult:
        """Score ``maps`` (``[N, H, W]``) computed on normalized ``inputs`` for ``targets``.

        :param model: a handle or plain module (the model the maps explain).
        :param inputs: the normalized batch ``[N, 3, H, W]`` the maps were computed on.
        :param maps: ``[N, H, W]`` at input resolution.
        :param targets: ``[N]`` class indices the maps explain.
        :param masks: ``[N, H, W]`` ground-truth object masks (needed if ``"mask"`` is required).
        :param attributor: the technique that made the maps (needed if ``"attributor"`` is).
        :param seed: seeds the metric's random perturbations.
        """
        handle = as_model_handle(model)
        inputs, maps, targets, masks = self._check(inputs, maps, targets, masks, attributor)
        start = time.perf_counter()
        module = handle.module
        with model_state(module) as device:
            generator = torch.Generator(device=device)
            generator.manual_seed(seed)
            context = MetricContext(
                handle=handle,
                masks=None if masks is None else masks.to(device),
                attributor=attributor,
                generator=generator,
            )
            out = self.compute(
                module, inputs.to(device), maps.to(device), targets.to(device), context
            )
        scores, details = out if isinstance(out, tuple) else (out, None)
        if not isinstance(scores, Tensor) or tuple(scores.shape) != (len(inputs),):
            got = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
            raise PluginError(
                f"metric {self.name!r} returned scores of shape {got}; the contract is [N], "
                f"here [{len(inputs)}]"
            )
        if details is None:
            details = [{} for _ in range(len(inputs))]
        metadata = {"params": dataclasses.asdict(self.params), **context.metadata}
        metadata["seconds"] = time.perf_counter() - start
        return MetricResult(
            scores=scores.detach().double().cpu(),
            metric=self.name,
            higher_is_better=self.higher_is_better,
            details=list(details),
            metadata=metadata,
        )

    def _check(self, inputs, maps, targets, masks, attributor):
        if not isinstance(inputs, Tensor) or inputs.ndim != 4 or inputs.shape[1] != 3:
            shape = tuple(inputs.shape) if isinstance(inputs, Tensor) else type(inputs).__name__
            raise InputError(f"metric inputs must be a normalized batch [N,3,H,W]; got {shape}")
        expected = (inputs.shape[0], inputs.shape[2], inputs.shape[3])
        if not isinstance(maps, Tensor) or tuple(maps.shape) != expected:
            shape = tuple(maps.shape) if isinstance(maps, Tensor) else type(maps).__name__
            raise InputError(
                f"metric {self.name!r}: maps must be [N, H, W] at input resolution, here "
                f"{expected}; got {shape}"
            )
        targets = torch.as_tensor(targets, dtype=torch.long).flatten()
        if targets.shape[0] != inputs.shape[0]:
            raise InputError(
                f"metric {self.name!r}: {targets.shape[0]} targets for {inputs.shape[0]} inputs"
            )
        if "mask" in self.requires:
            if masks is None:
                raise XaiError(
                    f"metric {self.name!r} needs a ground-truth object mask per image; run it on "
                    "the ground-truth benchmark (`xai benchmark`) or give masks"
                )
            if tuple(masks.shape) != expected:
                raise InputError(
                    f"metric {self.name!r}: masks must be [N, H, W] = {expected}; "
                    f"got {tuple(masks.shape)}"
                )
            masks = masks.bool()
        if "attributor" in self.requires and attributor is None:
            raise XaiError(
                f"metric {self.name!r} re-runs the explanation, so it needs the attributor that "
                "made the maps; it cannot score maps of unknown origin"
            )
        return inputs.detach().float(), maps.detach().float(), targets, masks

    @abc.abstractmethod
    def compute(
        self,
        model: nn.Module,
        inputs: Tensor,
        maps: Tensor,
        targets: Tensor,
        context: MetricContext,
    ) -> Tensor | tuple[Tensor, list[dict[str, Any]]]:
        """Return scores ``[N]`` (and optionally one details dict per item).

        Everything is on the model's device; the model is in eval mode with frozen parameters
        and gradients enabled (wrap pure forward passes in ``torch.no_grad()``).
        """


def get_metric(name: str, **params: Any) -> Metric:
    """A metric by registered name, with its parameters validated: ``get_metric("deletion")``."""
    from .plugins import get_registries

    return get_registries().metrics.get(name)(**params)


def list_metrics() -> list[str]:
    """Registered metric names, sorted."""
    from .plugins import get_registries

    return get_registries().metrics.names()


def build_metrics(configs: Sequence[Any]) -> list[tuple[str, Metric]]:
    """``(label, metric)`` for each metric entry of a config (``name``, ``params``, ``label``)."""
    from .config import build_params
    from .plugins import get_registries

    registry = get_registries().metrics
    built = []
    for i, entry in enumerate(configs):
        cls = registry.get(entry.name)
        params = build_params(cls.Params, entry.params, where=f"metrics[{i}].params")
        built.append((entry.label or entry.name, cls(params)))
    return built


def score_maps(
    metrics: Sequence[tuple[str, Metric]],
    handle: ModelHandle,
    inputs: Tensor,
    maps: Tensor,
    targets: Tensor | Sequence[int],
    *,
    masks: Tensor | None = None,
    attributor: Attributor | None = None,
    seed: int = 0,
) -> dict[str, MetricResult | str]:
    """Score one batch of maps with every ``(label, metric)``.

    A metric that fails, or lacks what it requires, gives its error message instead of a
    result, so one metric never loses the others' scores.
    """
    scored: dict[str, MetricResult | str] = {}
    for label, metric in metrics:
        try:
            scored[label] = metric.evaluate(
                handle, inputs, maps, targets, masks=masks, attributor=attributor, seed=seed
            )
        except Exception as exc:  # noqa: BLE001 - reported per item, like technique failures
            scored[label] = f"{type(exc).__name__}: {exc}"
    return scored


def _finite(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def metrics_table(
    items: Sequence[Mapping[str, Any]],
    directions: Mapping[str, bool] | None = None,
) -> dict[str, Any]:
    """Mean, standard error and count of every metric per method, from result items.

    :param items: dicts with ``label`` (the method) and ``metrics`` (metric label -> score or
        ``None``), as in ``results.json``.
    :param directions: metric label -> higher is better.
    :return: ``{"methods": [...], "metrics": [...], "higher_is_better": {...}, "rows": [{"method":
        label, "<metric>": {"mean", "sem", "n"}}, ...]}``; methods and metrics in first-seen order.
    """
    methods: list[str] = []
    metrics: list[str] = []
    values: dict[tuple[str, str], list[float | None]] = {}
    for item in items:
        scores = item.get("metrics")
        if not scores:
            continue
        if item["label"] not in methods:
            methods.append(item["label"])
        for metric, value in scores.items():
            if metric not in metrics:
                metrics.append(metric)
            values.setdefault((item["label"], metric), []).append(value)
    rows = []
    for method in methods:
        row: dict[str, Any] = {"method": method}
        for metric in metrics:
            finite = _finite(values.get((method, metric), []))
            n = len(finite)
            mean = sum(finite) / n if n else None
            sem = None
            if n > 1 and mean is not None:
                variance = sum((v - mean) ** 2 for v in finite) / (n - 1)
                sem = math.sqrt(variance / n)
            row[metric] = {"mean": mean, "sem": sem, "n": n}
        rows.append(row)
    return {
        "methods": methods,
        "metrics": metrics,
        "higher_is_better": dict(directions or {}),
        "rows": rows,
    }


def _number(value: float, digits: int) -> str:
    """Fixed point, or scientific where fixed point would show only zeros (infidelity values)."""
    if value != 0 and abs(value) < 10 ** (-digits):
        return f"{value:.{max(1, digits - 1)}e}"
    return f"{value:.{digits}f}"


def table_markdown(table: Mapping[str, Any], digits: int = 3) -> str:
    """The table of :func:`metrics_table` as GitHub markdown: ``mean ± sem`` per cell.

    Arrows in the header give each metric's direction; the best mean per column is bold.
    """
    metrics = table["metrics"]
    directions = table.get("higher_is_better", {})
    best: dict[str, float] = {}
    for metric in metrics:
        means = [r[metric]["mean"] for r in table["rows"] if r[metric]["mean"] is not None]
        if means and metric in directions:
            best[metric] = max(means) if directions[metric] else min(means)
    header = ["method"] + [
        f"{m} {'↑' if directions.get(m) else '↓'}" if m in directions else m for m in metrics
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table["rows"]:
        cells = [str(row["method"])]
        for metric in metrics:
            cell = row[metric]
            if cell["mean"] is None:
                cells.append("n/a")
                continue
            text = _number(cell["mean"], digits)
            if cell["sem"] is not None:
                text += f" ± {_number(cell['sem'], digits)}"
            if metric in best and cell["mean"] == best[metric]:
                text = f"**{text}**"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def score_items(
    metrics: Sequence[tuple[str, Metric]],
    handle: ModelHandle,
    inputs: Sequence[Tensor],
    maps: Sequence[Tensor | None],
    targets: Sequence[int],
    *,
    attributor: Attributor | None = None,
    masks: Sequence[Tensor] | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Score the maps of one chunk of result items: what the runner adds to each item.

    Items whose map is ``None`` (failed) get ``{}``; the others get ``metrics`` (label -> score,
    ``None`` where undefined or failed), ``metric_details`` (label -> per-item details, when a
    metric reports any) and, if a metric failed, ``metric_errors`` (label -> message).
    """
    rows = [i for i, m in enumerate(maps) if m is not None]
    out: list[dict[str, Any]] = [{} for _ in maps]
    if not metrics or not rows:
        return out
    device = handle.device
    batch = torch.stack([inputs[i] for i in rows]).to(device)
    scored = score_maps(
        metrics,
        handle,
        batch,
        torch.stack([maps[i] for i in rows]).to(device),  # type: ignore[misc]
        torch.tensor([targets[i] for i in rows]),
        masks=None if masks is None else torch.stack([masks[i] for i in rows]),
        attributor=attributor,
        seed=seed,
    )
    for position, row in enumerate(rows):
        item: dict[str, Any] = {"metrics": {}}
        for label, result in scored.items():
            if isinstance(result, str):
                item["metrics"][label] = None
                item.setdefault("metric_errors", {})[label] = result
                continue
            value = float(result.scores[position])
            item["metrics"][label] = value if math.isfinite(value) else None
            if result.details[position]:
                item.setdefault("metric_details", {})[label] = result.details[position]
        out[row] = item
    return out


def write_metrics_table(
    out_dir: str | Path, items: Sequence[Mapping[str, Any]], metrics: Sequence[tuple[str, Metric]]
) -> dict[str, Any]:
    """Write ``metrics.json`` and ``metrics.md`` (mean ± standard error per method and metric)."""
    from .io import write_json, write_text

    directions = {label: metric.higher_is_better for label, metric in metrics}
    table = metrics_table(items, directions)
    out = Path(out_dir)
    write_json(out / "metrics.json", table)
    write_text(out / "metrics.md", table_markdown(table))
    return table
