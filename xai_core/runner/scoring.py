from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from xai_core.contracts.attributor import Attributor
from xai_core.contracts.metric import Metric, MetricResult
from xai_core.contracts.model import ModelHandle
from xai_core.contracts.target_kinds import TargetKind


def score_maps(
    metrics: Sequence[tuple[str, Metric]],
    handle: ModelHandle,
    inputs: Tensor,
    maps: Tensor,
    targets: Tensor | Sequence[Any],
    *,
    masks: Tensor | None = None,
    attributor: Attributor | None = None,
    seed: int = 0,
    kind: TargetKind | None = None,
) -> dict[str, MetricResult | str]:
    """Score one batch of maps with every ``(label, metric)``: :meth:`Metric.evaluate` of each.

    A metric that fails, or lacks what it requires, gives its error message instead of a
    result, so one metric never loses the others' scores.
    """
    scored: dict[str, MetricResult | str] = {}
    for label, metric in metrics:
        try:
            scored[label] = metric.evaluate(
                handle, inputs, maps, targets, kind=kind, masks=masks, attributor=attributor,
                seed=seed,
            )
        except Exception as exc:  # noqa: BLE001 - reported per item, like technique failures
            scored[label] = f"{type(exc).__name__}: {exc}"
    return scored


def score_items(
    metrics: Sequence[tuple[str, Metric]],
    handle: ModelHandle,
    inputs: Sequence[Tensor],
    maps: Sequence[Tensor | None],
    targets: Sequence[Any],
    *,
    attributor: Attributor | None = None,
    masks: Sequence[Tensor | None] | None = None,
    seed: int = 0,
    kind: TargetKind | None = None,
) -> list[dict[str, Any]]:
    """Score the maps of one chunk of result items: what the runner adds to each item.

    ``masks`` holds each item's ground-truth mask ``[H, W]`` (``None`` only where the map is
    ``None``). Items whose map is ``None`` (failed) get ``{}``; the others get ``metrics``
    (label -> score, ``None`` where undefined or failed), ``metric_details`` (label -> per-item
    details, when a metric reports any) and, if a metric failed, ``metric_errors`` (label ->
    message). With ``kind``, ``targets`` are the items' targets in the kind's terms.
    """
    rows = [i for i, m in enumerate(maps) if m is not None]
    out: list[dict[str, Any]] = [{} for _ in maps]
    if not metrics or not rows:
        return out
    device = handle.device
    batch = torch.stack([inputs[i] for i in rows]).to(device)
    chosen = [targets[i] for i in rows]
    scored = score_maps(
        metrics,
        handle,
        batch,
        torch.stack([maps[i] for i in rows]).to(device),  # type: ignore[misc]
        chosen if kind is not None else torch.tensor(chosen),
        masks=None if masks is None else torch.stack([masks[i] for i in rows]),  # type: ignore[misc]
        attributor=attributor,
        seed=seed,
        kind=kind,
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
