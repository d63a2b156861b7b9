"""Renewing finished items whose map stands: metrics added or changed are computed from the
saved map and input, metrics no longer in the config are dropped, and figures drawn with other
settings are drawn again from the saved map (see :mod:`xai_core.runner.plan`).

The map is never recomputed here, so a metric's score on a renewed item is the score it would
have had in the first run. A redrawn figure shows the saved input photo (8-bit PNG) under the
map, as the report does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from xai_core.contracts.model import ModelHandle
from xai_core.errors import XaiError
from xai_core.io import photo_beside, read_array
from xai_core.report.figures import FigureOptions, attribution_title
from xai_core.report.render import attribution_figure
from xai_core.runner.inputs import stored_input
from xai_core.runner.item import SCORE_FIELDS, ResultItem
from xai_core.runner.ledger import Ledger
from xai_core.runner.plan import Renewal, Settings
from xai_core.runner.scoring import score_items
from xai_core.runner.state import RunState, failure

__all__ = ["renew_items"]


def renew_items(
    run: RunState,
    renewals: Sequence[Renewal],
    ledger: Ledger,
    settings: Settings,
    handle: ModelHandle | None,
) -> None:
    """Renew each of ``renewals`` and rewrite its record (through ``run.writer``).

    :param handle: the loaded model; needed only when a renewal has metrics to compute.
    """
    options = FigureOptions.from_config(run.config.figure)
    for renewal in renewals:
        record = ledger.read(renewal.source.key, renewal.label) or {}
        items = [ResultItem.from_record(item) for item in record.get("items", [])]
        wanted = settings.scores(renewal.technique, renewal.source)
        for item in items:
            _drop_scores(item, keep=set(wanted))
        if renewal.metrics:
            if handle is None:
                raise XaiError("renewing scores needs the model loaded")  # a planning bug
            with run.phases("metrics"):
                _score(run, renewal, items, handle)
        if renewal.redraw:
            with run.phases("figures"):
                for item in items:
                    _redraw(run, renewal, item, options)
        run.writer.submit(
            ledger.write, renewal.source.key, renewal.label, items,
            settings.map(renewal.label, renewal.technique), record.get("input"),
            wanted, settings.figure(renewal.technique),
        )


def _drop_scores(item: ResultItem, keep: set[str]) -> None:
    for name in SCORE_FIELDS:
        scores = getattr(item, name)
        if scores is not None:
            kept = {label: v for label, v in scores.items() if label in keep}
            setattr(item, name, kept if kept or name == "metrics" else None)


def _score(run: RunState, renewal: Renewal, items: list[ResultItem], handle: ModelHandle):
    """The renewal's metrics on the items' saved maps, merged into the items."""
    metrics = [(label, m) for label, m in run.metrics if label in renewal.metrics]
    scored_items = [item for item in items if "map" in item.files]
    if not scored_items:
        return
    inputs = stored_input(run.root / scored_items[0].files["input"], handle.preprocessing)
    maps = [torch.from_numpy(read_array(run.root / item.files["map"])) for item in scored_items]
    masks = None
    if run.scoring_masks is not None and any("mask" in m.requires for _, m in metrics):
        try:
            mask = run.scoring_masks.for_image(renewal.source, handle.preprocessing)
        except Exception as exc:  # noqa: BLE001 - the mask's error is the metric's error
            for item in scored_items:
                item.set_scores({"metrics": {label: None for label, _ in metrics},
                                 "metric_errors": {label: failure(exc) for label, _ in metrics}})
            return
        masks = [mask for _ in scored_items]
    scores = score_items(
        metrics, handle, [inputs for _ in scored_items], maps,
        [item.target for item in scored_items],
        attributor=renewal.technique, masks=masks, seed=run.config.seed,
    )
    for item, scored in zip(scored_items, scores):
        item.set_scores(scored)


def _redraw(run: RunState, renewal: Renewal, item: ResultItem, options: FigureOptions):
    files = item.files
    if "map" not in files:
        return
    saliency = read_array(run.root / files["map"])
    photo_path = photo_beside(run.root / files["input"])
    with Image.open(photo_path) as photo:
        pixels = np.asarray(photo.convert("RGB"), dtype=np.float32) / 255
    figure = run.layout.figure(renewal.source.key, Path(files["map"]).stem)
    title = attribution_title(renewal.label, item.as_record())
    attribution_figure(figure, pixels, saliency, title, options)
    files["figure"] = run.rel(figure)
