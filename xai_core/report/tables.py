"""Tables: metric means (mean ± standard error per method and metric, as data and as
markdown; ``metrics.json`` / ``metrics.md`` of a run and of the ground-truth benchmark), and the
tidy rows of a run (:func:`xai_core.store.tidy_rows`) as CSV or markdown (``xai table``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from xai_core.contracts.metric import Metric
from xai_core.io import write_json, write_text


def _finite(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def metrics_table(
    items: Sequence[Mapping[str, Any]],
    directions: Mapping[str, bool] | None = None,
) -> dict[str, Any]:
    """Mean, standard error and count of every metric per method, from result items.

    :param items: dicts with ``label`` (the method) and ``metrics`` (metric label -> score or
        ``None``), as in ``results.json``; with items of several ``model``s, one row per model
        and method (``"grad_cam (efficientnet_lite1)"``): scores of different models are never
        averaged together.
    :param directions: metric label -> higher is better.
    :return: ``{"methods": [...], "metrics": [...], "higher_is_better": {...}, "rows": [{"method":
        row name, "<metric>": {"mean", "sem", "n"}}, ...]}`` (rows of several models also carry
        ``model`` and ``label``); methods and metrics in first-seen order.
    """
    scored = [item for item in items if item.get("metrics")]
    several = len({item.get("model") for item in scored}) > 1
    methods: list[str] = []
    metrics: list[str] = []
    origin: dict[str, tuple[Any, str]] = {}
    values: dict[tuple[str, str], list[float | None]] = {}
    for item in scored:
        name = f"{item['label']} ({item.get('model')})" if several else item["label"]
        if name not in methods:
            methods.append(name)
            origin[name] = (item.get("model"), item["label"])
        for metric, value in item["metrics"].items():
            if metric not in metrics:
                metrics.append(metric)
            values.setdefault((name, metric), []).append(value)
    rows = []
    for method in methods:
        row: dict[str, Any] = {"method": method}
        if several:
            row["model"], row["label"] = origin[method]
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


def write_metrics_table(
    out_dir: str | Path, items: Sequence[Mapping[str, Any]], metrics: Sequence[tuple[str, Metric]]
) -> dict[str, Any]:
    """Write ``metrics.json`` and ``metrics.md`` (mean ± standard error per method and metric)."""
    directions = {label: metric.higher_is_better for label, metric in metrics}
    table = metrics_table(items, directions)
    out = Path(out_dir)
    write_json(out / "metrics.json", table)
    write_text(out / "metrics.md", table_markdown(table))
    return table


def _cell(value: Any, digits: int) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return _number(value, digits) if math.isfinite(value) else str(value)
    return str(value)


def rows_markdown(rows: Sequence[Mapping[str, Any]], digits: int = 4) -> str:
    """Tidy rows as a GitHub markdown table (empty cells for ``None``; ``|`` escaped)."""
    if not rows:
        return ""
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [_cell(row.get(c), digits).replace("|", "\\|").replace("\n", " ") for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def rows_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """Tidy rows as CSV (RFC 4180 quoting; empty cells for ``None``; floats in full)."""
    import csv
    import io

    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    return buffer.getvalue()

