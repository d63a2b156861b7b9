"""The first stage of a run: what is done, what only needs its scores or figures renewed, and
what must be computed.

A record (:mod:`xai_core.runner.ledger`) carries three kinds of fingerprint, each over only
what changes what it describes:

- ``fingerprint``, the map's: the model config and the checkpoint's content, the technique, its
  parameters that change the result (:func:`~xai_core.contracts.params.result_params`: not
  ``batch_size``, ``channels_last`` or ``progress``), the plugin and its version, the target,
  the seed and the storage dtype (and ``display_channels`` when set). When it differs the item
  is computed again.
- ``scores``, one per metric (its name, result-changing parameters, plugin and the seed, and
  the image's mask content for a metric that reads masks). A metric added or changed is
  computed from the saved map and input; one removed is dropped; the map is kept.
- ``figure``, the figure settings. Other settings redraw the figures from the saved maps.

Everything else (``workers``, ``batch_size``, ``channels_last``, ``progress``, ``figures``
switched off) changes no record. Synthesizers have only the first kind: their figures are
drawn as they compute.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch

from xai_core.contracts.attributor import Attributor
from xai_core.contracts.metric import Metric
from xai_core.contracts.model import ModelHandle
from xai_core.contracts.params import result_params
from xai_core.contracts.technique import Technique
from xai_core.io import digest_file
from xai_core.plugins.manager import get_registries
from xai_core.runner.config import ExperimentConfig
from xai_core.runner.inputs import InputImage, content_sha256
from xai_core.runner.ledger import Ledger, fingerprint
from xai_core.runner.masks import MaskSet

__all__ = [
    "Settings", "Todo", "Renewal", "Plan", "plan_items", "provider", "identity", "handle_sha256",
]


def provider(name: str, registry: Any) -> dict[str, Any]:
    """The plugin behind the technique or metric ``name``: its distribution and version change
    its results."""
    entry = registry.find(name)
    info = get_registries().plugins.get(entry.plugin) if entry is not None else None
    if info is None:
        return {"plugin": entry.plugin if entry is not None else None}
    return {"plugin": info.name, "distribution": info.distribution, "version": info.version}


def identity(source: InputImage, sha256: str) -> dict[str, str]:
    """What a record says about its input: where the bytes came from and what they were."""
    return {"source": source.resolved, "sha256": sha256}


class Settings:
    """The fingerprints a model's records must match in this run (each hashed once)."""

    def __init__(
        self,
        config: ExperimentConfig,
        metrics: Sequence[tuple[str, Metric]],
        masks: MaskSet | None,
        handle: ModelHandle | None = None,
        *,
        item_figures: bool | None = None,
    ):
        """:param masks: the inputs' masks when a metric reads them, else ``None``.
        :param handle: the model passed from Python (``run_experiment(handle=...)``), whose
            content (:func:`handle_sha256`) the records fingerprint.
        :param item_figures: whether the run draws per-item figures (default: unless
            ``figures: false``; see :meth:`ExperimentConfig.item_figures`)."""
        self.config = config
        self.item_figures = (
            config.figures in (True, "auto") if item_figures is None else item_figures
        )
        self.metrics = list(metrics)
        self.masks = masks
        self.weights = _checkpoint_sha256(config)
        #: The model config as records fingerprint it (:meth:`ModelConfig.identity`), with the
        #: content of a factory's file: edited code redoes the model's items.
        self.model = config.model.identity()
        code = _factory_sha256(config)
        if code is not None:
            self.model["factory_sha256"] = code
        if handle is not None:
            self.model["handle_sha256"] = handle_sha256(handle)
        self._maps: dict[str, str] = {}
        self._mask_digests: dict[str, str] = {}
        self._metric_parts = {
            label: (label, metric.name, result_params(metric.params),
                    provider(metric.name, get_registries().metrics), config.seed,
                    "mask" in metric.requires)
            for label, metric in self.metrics
        }

    def map(self, label: str, technique: Technique) -> str:
        """The map fingerprint of the method ``label``."""
        if label not in self._maps:
            config = self.config
            # The photos are drawn as inputs are read: other display channels redo the items.
            display = () if config.display_channels is None else (list(config.display_channels),)
            self._maps[label] = fingerprint(
                self.model, self.weights, technique.name,
                result_params(technique.params),
                provider(technique.name, get_registries().techniques),
                label, config.target, config.seed, config.storage.dtype, *display,
            )
        return self._maps[label]

    def scores(self, technique: Technique, source: InputImage | None) -> dict[str, str]:
        """One fingerprint per metric scoring ``technique``'s maps of ``source`` (none for a
        synthesizer); a metric that reads masks hashes the image's mask too."""
        if not isinstance(technique, Attributor) or source is None:
            return {}
        out = {}
        for label, parts in self._metric_parts.items():
            mask = self._mask(source) if parts[-1] else None
            out[label] = fingerprint(*parts, mask)
        return out

    def _mask(self, source: InputImage) -> str | None:
        if self.masks is None:
            return None
        if source.key not in self._mask_digests:
            self._mask_digests[source.key] = self.masks.digest(source) or ""
        return self._mask_digests[source.key]

    def figure(self, technique: Technique) -> str | None:
        """The figure settings an attributor's figures were drawn with (``None`` without
        figures, and for synthesizers, whose figures are drawn as they compute)."""
        if not self.item_figures or not isinstance(technique, Attributor):
            return None
        return fingerprint(self.config.figure)


