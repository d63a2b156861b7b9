"""A result item: one (image, method, target) of a run, typed while the run computes it.

The compute stage (:mod:`xai_core.runner.attribution`, :mod:`xai_core.runner.synthesis`,
:mod:`xai_core.runner.scoring`) fills a :class:`ResultItem`; the write stage
(:class:`~xai_core.runner.ledger.Ledger`) stores :meth:`ResultItem.as_record`, the JSON object
that records and ``results.json`` carry (its keys are the fields below, documented here and
nowhere else), and the finish stage and the report read those records.

A record names every field of :data:`ALWAYS_WRITTEN`, and the others only when they hold
something, so an item of a synthesizer run once per run has no ``index`` and an item that
nobody scored has no ``metrics``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ResultItem", "ALWAYS_WRITTEN", "SCORE_FIELDS"]

#: The keys of every record, ``None`` included.
ALWAYS_WRITTEN = (
    "image", "key", "model", "method", "kind", "label", "target", "target_label", "seconds",
    "files", "error",
)

#: The fields of an item that its metrics fill (label -> value, error, details).
SCORE_FIELDS = ("metrics", "metric_errors", "metric_details")


@dataclass
class ResultItem:
    """One result of a run, as the compute stage builds it (see the module's docstring)."""

    #: What was explained: the image's source and key (``None`` for a synthesizer that starts
    #: from noise), its position among the run's inputs, and by which model and method.
    image: str | None
    key: str | None
    model: str
    method: str
    kind: str
    label: str
    index: int | None = None
    #: The class explained (a list of classes for a failed per-run synthesis), its label,
    #: probability and rank among the image's targets (1 for the first).
    target: Any = None
    target_label: str | None = None
    target_probability: float | None = None
    target_rank: int | None = None
    #: Under a target kind (``target: {kind: ...}``): the target's score on the image and what
    #: it is (``logit``, ``sigmoid``, ``output``, ``logit sum``, ``cosine``); ``target`` is then
    #: the kind's choice (a label index, a class, ``[a, b]``) and ``target_label`` says it.
    target_value: float | None = None
    target_value_name: str | None = None
    #: The model's prediction on the image (``top5``: class, label and probability of each).
    predicted: int | None = None
    predicted_label: str | None = None
    predicted_probability: float | None = None
    top5: list[dict[str, Any]] | None = None
    random_weights: bool | None = None
    seconds: float | None = None
    #: Files written for the item, by role (``map``, ``input``, ``figure``, ``image``,
    #: ``array``), relative to the run's output folder.
    files: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None
    rank: int | None = None
    metadata: dict[str, Any] | None = None
    #: A synthesizer's record of the image (:class:`~xai_core.SynthesisRecord` as a dict).
    record: dict[str, Any] | None = None
    #: Metric scores by label (``None`` where a metric failed; its message in
    #: ``metric_errors``), and the per-item details some metrics report.
    metrics: dict[str, float | None] | None = None
    metric_errors: dict[str, str] | None = None
    metric_details: dict[str, Any] | None = None
    #: Written by the ledger: size and sha256 of each file, and the input's sha256.
    digests: dict[str, Any] | None = None
    image_sha256: str | None = None

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ResultItem:
        """The item of a record's JSON object (:meth:`as_record`); ``ValueError`` for an object
        that is not one (a key it does not know, a field it lacks)."""
        if not isinstance(record, Mapping):
            raise ValueError(f"an item is a JSON object, not {type(record).__name__}")
        unknown = sorted(set(record) - _FIELDS)
        if unknown:
            raise ValueError(f"unknown item fields {unknown}")
        try:
            item = cls(**record)
        except TypeError as exc:  # a required field is missing
            raise ValueError(str(exc)) from None
        item.files = dict(item.files or {})
        return item

    def fail(self, error: Mapping[str, str]) -> None:
        """Mark the item failed: the ``error`` (and, when there is one, ``traceback``) fields of
        :func:`~xai_core.runner.state.failure_details`."""
        self.error = error["error"]
        self.traceback = error.get("traceback", self.traceback)

    def set_target_info(self, info: Mapping[str, Any]) -> None:
        """The target fields of a target kind's target (``label``, ``value``, ``value_name``,
        ``probability``: :attr:`~xai_core.runner.state.ImageItem.target_info`)."""
        self.target_label = info["label"]
        self.target_value = info["value"]
        self.target_value_name = info["value_name"]
        self.target_probability = info["probability"]

    def set_scores(self, scored: Mapping[str, dict[str, Any]]) -> None:
        """Add the scores of :func:`~xai_core.runner.scoring.score_items` for this item (its
        ``metrics``, ``metric_errors``, ``metric_details``) to those it has."""
        for name in SCORE_FIELDS:
            if name in scored:
                setattr(self, name, {**(getattr(self, name) or {}), **scored[name]})

    def as_record(self) -> dict[str, Any]:
        """The JSON object of the item in records and ``results.json``."""
        record: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ALWAYS_WRITTEN or value is not None:
                record[f.name] = value
        return record


_FIELDS = frozenset(f.name for f in dataclasses.fields(ResultItem))
