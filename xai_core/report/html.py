"""``report.html``: a static page per run that opens in any browser with no network or server
(``file://`` will do).

Built only from what a run wrote (``results.json`` and the items :func:`~xai_core.store.load_items`
reads, ``config.yaml``, maps, figures, metric tables), so ``xai report RUN_DIR`` can rebuild it
at any time. The page is one file; what it shows of the images is drawn in the browser by
``report/report.js`` (plain JavaScript) from data the report writes beside it:

- ``report/data.js``: every image and map of the run in compact JSON (the images' names,
  classes and each model's prediction and top 5; per map its model, method, target, seconds,
  metric scores, error, links and colour scale), the figure options and the colour tables of
  :func:`~xai_core.report.figures.colour_table`;
- ``report/px/<key>.js``: the thumbnails of one image, its photo (JPEG) and maps (8-bit
  grayscale PNGs) (:mod:`xai_core.report.thumbnails`), loaded only for the images on screen.

So a run of 10,000 images opens as quickly as one of ten: the page filters (model, method,
class, failed, a text search on image names, a range of a metric), sorts by any metric of any
method, pages (25 to 200 images), and recolours maps in place (overlay opacity, sign, a colour
scale shared per column or per row, with its key; the value under the pointer). Its state is
kept in the address (``report.html#method=1&sort=...``), so a view can be linked. Printing shows
every image of the current view.

What the page shows, top to bottom (a sticky header holds the title, each model with its
weights, and a table of contents):

- **Attributions**: one row per input photo (its thumbnail; per model its targets, prediction
  and top 5) and one column per attributor and model; each cell holds the map or its overlay
  on the photo, drawn as :func:`~xai_core.report.figures.render_map` draws it, with its colour
  key, the time it took and the item's metric scores; a click opens the full figure. Failed
  items say why.
- **Synthesized images**: each figure once, as a card with a one-line summary per image.
- **Metrics** (mean ± standard error over n images, with each metric's direction),
  **Failures**, **Timings** (per model and method), the resolved **Config** and the
  **Environment** (the last two folded).
"""

from __future__ import annotations

import html
import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from xai_core.errors import XaiError
from xai_core.io import photo_beside, write_text
from xai_core.report.figures import (
    COLOUR_STEPS,
    FigureOptions,
    colour_table,
    target_text,
)
from xai_core.report.thumbnails import THUMB, Thumbnails, _write_if_changed
from xai_core.store import load_items, read_results

__all__ = ["build_report", "IMAGES_PER_PAGE", "THUMB", "Thumbnails", "MAP_FIELDS", "page_data"]

#: Images per page when the page opens (the reader picks 25 to 200).
IMAGES_PER_PAGE = 25
#: Width of a synthesis figure's thumbnail.
SYNTH_THUMB = 480
#: The fields of each map in ``report/data.js`` (each map is a list, in this order).
MAP_FIELDS = (
    "image", "model", "method", "target", "seconds", "metrics", "error", "figure", "file",
    "size", "min", "max", "scales",
)
#: The colour tables the page uses, by kind of map (see ``render_map``).
KINDS = ("signed", "positive", "negative", "absolute")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _probability(value: Any) -> str:
    return f"{float(value):.2f}" if value is not None else "?"


# --------------------------------------------------------------------------- tables


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
    return f'<div class="scroll"><table><tr>{head}</tr>{"".join(body)}</table></div>'


def _number(value: float) -> str:
    """Three significant digits: metric scores range from 1e-5 (infidelity) to thousands."""
    return f"{value:.3g}"


def _score(cell: Any) -> str:
    """A metric table cell ``{"mean", "sem", "n"}`` as ``mean ± sem (n)``."""
    if not isinstance(cell, dict):
        return _e(cell)
    if cell.get("mean") is None:
        return "n/a"
    sem = f" ± {_number(cell['sem'])}" if cell.get("sem") is not None else ""
    return f"{_number(cell['mean'])}{sem} ({cell.get('n', '?')})"


def _direction(higher: bool | None) -> str:
    if higher is None:
        return ""
    return " ↑ higher is better" if higher else " ↓ lower is better"