def _checkpoint_sha256(config: ExperimentConfig) -> str | None:
    """The checkpoint's content hash, once per run: new weights under the same path redo all."""
    checkpoint = config.model.checkpoint
    if checkpoint and os.path.isfile(checkpoint):
        return digest_file(checkpoint).sha256
    return None


def _factory_sha256(config: ExperimentConfig) -> str | None:
    """The content hash of the ``.py`` file a factory model is built by, if it is one."""
    factory = config.model.factory
    target = factory.rpartition(":")[0] if factory else ""
    if target.endswith(".py") and os.path.isfile(target):
        return digest_file(target).sha256
    return None


def handle_sha256(handle: ModelHandle) -> str:
    """The content hash of a model passed from Python: its class, every parameter and buffer
    (names, dtypes, shapes, bytes), its preprocessing and class names. Other weights, another
    preprocessing or other classes redo the model's items; the same model in a new process
    resumes them."""
    digest = hashlib.sha256()
    module = handle.module
    header = [type(module).__module__, type(module).__qualname__,
              repr(handle.preprocessing), handle.class_names]
    digest.update(json.dumps(header, default=str).encode())
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            data = tensor.detach().cpu().contiguous()
            digest.update(f"{name}:{data.dtype}:{list(data.shape)}".encode())
            digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass
class Todo:
    """An input with methods to compute (``missing``: their labels)."""

    index: int
    source: InputImage
    missing: set[str]


@dataclass
class Renewal:
    """A finished (input, method) whose map stands but whose scores or figures do not:
    ``metrics`` to compute from the saved map, ``redraw`` its figures."""

    index: int
    source: InputImage
    label: str
    technique: Technique
    metrics: list[str] = field(default_factory=list)
    redraw: bool = False
    #: The record holds scores of metrics the run no longer has (they are dropped).
    drops: bool = False

    @property
    def needed(self) -> bool:
        return bool(self.metrics or self.redraw or self.drops)


@dataclass
class Plan:
    """What one model's part of a run does with each of its inputs."""

    todo: list[Todo]
    renew: list[Renewal]
    skipped: int

    @property
    def needs_model(self) -> bool:
        """Whether anything to do runs the model (a redraw alone does not)."""
        return bool(self.todo) or any(r.metrics for r in self.renew)


def plan_items(
    ledger: Ledger,
    mine: list[tuple[int, InputImage]],
    per_image: list[tuple[str, Technique]],
    settings: Settings,
    force: bool = False,
) -> Plan:
    """The plan for the inputs ``mine`` (``(index, source)``) and the methods ``per_image``.

    With ``force`` every item is computed. Otherwise an input is hashed only when one of its
    records has the right map fingerprint, so a first run reads no input twice; hashing runs in
    threads (hashlib releases the GIL)."""
    if force:
        labels = {label for label, _ in per_image}
        return Plan([Todo(index, source, set(labels)) for index, source in mine], [], 0)
    candidates = {
        index for index, source in mine
        if any(ledger.usable(source.key, label, settings.map(label, t)) is not None
               for label, t in per_image)
    }

    def content(pair: tuple[int, InputImage]) -> str | None:
        index, source = pair
        if index not in candidates:
            return None
        try:
            return content_sha256(source.path)
        except OSError:
            return None

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        hashes = list(pool.map(content, mine))
    plan = Plan([], [], 0)
    for (index, source), sha256 in zip(mine, hashes):
        missing = set()
        for label, technique in per_image:
            renewal = _renewal(ledger, index, source, label, technique, settings, sha256)
            if renewal is None:
                missing.add(label)
                continue
            plan.skipped += 1
            if renewal.needed:
                plan.renew.append(renewal)
        if missing:
            plan.todo.append(Todo(index, source, missing))
    return plan


def _renewal(
    ledger: Ledger, index: int, source: InputImage, label: str, technique: Technique,
    settings: Settings, sha256: str | None,
) -> Renewal | None:
    """``None`` when the item must be computed; else what its record lacks (maybe nothing)."""
    if sha256 is None:
        return None
    key = source.key
    if ledger.done(key, label, settings.map(label, technique), identity(source, sha256)) is None:
        return None
    record = ledger.read(key, label) or {}
    recorded = record.get("scores") or {}
    wanted = settings.scores(technique, source)
    figure = settings.figure(technique)
    return Renewal(
        index, source, label, technique,
        metrics=[m for m, fp in wanted.items() if recorded.get(m) != fp],
        redraw=figure is not None and record.get("figure") != figure,
        drops=bool(set(recorded) - set(wanted)),
    )

