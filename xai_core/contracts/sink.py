"""Sinks: where a finished run's numbers and pictures go besides its folder (TensorBoard,
MLflow, Weights & Biases, or a plugin's own tracker).

* :class:`Sink` is the contract: a ``name``, a ``Params`` dataclass (its config schema, as for
  techniques), the libraries it needs (:attr:`Sink.requires`, checked when the config is), and
  one method, :meth:`Sink.log`, called once at the end of every run that finishes;
* :class:`SinkRun` is what :meth:`Sink.log` gets: the run's folder, its ``results.json``, its
  items and their metrics, the per-method metric means, and each item's picture.

A plugin registers sinks with the ``register_sinks`` hook; a config selects them with
``sinks: [tensorboard, {name: mlflow, params: {...}}]`` (``xai list sinks``). The runner calls
them after ``results.json`` is complete (:mod:`xai_core.runner.sinks`); a sink that raises fails
the command, never the run's own outputs.
"""

from __future__ import annotations

import abc
import importlib.util
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from xai_core.contracts.technique import Technique
from xai_core.errors import ConfigError, PluginError
from xai_core.store import load_items, read_results

__all__ = ["Sink", "SinkRun", "ItemScore", "flat_config"]


class Sink(Technique):
    """A tracker a run reports to once it finished.

    Subclasses set ``name``, ``summary``, ``Params`` (a dataclass of the sink's options: its
    ``sinks[i].params`` schema) and, when the sink needs a library that xai-core does not
    install, :attr:`requires` and :attr:`install`; then implement :meth:`log`.
    """

    kind: ClassVar[str] = "sink"
    #: The modules the sink imports (``("mlflow",)``): a config selecting the sink is refused
    #: while one is missing, naming :attr:`install`. Import them inside :meth:`log`, so that
    #: listing plugins stays fast and a missing library costs only this sink.
    requires: ClassVar[tuple[str, ...]] = ()
    #: How to install :attr:`requires` (``pip install 'xai-core[mlflow]'``).
    install: ClassVar[str] = ""

    @classmethod
    def check_class(cls, technique: type, plugin: str) -> None:
        super().check_class(technique, plugin)
        requires = getattr(technique, "requires", ())
        if not isinstance(requires, tuple) or not all(isinstance(r, str) for r in requires):
            raise PluginError(
                f"plugin {plugin!r}: {technique.__qualname__}.requires must be a tuple of "
                "module names"
            )

    @classmethod
    def missing(cls) -> list[str]:
        """The modules of :attr:`requires` that cannot be imported here."""
        absent = []
        for module in cls.requires:
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                absent.append(module)
        return absent

    @classmethod
    def check_available(cls) -> None:
        """Raise :class:`~xai_core.errors.ConfigError` when a module the sink needs is
        missing, naming the package to install."""
        absent = cls.missing()
        if absent:
            how = cls.install or f"pip install {' '.join(absent)}"
            raise ConfigError(
                f"sink {cls.name!r} needs {', '.join(absent)}, which is not installed: "
                f"{how} (or remove {cls.name!r} from `sinks`)"
            )

    @abc.abstractmethod
    def log(self, run: SinkRun) -> dict[str, Any]:
        """Send ``run`` to the tracker; called once per finished run, after ``results.json`` is
        complete. Raise on failure (any exception): the run's command then exits non-zero, and
        ``results.json``'s ``sinks`` entry records the error.

        :return: where the run went, for ``results.json`` and the command's output (a folder,
            a run id, a URI): a JSON-serialisable mapping, ``{}`` for nothing to say.
        """


@dataclass(frozen=True)
class ItemScore:
    """One metric value of one item, as a series a tracker plots: ``series`` is the method's
    label (``saliency``; ``saliency (timm/resnet18)`` in a run of several models), ``step`` the
    item's position among that series' items (input order, then target order)."""

    series: str
    metric: str
    step: int
    value: float
    item: Mapping[str, Any]


