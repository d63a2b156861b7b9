"""``report.html``: a static page per run that opens in any browser with no network.

Built only from what a run wrote (``results.json``, ``config.yaml``, maps, figures, metric
tables), so ``xai report RUN_DIR`` can rebuild it at any time. Large runs are split into pages of
:data:`IMAGES_PER_PAGE` images (``report.html``, ``report-2.html``, ...) and every image is
lazy-loaded, so a run over thousands of images never becomes one giant page.
"""

from __future__ import annotations

import html
import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from xai_core.errors import XaiError
from xai_core.io import atomic_open, write_text
from xai_core.report.figures import display_map, plt

__all__ = ["build_report", "IMAGES_PER_PAGE"]

IMAGES_PER_PAGE = 20
THUMB = 160

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5rem;color:#222}
h1{font-size:1.4rem;margin:0 0 .3rem} h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0} td,th{border:1px solid #ddd;padding:4px 8px;
font-size:.85rem;vertical-align:top} th{background:#f4f4f4}
.grid td{text-align:center} .grid img{width:160px;height:160px;object-fit:contain;display:block}
.cap{font-size:.75rem;color:#555;max-width:160px}
.err{color:#b00020;font-size:.75rem;max-width:160px}
nav a{margin-right:.6rem} pre{background:#f7f7f7;padding:.6rem;font-size:.8rem;overflow:auto}
.synth img{max-width:640px;display:block;margin:.3rem 0}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _thumbnail(run_dir: Path, map_file: str, out: Path) -> None:
    """A map rendered for display, PNG, written atomically."""
    values, cmap, vmin, vmax = display_map(np.load(run_dir / map_file))
    with atomic_open(out, "wb") as handle:
        plt.imsave(handle, values, cmap=cmap, vmin=vmin, vmax=vmax, format="png")


def _table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    if not rows:
        return "<p>(none)</p>"
    columns = columns or list(OrderedDict.fromkeys(k for row in rows for k in row))
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            v = row.get(c, "")
            cells.append(f"<td>{_e(f'{v:.4g}' if isinstance(v, float) else v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _score(cell: Any) -> Any:
    """A metric table cell ``{"mean", "sem", "n"}`` as ``mean ± sem``; other cells unchanged."""
    if not isinstance(cell, dict):
        return cell
    if cell.get("mean") is None:
        return ""
    sem = f" ± {cell['sem']:.2g}" if cell.get("sem") is not None else ""
    return f"{cell['mean']:.4g}{sem}"


def _page_name(index: int) -> str:
    return "report.html" if index == 0 else f"report-{index + 1}.html"


def build_report(run_dir: str | Path) -> Path:
    """Write ``report.html`` (and further pages) into ``run_dir``; returns the first page."""
    run_dir = Path(run_dir)
    results_file = run_dir / "results.json"
    if not results_file.is_file():
        raise XaiError(f"{str(run_dir)!r} holds no results.json; give the output folder of a run")
    try:
        results = json.loads(results_file.read_text())
    except json.JSONDecodeError as exc:
        raise XaiError(f"{results_file} is not valid JSON: {exc}") from None
    items: list[dict[str, Any]] = results.get("items", [])
    images: OrderedDict[str, dict[str, Any]] = OrderedDict()
    attribution_labels: list[str] = []
    synth: list[dict[str, Any]] = []
    for item in items:
        entry = images.setdefault(item["key"], {"first": item, "cells": {}})
        if item.get("kind", "attributor") == "attributor":
            if item["label"] not in attribution_labels:
                attribution_labels.append(item["label"])
            entry["cells"][item["label"]] = item
        else:
            synth.append(item)

    thumbs = run_dir / "report"
    keys = list(images)
    pages = [keys[i : i + IMAGES_PER_PAGE] for i in range(0, len(keys), IMAGES_PER_PAGE)] or [[]]
    common = _common_sections(run_dir, results, items, synth)
    for index, page_keys in enumerate(pages):
        rows = []
        for key in page_keys:
            entry = images[key]
            first = entry["first"]
            photo = f"inputs/{key}.png"
            cells = [
                f'<td><img loading="lazy" src="{_e(photo)}" alt="input {_e(key)}">'
                f'<div class="cap"><b>{_e(key)}</b><br>predicted: '
                f'{_e(first.get("predicted_label"))}'
                f" ({first.get('predicted_probability') or 0:.2f})<br>target: "
                f"{_e(first.get('target_label'))} ({first.get('target_probability') or 0:.2f})"
                "</div></td>"
            ]
            for label in attribution_labels:
                item = entry["cells"].get(label)
                if item is None:
                    cells.append("<td></td>")
                elif item.get("error"):
                    cells.append(f'<td><div class="err">failed: {_e(item["error"])}</div></td>')
                else:
                    thumb = thumbs / key / f"{label}.png"
                    if not thumb.is_file():
                        _thumbnail(run_dir, item["files"]["map"], thumb)
                    link = item["files"].get("figure", item["files"]["map"])
                    cells.append(
                        f'<td><a href="{_e(link)}"><img loading="lazy" '
                        f'src="{_e(thumb.relative_to(run_dir))}" '
                        f'alt="{_e(label)} map of {_e(key)}">'
                        f'</a><div class="cap">{(item.get("seconds") or 0):.2f} s</div></td>'
                    )
            rows.append("<tr>" + "".join(cells) + "</tr>")
        header = "<tr><th>image</th>" + "".join(f"<th>{_e(lbl)}</th>" for lbl in attribution_labels)
        nav = ""
        if len(pages) > 1:
            nav = (
                "<nav>pages: "
                + "".join(
                    f'<a href="{_page_name(i)}">{"<b>" if i == index else ""}{i + 1}'
                    f"{'</b>' if i == index else ''}</a>"
                    for i in range(len(pages))
                )
                + "</nav>"
            )
        grid = (
            f'<h2>Attributions</h2>{nav}<table class="grid">{header}</tr>'
            f'{"".join(rows)}</table>{nav}'
            if attribution_labels
            else ""
        )
        page = _page(results, grid + common)
        write_text(run_dir / _page_name(index), page)
    return run_dir / "report.html"


def _common_sections(
    run_dir: Path, results: dict[str, Any], items: list[dict[str, Any]], synth: list[dict[str, Any]]
) -> str:
    parts = []
    if synth:
        blocks = []
        for item in synth:
            files = item.get("files", {})
            record = item.get("record") or {}
            shown = files.get("figure") or files.get("image")
            body = (
                f'<img loading="lazy" src="{_e(shown)}" '
                f'alt="{_e(item["label"])} for {_e(item["key"])}">'
                if shown
                else ""
            )
            error = (
                f'<div class="err">failed: {_e(item["error"])}</div>' if item.get("error") else ""
            )
            facts = ", ".join(
                f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}"
                for k, v in record.items()
                if not isinstance(v, (list, dict))
            )
            blocks.append(
                f"<div><h3>{_e(item['label'])}: {_e(item['key'])} -> {_e(item.get('target_label'))}"
                f'</h3>{body}{error}<div class="cap" style="max-width:none">{_e(facts)}</div></div>'
            )
        parts.append(f'<h2>Synthesized images</h2><div class="synth">{"".join(blocks)}</div>')
    metrics_file = run_dir / "metrics.json"
    if metrics_file.is_file():
        # The table xai_core.report.tables.write_metrics_table writes: one row per method, one
        # {"mean", "sem", "n"} cell per metric.
        table = json.loads(metrics_file.read_text())
        rows = [{key: _score(cell) for key, cell in row.items()} for row in table.get("rows", [])]
        if rows:
            parts.append(f"<h2>Metrics</h2>{_table(rows)}")
    timing: dict[str, list[float]] = {}
    for item in items:
        if item.get("seconds") is not None and not item.get("error"):
            timing.setdefault(item["label"], []).append(float(item["seconds"]))
    parts.append(
        "<h2>Timings</h2>"
        + _table(
            [
                {
                    "method": k,
                    "items": len(v),
                    "mean seconds": float(np.mean(v)),
                    "total seconds": float(np.sum(v)),
                }
                for k, v in timing.items()
            ]
        )
    )
    config = run_dir / "config.yaml"
    if config.is_file():
        parts.append(f"<h2>Resolved config</h2><pre>{_e(config.read_text())}</pre>")
    env = results.get("environment", {})
    parts.append(
        "<h2>Environment</h2>"
        + _table(
            [
                {"key": k, "value": json.dumps(v) if isinstance(v, dict) else v}
                for k, v in env.items()
            ]
        )
    )
    return "".join(parts)


def _timing(results: dict[str, Any]) -> str:
    """This invocation's wall time and the run's compute (every item's seconds, resumed ones
    included): a resumed run is quick to finish but not cheap to make, and both matter."""
    wall = results.get("wall_seconds", results.get("seconds"))
    text = f"wall time {float(wall or 0):.1f} s"
    if results.get("compute_seconds") is not None:
        text += f", compute {float(results['compute_seconds']):.1f} s (all items)"
    return text


def _page(results: dict[str, Any], body: str) -> str:
    summary = results.get("summary", {})
    model = results.get("model", {})
    title = f"xai-core run: {model.get('name', '?')}"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<title>{_e(title)}</title><meta name="viewport" content="width=device-width">'
        f"<style>{CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1><div>{summary.get('items', 0)} item(s), "
        f"{summary.get('failed', 0)} failed; weights: {_e(model.get('weights', '?'))}; "
        f"{_timing(results)}</div>"
        f"{body}</body></html>\n"
    )