def _metrics_section(table: Mapping[str, Any]) -> str:
    metrics = table.get("metrics", [])
    rows = table.get("rows", [])
    if not rows:
        return ""
    directions = table.get("higher_is_better", {})
    best: dict[str, float] = {}
    for metric in metrics:
        means = [r[metric]["mean"] for r in rows if r.get(metric, {}).get("mean") is not None]
        if means and metric in directions:
            best[metric] = max(means) if directions[metric] else min(means)
    head = "<th>method</th>" + "".join(
        f"<th>{_e(m)}<br><small>{_e(_direction(directions.get(m)).strip())}</small></th>"
        for m in metrics
    )
    body = []
    for row in rows:
        cells = [f"<td>{_e(row.get('method'))}</td>"]
        for metric in metrics:
            cell = row.get(metric, {})
            text = _score(cell)
            if metric in best and isinstance(cell, dict) and cell.get("mean") == best[metric]:
                text = f"<b>{text}</b>"
            cells.append(f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        '<section id="metrics"><h2>Metrics</h2><p class="note">Each cell: mean ± standard '
        "error of the mean (n = images with a finite score); the best mean per metric in bold. "
        "Per-image scores are under each map above.</p>"
        f'<div class="scroll"><table>{"".join(["<tr>" + head + "</tr>", *body])}</table></div>'
        "</section>"
    )


def _record_line(item: Mapping[str, Any]) -> str:
    """One synthesized image in words: class, outcome, steps, probability, size of change."""
    record = item.get("record") or {}
    name = record.get("target_label") or item.get("target_label") or item.get("target")
    if item.get("error"):
        return f'<li class="err">{_e(name)}: failed: {_e(item["error"])}</li>'
    parts = []
    if record.get("targeted") is False:
        # An untargeted attack's record names the class it moves away from.
        parts.append("untargeted, away from it")
    if "success" in record:
        outcome = "reached" if record["success"] else "not reached"
        parts.append(f"{outcome} in {record.get('iterations', '?')} steps")
    if record.get("target_probability") is not None:
        parts.append(f"p({_e(name)}) = {float(record['target_probability']):.2f}")
    if record.get("predicted_label") and record.get("predicted_label") != name:
        parts.append(
            f"predicted {_e(record['predicted_label'])} "
            f"({_probability(record.get('predicted_probability'))})"
        )
    if record.get("linf") is not None:
        parts.append(f"L∞ {255 * float(record['linf']):.1f}/255")
    if record.get("l2") is not None:
        parts.append(f"L2 {float(record['l2']):.2f}")
    return f"<li><b>{_e(name)}</b>: {', '.join(parts)}</li>"


def _synthesis_section(run_dir: Path, synth: list[dict[str, Any]], thumbs: Thumbnails) -> str:
    groups: OrderedDict[Any, list[dict[str, Any]]] = OrderedDict()
    for item in synth:
        files = item.get("files", {})
        shown = files.get("figure") or files.get("image")
        group = shown if shown else (item.get("label"), item.get("key"), id(item))
        groups.setdefault(group, []).append(item)
    cards = []
    for shown, members in groups.items():
        first = members[0]
        where = f" on {first['key']}" if first.get("key") else ""
        title = f"{first['label']}{where}"
        picture = ""
        if isinstance(shown, str) and (run_dir / shown).is_file():
            thumb = thumbs.picture(shown, SYNTH_THUMB)
            picture = (
                f'<a href="{_e(shown)}"><img src="{_e(thumb)}" '
                f'alt="{_e(title)}"></a>'
            )
        lines = "".join(_record_line(item) for item in members)
        cards.append(f'<div class="card"><h3>{_e(title)}</h3>{picture}<ul>{lines}</ul></div>')
    return (
        '<section id="synthesis"><details open><summary><h2>Synthesized images</h2></summary>'
        f'<p class="note">Click a figure for the full-resolution PNG.</p>'
        f'<div class="cards">{"".join(cards)}</div></details></section>'
    )