@dataclass
class SinkRun:
    """A finished run as a sink sees it.

    :ivar folder: the run's output folder (absolute).
    :ivar results: ``results.json`` (:func:`xai_core.store.read_results`).
    :ivar items: every item (:func:`xai_core.store.load_items`): dicts with ``model``,
        ``label`` (the method), ``image``, ``key``, ``target``..., ``metrics`` (metric label ->
        value or ``None``) and ``files`` (role -> path relative to :attr:`folder`: ``map``,
        ``input``, ``figure``).
    :ivar render: draws an item's map on its photo (``[H, W, 3]`` uint8) when the run drew no
        figure of it; ``None``: no picture for such items. The runner sets it.
    """

    folder: Path
    results: dict[str, Any]
    items: list[dict[str, Any]]
    render: Callable[[Path, Mapping[str, Any]], np.ndarray | None] | None = field(
        default=None, repr=False
    )

    @classmethod
    def from_folder(
        cls, folder: str | Path, render: Callable[..., np.ndarray | None] | None = None
    ) -> SinkRun:
        """The run in ``folder`` (a run's ``output_dir``), read back from its files."""
        folder = Path(folder).resolve()
        results = read_results(folder)
        return cls(folder, results, load_items(folder, results), render)

    @property
    def config(self) -> dict[str, Any]:
        """The run's config, as ``results.json`` holds it."""
        config = self.results.get("config")
        return dict(config) if isinstance(config, Mapping) else {}

    @property
    def name(self) -> str:
        """The run's folder name: the default run name of a tracker."""
        return self.folder.name

    def metric_means(self) -> dict[str, dict[str, float]]:
        """Per method (a row of the run's metrics table: the label, with the model in a run of
        several models), each metric's mean over the items that have a value."""
        table = self.results.get("metrics")
        rows = table.get("rows", []) if isinstance(table, Mapping) else []
        means: dict[str, dict[str, float]] = {}
        for row in rows:
            for metric, cell in row.items():
                mean = cell.get("mean") if isinstance(cell, Mapping) else None
                if _finite(mean):
                    means.setdefault(str(row["method"]), {})[metric] = float(mean)
        return means

    def series(self, item: Mapping[str, Any]) -> str:
        """The name of ``item``'s method as the run's metrics table names it."""
        models = {i.get("model") for i in self.items}
        label = str(item.get("label") or item.get("method"))
        return f"{label} ({item.get('model')})" if len(models) > 1 else label

    def item_scores(self) -> Iterator[ItemScore]:
        """Every finite metric value of every item, in item order."""
        steps: dict[str, int] = {}
        for item in self.items:
            if item.get("error"):
                continue
            series = self.series(item)
            step = steps.get(series, 0)
            steps[series] = step + 1
            for metric, value in (item.get("metrics") or {}).items():
                if _finite(value):
                    yield ItemScore(series, str(metric), step, float(value), item)

    def file(self, item: Mapping[str, Any], role: str) -> Path | None:
        """The file of ``item``'s ``role`` (``map``, ``input``, ``figure``) if it exists."""
        rel = (item.get("files") or {}).get(role)
        if not rel:
            return None
        path = self.folder / rel
        return path if path.is_file() else None

    def picture(self, item: Mapping[str, Any]) -> np.ndarray | None:
        """``item``'s picture as ``[H, W, 3]`` uint8: the figure the run drew of it, else its map
        on its photo (:attr:`render`), else ``None`` (a failed item, one without a map)."""
        if item.get("error"):
            return None
        figure = self.file(item, "figure")
        if figure is not None and figure.suffix == ".png":
            from PIL import Image

            with Image.open(figure) as image:
                return np.asarray(image.convert("RGB"))
        if self.render is None:
            return None
        return self.render(self.folder, item)

    def pictures(self, limit: int) -> Iterator[tuple[str, Mapping[str, Any], np.ndarray]]:
        """Up to ``limit`` ``(name, item, picture)``, in item order; ``name`` is
        ``<image key>/<series>`` (unique within the run)."""
        shown = 0
        seen: dict[str, int] = {}
        for item in self.items:
            if shown >= limit:
                return
            picture = self.picture(item)
            if picture is None:
                continue
            name = f"{item.get('key')}/{self.series(item)}"
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:  # several targets of one image and method
                name = f"{name} #{seen[name]}"
            shown += 1
            yield name, item, picture


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def flat_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested config as ``{"model.name": "timm/resnet18", "methods": "[...]"}``: scalars as
    text, lists and empty mappings as their JSON (trackers' parameters are flat strings)."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flat_config(value, f"{path}."))
        elif isinstance(value, (Sequence, Mapping)) and not isinstance(value, str):
            flat[path] = json.dumps(value, sort_keys=True, default=str)
        else:
            flat[path] = str(value)
    return flat