def _timing(results: dict[str, Any]) -> str:
    """This invocation's wall time and the run's compute (every item's seconds, resumed ones
    included): a resumed run is quick to finish but not cheap to make, and both matter."""
    wall = results.get("wall_seconds", results.get("seconds"))
    text = f"wall time {float(wall or 0):.1f} s"
    if results.get("compute_seconds") is not None:
        text += f", compute {float(results['compute_seconds']):.1f} s (all items)"
    return text


# --------------------------------------------------------------------------- the page's data


def _short(value: Any, digits: int = 6) -> float | None:
    if value is None:
        return None
    number = float(value)
    return float(f"{number:.{digits}g}") if np.isfinite(number) else None


def _photo_of(item: Mapping[str, Any], run_dir: Path) -> str:
    """The input photo (model's view) of an item, relative to the run: beside its
    ``files.input`` (a model's own ``inputs/`` folder when a run compares models), else the
    run's ``inputs/<key>`` photo (:func:`~xai_core.io.photo_beside`)."""
    given = (item.get("files") or {}).get("input") or f"inputs/{item['key']}.npz"
    return str(photo_beside(run_dir / given).relative_to(run_dir))


def _models(results: Mapping[str, Any], items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each model of the run: ``label``, ``name``, ``weights``, ``input_size``, from
    ``results.json``'s ``models`` (a run of one model: its ``model``) and the items' ``model``."""
    entries = {
        str(m["label"]): m for m in results.get("models") or []
        if isinstance(m, dict) and m.get("label")
    }
    labels = list(entries)
    for item in items:
        label = item.get("model")
        if label and label not in labels:
            labels.append(label)
    labels = labels or [""]
    # Without ``models``, ``model`` is the first model's (``write_results``).
    first = {} if entries else results.get("model") or {}
    models = []
    for number, label in enumerate(labels):
        entry = entries.get(label) or (first if number == 0 else {})
        models.append({
            "label": label or entry.get("name") or "model", "name": entry.get("name"),
            "weights": entry.get("weights"), "input_size": entry.get("input_size"),
        })
    return models


class _Index:
    """Positions of models, methods, metrics and classes in the page's data lists."""

    def __init__(self, models: Sequence[Mapping[str, Any]], table: Mapping[str, Any]):
        self.models = [m["label"] for m in models]  # an item of no known model: the first
        self.methods: list[str] = []
        self.classes: list[str] = []
        self.metrics: list[str] = list(table.get("metrics") or [])

    def model(self, item: Mapping[str, Any]) -> int:
        label = item.get("model")
        return self.models.index(label) if label in self.models else 0

    @staticmethod
    def _at(values: list[str], value: str) -> int:
        if value not in values:
            values.append(value)
        return values.index(value)

    def method(self, label: str) -> int:
        return self._at(self.methods, label)

    def cls(self, label: str) -> int:
        return self._at(self.classes, label)

    def scores(self, item: Mapping[str, Any]) -> list[float | None] | None:
        found = item.get("metrics")
        if not found:
            return None
        for metric in found:
            self._at(self.metrics, metric)
        return [_short(found.get(metric)) for metric in self.metrics]


def _model_part(items: list[dict[str, Any]], run_dir: Path) -> dict:
    """What the photo column shows of one model on one image (``photo``: the input photo, whose
    thumbnail is in the image's pixel script; ``None`` when it is missing)."""
    photo = next(
        (p for p in (_photo_of(i, run_dir) for i in items) if (run_dir / p).is_file()), None
    )
    first = next((i for i in items if i.get("predicted_label") is not None), items[0])
    part: dict[str, Any] = {
        "photo": photo,
        "targets": list(OrderedDict.fromkeys(
            target_text(i) for i in items if i.get("target") is not None
        )),
        "pred": None, "top5": [
            [t.get("label"), _short(t.get("probability"), 3)] for t in first.get("top5") or []
        ],
    }
    if first.get("predicted_label") is not None:
        part["pred"] = [first["predicted_label"], _short(first.get("predicted_probability"), 3)]
    return part


def _image_entry(
    key: str, items: list[dict[str, Any]], index: _Index, run_dir: Path
) -> tuple[dict[str, Any], tuple[str, list[str], list[str]]]:
    """An image's entry and what its pixel script holds: ``(key, photos, maps)``."""
    per_model: list[list[dict[str, Any]]] = [[] for _ in index.models]
    for item in items:
        per_model[index.model(item)].append(item)
    entry: dict[str, Any] = {"key": key, "src": items[0].get("image"), "models": [],
                             "classes": [], "error": None}
    photos: list[str] = []
    for mine in per_model:
        part = _model_part(mine, run_dir) if mine else None
        entry["models"].append(part)
        if part and part["photo"] and part["photo"] not in photos:
            photos.append(part["photo"])
    maps = list(OrderedDict.fromkeys(
        rel for rel in ((i.get("files") or {}).get("map") for i in items if not i.get("error"))
        if rel and (run_dir / rel).is_file()
    ))
    classes = {i.get(f) for i in items for f in ("target_label", "predicted_label")}
    entry["classes"] = sorted(index.cls(str(c)) for c in classes if c is not None)
    if not photos:
        entry["error"] = items[0].get("error") or "no input image was written"
    return entry, (key, photos, maps)


def _map_entry(item: dict[str, Any], image: int, index: _Index, run_dir: Path) -> list[Any]:
    files = item.get("files") or {}
    error = item.get("error")
    map_rel = files.get("map")
    if not error and (not map_rel or not (run_dir / map_rel).is_file()):
        error = f"map file missing: {map_rel}"
    figure = files.get("figure")
    values = {
        "image": image, "model": index.model(item), "method": index.method(item["label"]),
        "target": target_text(item) if item.get("target") is not None else None,
        "seconds": _short(item.get("seconds"), 4), "metrics": index.scores(item),
        "error": error, "figure": figure if figure and (run_dir / figure).is_file() else None,
        "file": map_rel, "size": None, "min": None, "max": None, "scales": None,
    }
    return [values[field] for field in MAP_FIELDS]


def page_data(
    run_dir: Path,
    results: Mapping[str, Any],
    images: Mapping[str, list[dict[str, Any]]],
    thumbs: Thumbnails,
    table: Mapping[str, Any],
) -> dict[str, Any]:
    """The content of ``report/data.js`` (see the module), making the thumbnails it names.

    :param images: the attributor items of each image key, in input order.
    :param table: the run's metrics table (``metrics.json``; ``{}`` when it has none).
    """
    options = thumbs.options
    models = _models(results, (i for row in images.values() for i in row))
    index = _Index(models, table)
    entries, parts, maps = [], [], []
    for number, (key, items) in enumerate(images.items()):
        entry, part = _image_entry(key, items, index, run_dir)
        entries.append(entry)
        parts.append(part)
        maps.extend(_map_entry(i, number, index, run_dir) for i in items)
    made = thumbs.make(parts)
    at = {field: i for i, field in enumerate(MAP_FIELDS)}
    for row in maps:
        found = made[row[at["image"]]]["maps"].get(row[at["file"]])
        if found is None or row[at["error"]]:
            continue
        if isinstance(found, str):
            row[at["error"]] = found
            continue
        for field in ("size", "min", "max", "scales"):
            row[at[field]] = found[field]
    width = len(index.metrics)
    for row in maps:  # scores of items written before a metric was added: pad to the list
        if row[at["metrics"]] is not None:
            row[at["metrics"]] += [None] * (width - len(row[at["metrics"]]))
    directions = table.get("higher_is_better") or {}
    return {
        "version": 1, "page_size": IMAGES_PER_PAGE, "thumb": THUMB,
        "options": {"sign": options.sign, "overlay": options.overlay,
                    "overlay_alpha": options.overlay_alpha, "cmap": options.cmap},
        "colour_steps": COLOUR_STEPS,
        "colours": {kind: _hex(colour_table(kind, options)) for kind in KINDS},
        "models": models, "methods": index.methods, "metrics": index.metrics,
        "directions": directions, "classes": index.classes, "map_fields": list(MAP_FIELDS),
        "images": entries, "maps": maps,
    }


def _hex(table: np.ndarray) -> str:
    """A colour table as one hex string, ``rrggbb`` per entry."""
    return "".join(f"{round(255 * float(c)):02x}" for c in table.ravel())


def _write_data(run_dir: Path, data: Mapping[str, Any]) -> None:
    # JSON.parse of one string literal: parsed several times faster than the same object as
    # a JavaScript literal; a <script> rather than a fetch, which file:// pages may not make.
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    _write_if_changed(
        run_dir / "report" / "data.js", f"window.XAI_REPORT=JSON.parse({json.dumps(text)});\n"
    )
    for name in ("report.js", "report.css"):
        source = resources.files("xai_core.report").joinpath("assets", name)
        _write_if_changed(run_dir / "report" / name, source.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- the page


def _load_table(run_dir: Path) -> dict[str, Any]:
    """The run's metrics table (``metrics.json``, as
    :func:`xai_core.report.tables.write_metrics_table` writes it), ``{}`` without one."""
    path = run_dir / "metrics.json"
    if not path.is_file():
        return {}
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise XaiError(f"{path} is not valid JSON: {exc}; `xai run` writes it again") from None
    return table if isinstance(table, dict) else {}


def build_report(
    run_dir: str | Path,
    options: FigureOptions | None = None,
    results: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``report.html`` (and its data and thumbnails under ``report/``) into ``run_dir``;
    returns the page.

    :param options: how maps are drawn; default: the run config's ``figure`` section, if any.
    :param results: the run's ``results.json`` content when the caller holds a newer one than
        the file (the run, before it writes the file a last time); default: the file.
    """
    run_dir = Path(run_dir)
    results = dict(results) if results is not None else read_results(run_dir)
    if options is None:
        options = FigureOptions.from_config((results.get("config") or {}).get("figure"))
    items = load_items(run_dir, results)
    images: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
    synth: list[dict[str, Any]] = []
    for item in items:
        if item.get("kind", "attributor") != "attributor":
            synth.append(item)
        elif item.get("key") is not None:
            images.setdefault(item["key"], []).append(item)
    table = _load_table(run_dir)
    thumbs = Thumbnails(run_dir, options)
    data = page_data(run_dir, results, images, thumbs, table)
    _write_data(run_dir, data)
    for old in run_dir.glob("report-*.html"):  # the pages of earlier versions
        if old.stem.removeprefix("report-").isdigit():
            old.unlink()
    sections = []
    if images:
        sections.append(("attributions", "Attributions", _attributions_section(run_dir)))
    sections += _common_sections(run_dir, results, data["models"], items, synth, thumbs, table)
    write_text(run_dir / "report.html", _page(results, data["models"], sections, bool(images)))
    return run_dir / "report.html"


def _attributions_section(run_dir: Path) -> str:
    grid_link = ""
    if (run_dir / "figures" / "grid.png").is_file():
        grid_link = (
            ' All methods side by side at full resolution: '
            '<a href="figures/grid.png">figures/grid.png</a>.'
        )
    return (
        '<section id="attributions"><h2>Attributions</h2>'
        '<p class="note">One row per input photo (centre-cropped and resized as the model sees '
        "it), one column per method (and model). Each map has its colour key: by default its "
        "ends are the map's own minimum and maximum; a colour scale shared per column or per "
        "row makes maps comparable by eye, and the key then shows the shared range. Signed "
        "maps are blue below zero, white at zero, red above; non-negative maps run from white "
        "to red. The pointer on a map reads its value; a click opens its full figure."
        f"{grid_link}</p>"
        '<div id="controls"></div><nav class="pager" aria-label="pages"></nav>'
        '<div class="scroll" id="grid"><noscript><p class="err">The attributions are drawn '
        "by JavaScript (report/report.js, no network needed): allow scripts for this file."
        "</p></noscript></div>"
        '<nav class="pager" aria-label="pages"></nav></section>'
    )


def _common_sections(
    run_dir: Path,
    results: dict[str, Any],
    models: Sequence[Mapping[str, Any]],
    items: list[dict[str, Any]],
    synth: list[dict[str, Any]],
    thumbs: Thumbnails,
    table: Mapping[str, Any],
) -> list[tuple[str, str, str]]:
    """``(anchor, name, html)`` of the sections below the attributions."""
    parts = []
    if synth:
        parts.append(("synthesis", "Synthesis", _synthesis_section(run_dir, synth, thumbs)))
    section = _metrics_section(table) if table else ""
    if section:
        parts.append(("metrics", "Metrics", section))
    several = len(models) > 1
    failed = [i for i in items if i.get("error")]
    if failed:
        rows = [
            {"image": i.get("key") or "(whole run)",
             **({"model": i.get("model")} if several else {}),
             "method": i.get("label"), "error": i.get("error")}
            for i in failed
        ]
        parts.append((
            "failures", f"Failures ({len(failed)})",
            f'<section id="failures"><details open><summary><h2>Failures ({len(failed)})</h2>'
            f"</summary>{_table(rows)}</details></section>",
        ))
    parts.append(("timings", "Timings", _timings_section(items, several)))
    config = run_dir / "config.yaml"
    if config.is_file():
        parts.append((
            "config", "Config",
            '<section id="config"><details><summary><h2>Resolved config</h2></summary>'
            f"<pre>{_e(config.read_text())}</pre></details></section>",
        ))
    env = results.get("environment", {})
    rows = [
        {"key": k, "value": json.dumps(v) if isinstance(v, dict) else v} for k, v in env.items()
    ]
    parts.append((
        "environment", "Environment",
        '<section id="environment"><details><summary><h2>Environment</h2></summary>'
        f"{_table(rows)}</details></section>",
    ))
    return parts


def _timings_section(items: Iterable[Mapping[str, Any]], several: bool) -> str:
    """Seconds per method, of each model on its own (models are never pooled)."""
    timing: OrderedDict[tuple[Any, str], list[float]] = OrderedDict()
    for item in items:
        if item.get("seconds") is not None and not item.get("error"):
            timing.setdefault((item.get("model"), item["label"]), []).append(float(item["seconds"]))
    rows = [
        {**({"model": model} if several else {}), "method": label, "items": len(v),
         "mean seconds": float(np.mean(v)), "total seconds": float(np.sum(v))}
        for (model, label), v in timing.items()
    ]
    return f'<section id="timings"><h2>Timings</h2>{_table(rows)}</section>'


def _model_facts(models: Sequence[Mapping[str, Any]]) -> str:
    def one(model: Mapping[str, Any]) -> str:
        size = model.get("input_size")
        shape = f", input {'×'.join(map(str, size))}" if isinstance(size, list) and size else ""
        return f"weights: {_e(model.get('weights') or '?')}{_e(shape)}"

    if len(models) == 1:
        return "; " + one(models[0])
    return "<ul>" + "".join(
        f"<li><b>{_e(m['label'])}</b>" + (f" ({_e(m['name'])})" if m.get("name") and
                                           m["name"] != m["label"] else "")
        + f": {one(m)}</li>" for m in models
    ) + "</ul>"


def _page(
    results: dict[str, Any],
    models: Sequence[Mapping[str, Any]],
    sections: list[tuple[str, str, str]],
    scripts: bool,
) -> str:
    summary = results.get("summary", {})
    names = ", ".join(m["label"] for m in models if m.get("label")) if len(models) > 1 else (
        models[0].get("name") or models[0].get("label") or "?" if models else "?"
    )
    title = f"xai-core run: {names}"
    toc = "".join(f'<a href="#{anchor}">{_e(name)}</a>' for anchor, name, _ in sections)
    failed = summary.get("failed", 0)
    body = "".join(text for _, _, text in sections)
    tail = (
        '<script src="report/data.js"></script><script src="report/report.js"></script>'
        if scripts else ""
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{_e(title)}</title><link rel="stylesheet" href="report/report.css"></head><body>'
        f"<header><h1>{_e(title)}</h1><div class=\"facts\">{summary.get('items', 0)} item(s), "
        f"{'<b style=color:#b00020>' if failed else ''}{failed} failed"
        f"{'</b>' if failed else ''}; {_timing(results)}{_model_facts(models)}</div>"
        f'<nav aria-label="contents">{toc}</nav></header>'
        f"<main>{body}</main>{tail}</body></html>\n"
    )


