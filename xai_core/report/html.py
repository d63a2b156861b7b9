"""``report.html``: a static page per run that opens in any browser with no network.

Built only from what a run wrote (``results.json``, ``config.yaml``, maps, figures, metric
tables), so ``xai report RUN_DIR`` can rebuild it at any time. Large runs are split into pages of
:data:`IMAGES_PER_PAGE` images (``report.html``, ``report-2.html``, ...) and every image is
lazy-loaded, so a run over thousands of images never becomes one giant page.

What the page shows, top to bottom (a sticky header holds the title, a table of contents and the
maps/overlays switch):

- **Attributions**: one row per input photo (its thumbnail, target and predicted class with
  their probabilities, the top 5 when the run recorded them) and one column per attributor (and
  model, when a run has several); each cell holds the map or its overlay on the photo, drawn with
  the run's :class:`~xai_core.report.figures.FigureOptions`, with its colour bar (end labels: the
  map's range), the time it took and the item's metric scores. Failed items say why.
- **Synthesized images**: each figure once, as a card with a one-line summary per image.
- **Metrics** (mean ± standard error over n images, with each metric's direction), **Failures**,
  **Timings**, the resolved **Config** and the **Environment** (the last two folded).

Thumbnails are JPEGs at display size under ``report/`` (about 1/20 of the PNG figures they link
to), so the page stays light: the full-resolution PNGs are one click away. The report makes them
from the run's files (:class:`Thumbnails`); the runner knows nothing of them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import json
import os
import shutil
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from xai_core.errors import XaiError
from xai_core.io import atomic_open, read_array, write_json, write_text
from xai_core.report.figures import (
    FigureOptions,
    RenderedMap,
    overlay,
    render_map,
    target_text,
)
from xai_core.store import load_items

__all__ = ["build_report", "IMAGES_PER_PAGE", "THUMB", "Thumbnails"]

IMAGES_PER_PAGE = 20
#: Width in CSS pixels of a map thumbnail (and of the JPEG written for it).
THUMB = 160
#: Width of a synthesis figure's thumbnail.
SYNTH_THUMB = 480
JPEG_QUALITY = 85

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;
line-height:1.35}
main{padding:0 1rem 2rem}
header{position:sticky;top:0;z-index:5;background:#fff;border-bottom:1px solid #ddd;
padding:.4rem 1rem}
h1{font-size:1.15rem;margin:0} h2{font-size:1.05rem;margin:1.6rem 0 .4rem;display:inline}
.facts{font-size:.8rem;color:#444}
nav{font-size:.85rem;display:flex;flex-wrap:wrap;gap:.2rem .8rem;align-items:center}
nav label{margin-left:auto;white-space:nowrap;cursor:pointer}
section{margin-top:1.2rem;scroll-margin-top:5.5rem}
details>summary{cursor:pointer;margin:1rem 0 .4rem}
.scroll{overflow-x:auto;max-width:100%;border:1px solid #eee}
table{border-collapse:separate;border-spacing:0} td,th{border:1px solid #e3e3e3;
padding:4px 6px;font-size:.8rem;vertical-align:top;text-align:left}
th{background:#f4f4f4}
.grid th.photo,.grid td.photo{position:sticky;left:0;z-index:2;background:#fff;
box-shadow:2px 0 3px rgba(0,0,0,.08)}
.grid th.photo{background:#f4f4f4}
.grid img{width:160px;height:160px;object-fit:contain;display:block}
.cap{font-size:.72rem;color:#444;max-width:160px;overflow-wrap:anywhere}
.cap ol{margin:.2rem 0 0;padding-left:1.1rem}
.err{color:#b00020;font-size:.75rem;max-width:160px;overflow-wrap:anywhere}
td.failed{background:#fff4f4}
.cbar{position:relative;height:10px;width:160px;margin-top:2px;border:1px solid #bbb}
.cbar span{position:absolute;top:11px;font-size:.65rem;color:#333;white-space:nowrap}
.cbar .lo{left:0} .cbar .hi{right:0} .cbar .zero{transform:translateX(-50%)}
.cbar .zero::before{content:"";position:absolute;left:50%;top:-12px;height:11px;
border-left:1px solid #333}
.cell{margin-bottom:.3rem} .cell .cap{margin-top:14px}
img.o{display:none}
body:has(#overlays:checked) img.m{display:none}
body:has(#overlays:checked) img.o{display:block}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,480px),1fr));gap:1rem}
.card{border:1px solid #e3e3e3;padding:.5rem;min-width:0}
.card h3{font-size:.9rem;margin:0 0 .3rem}
.card img{width:100%;height:auto;display:block}
.card ul{font-size:.78rem;margin:.3rem 0 0;padding-left:1.1rem}
pre{background:#f7f7f7;padding:.6rem;font-size:.78rem;overflow:auto}
.note{font-size:.78rem;color:#555;margin:.3rem 0}
@media (max-width:600px){
 main{padding:0 .5rem 2rem} header{padding:.3rem .5rem}
 .grid img{width:112px;height:112px} .cbar{width:112px} .cap,.err{max-width:112px}
 .grid td.photo img{width:96px;height:96px} .grid td.photo .cap{max-width:96px}
}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _probability(value: Any) -> str:
    return f"{float(value):.2f}" if value is not None else "?"


# --------------------------------------------------------------------------- thumbnails


class Thumbnails:
    """JPEG thumbnails under ``report/``, made once and kept while the figure options stay the
    same (a stamp file holds their digest; other options start the folder afresh).

    They are made from the run's files only (its input photos and saved maps), whatever is
    missing or older than its source: by :meth:`make` for a whole report, one thread per core
    and one photo's row per task, then looked up by :meth:`picture` and :meth:`map` as the
    pages are written.
    """

    def __init__(self, run_dir: Path, options: FigureOptions):
        self.run_dir = run_dir
        self.root = run_dir / "report"
        self.options = options
        self._last = threading.local()  # each thread's last decoded photo (see photo)
        stamp = hashlib.sha256(
            json.dumps(dataclasses.asdict(options), sort_keys=True).encode()
        ).hexdigest()[:16]
        stamp_file = self.root / "options.txt"
        if not stamp_file.is_file() or stamp_file.read_text().strip() != stamp:
            shutil.rmtree(self.root, ignore_errors=True)
            write_text(stamp_file, stamp + "\n")

    def _fresh(self, out: Path, source: Path) -> bool:
        return out.is_file() and out.stat().st_mtime >= source.stat().st_mtime

    def _save(self, out: Path, pixels: np.ndarray | Image.Image, width: int) -> None:
        image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(
            (np.clip(pixels, 0, 1) * 255 + 0.5).astype(np.uint8)
        )
        image = image.convert("RGB")
        if image.width > width:
            # Bilinear: a thumbnail at most a few times smaller than its source looks the same
            # as with Lanczos, at a third of the time (a run makes one per map).
            height = max(1, round(image.height * width / image.width))
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        with atomic_open(out, "wb") as handle:
            image.save(handle, format="JPEG", quality=JPEG_QUALITY)

    def photo(self, rel: str) -> np.ndarray:
        """An image file of the run (an input photo) as float RGB ``[H, W, 3]`` in ``[0, 1]``,
        decoded once for its thumbnail and all the overlays of its row (each thread keeps the
        last one it decoded)."""
        last = getattr(self._last, "photo", None)
        if last is None or last[0] != rel:
            with Image.open(self.run_dir / rel) as photo:
                last = (rel, np.asarray(photo.convert("RGB"), np.float32) / 255)
            self._last.photo = last
        return last[1]

    def make(self, rows: Iterable[tuple[str, Iterable[str]]], threads: int | None = None) -> None:
        """Make the missing thumbnails of ``rows``: each an input photo and the maps shown over
        it (paths in the run), a row per task on ``threads`` threads (default: one per core;
        decoding, resizing and JPEG encoding release the GIL)."""
        def row(photo: str, maps: Iterable[str]) -> None:
            has_photo = (self.run_dir / photo).is_file()
            if has_photo:
                self.picture(photo, THUMB)
            for map_rel in maps:
                if (self.run_dir / map_rel).is_file():
                    self.map(map_rel, photo if has_photo else None)

        rows = list(rows)
        workers = max(1, min(threads or os.cpu_count() or 1, len(rows)))
        if workers == 1:
            for photo, maps in rows:
                row(photo, maps)
            return
        with ThreadPoolExecutor(workers) as pool:
            for done in [pool.submit(row, photo, maps) for photo, maps in rows]:
                done.result()

    def picture(self, rel: str, width: int) -> str:
        """Thumbnail of an image file (input photo, figure) of the run: its path in the run."""
        source = self.run_dir / rel
        out = self.root / Path(rel).with_suffix(".jpg")
        if not self._fresh(out, source):
            self._save(out, self.photo(rel), width)
        return str(out.relative_to(self.run_dir))

    def map(self, map_rel: str, photo_rel: str | None) -> tuple[str, str | None, str]:
        """Map and overlay thumbnails of a map file, and its colour bar (HTML).

        The colour bar is kept beside the thumbnails (``.bar.json``), so a report rebuilt over
        unchanged maps (a resumed run) decodes nothing."""
        source = self.run_dir / map_rel
        out_map, out_overlay, out_bar = self._map_files(map_rel)
        fresh = self._fresh(out_map, source) and self._fresh(out_bar, source) and (
            photo_rel is None or self._fresh(out_overlay, source)
        )
        overlay_rel = str(out_overlay.relative_to(self.run_dir)) if photo_rel else None
        if fresh:
            try:
                bar = json.loads(out_bar.read_text())["html"]
                return str(out_map.relative_to(self.run_dir)), overlay_rel, bar
            except (OSError, ValueError, KeyError, TypeError):
                pass  # an unreadable colour bar file is made again below
        photo = self.photo(photo_rel) if photo_rel is not None else None
        bar = self._make_map(read_array(source), photo, out_map, out_overlay, out_bar)
        return str(out_map.relative_to(self.run_dir)), overlay_rel, bar

    def _map_files(self, map_rel: str) -> tuple[Path, Path, Path]:
        # Names keep every dot of the map's: several targets write <method>.<rank>_<class>.npy.
        base = self.root / Path(map_rel).with_suffix("")
        return (
            base.parent / f"{base.name}.map.jpg",
            base.parent / f"{base.name}.overlay.jpg",
            base.parent / f"{base.name}.bar.json",
        )

    def _make_map(
        self, saliency: np.ndarray, photo: np.ndarray | None, out_map: Path, out_overlay: Path,
        out_bar: Path,
    ) -> str:
        rendered = render_map(saliency, self.options)
        self._save(out_map, rendered.rgb, THUMB)
        if photo is not None:
            pixels = photo
            if pixels.shape[:2] != rendered.rgb.shape[:2]:
                size = rendered.rgb.shape[1], rendered.rgb.shape[0]
                pixels = np.asarray(
                    Image.fromarray((pixels * 255 + 0.5).astype(np.uint8)).resize(size),
                    np.float32,
                ) / 255
            self._save(out_overlay, overlay(pixels, rendered, self.options), THUMB)
        bar = _colour_bar(rendered)
        write_json(out_bar, {"html": bar})
        return bar


def _colour_bar(rendered: RenderedMap) -> str:
    """The map's colour bar as a CSS gradient, its range at the ends (and zero where it sits)."""
    picks = np.linspace(0, len(rendered.bar) - 1, 9).round().astype(int)
    stops = ",".join(
        "#" + "".join(f"{round(255 * float(c)):02x}" for c in rendered.bar[i]) for i in picks
    )
    labels = []
    for value, label in rendered.ticks:
        if value == rendered.low:
            labels.append(f'<span class="lo">{_e(label)}</span>')
        elif value == rendered.high:
            labels.append(f'<span class="hi">{_e(label)}</span>')
        else:
            # Zero gets a tick always, a label only where it does not run into an end label.
            at = 100 * (value - rendered.low) / (rendered.high - rendered.low)
            text = _e(label) if 25 <= at <= 75 else ""
            labels.append(f'<span class="zero" style="left:{at:.1f}%">{text}</span>')
    return (
        f'<div class="cbar" title="{_e(rendered.legend)}" data-low="{rendered.low:.6g}" '
        f'data-high="{rendered.high:.6g}" style="background:linear-gradient(to right,{stops})">'
        f'{"".join(labels)}</div>'
    )


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


# --------------------------------------------------------------------------- the page


def _page_name(index: int) -> str:
    return "report.html" if index == 0 else f"report-{index + 1}.html"


def _load(run_dir: Path) -> dict[str, Any]:
    results_file = run_dir / "results.json"
    if not results_file.is_file():
        raise XaiError(f"{str(run_dir)!r} holds no results.json; give the output folder of a run")
    try:
        return json.loads(results_file.read_text())
    except json.JSONDecodeError as exc:
        raise XaiError(f"{results_file} is not valid JSON: {exc}") from None


def build_report(run_dir: str | Path, options: FigureOptions | None = None) -> Path:
    """Write ``report.html`` (and further pages) into ``run_dir``; returns the first page.

    :param options: how maps are drawn; default: the run config's ``figure`` section, if any.
    """
    run_dir = Path(run_dir)
    results = _load(run_dir)
    if options is None:
        options = FigureOptions.from_config((results.get("config") or {}).get("figure"))
    items: list[dict[str, Any]] = load_items(run_dir, results)
    models = list(OrderedDict.fromkeys(i.get("model") for i in items if i.get("model")))
    several_models = len(models) > 1
    photos: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
    columns: list[tuple[str | None, str]] = []
    synth: list[dict[str, Any]] = []
    for item in items:
        if item.get("kind", "attributor") != "attributor":
            synth.append(item)
            continue
        if item.get("key") is None:
            continue
        photos.setdefault(item["key"], []).append(item)
        column = (item.get("model") if several_models else None, item["label"])
        if column not in columns:
            columns.append(column)

    thumbs = Thumbnails(run_dir, options)
    thumbs.make(_thumbnail_rows(i for row in photos.values() for i in row))
    directions = ((results.get("metrics") or {}).get("higher_is_better")) or {}
    keys = list(photos)
    pages = [keys[i : i + IMAGES_PER_PAGE] for i in range(0, len(keys), IMAGES_PER_PAGE)] or [[]]
    common = _common_sections(run_dir, results, items, synth, thumbs)
    for index, page_keys in enumerate(pages):
        nav = ""
        if len(pages) > 1:
            nav = '<nav class="pages">pages: ' + "".join(
                f'<a href="{_page_name(i)}">{"<b>" if i == index else ""}{i + 1}'
                f"{'</b>' if i == index else ''}</a>"
                for i in range(len(pages))
            ) + "</nav>"
        grid = ""
        if keys:
            rows = "".join(
                _photo_row(run_dir, key, photos[key], columns, thumbs, directions)
                for key in page_keys
            )
            header = '<tr><th class="photo">image</th>' + "".join(
                f"<th>{_e(label)}" + (f"<br><small>{_e(model)}</small>" if model else "") + "</th>"
                for model, label in columns
            ) + "</tr>"
            grid_link = ""
            if (run_dir / "figures" / "grid.png").is_file():
                grid_link = (
                    ' All methods side by side at full resolution: '
                    '<a href="figures/grid.png">figures/grid.png</a>.'
                )
            grid = (
                '<section id="attributions"><h2>Attributions</h2>'
                f'<p class="note">One row per input photo (centre-cropped and resized as the '
                f"model sees it). Each map has its colour bar: its ends are the map's minimum and "
                f"maximum; signed maps are blue below zero, white at zero, red above; "
                f"non-negative maps run from white to red. Click a map for its full figure."
                f"{grid_link}</p>{nav}"
                f'<div class="scroll"><table class="grid">{header}{rows}</table></div>{nav}'
                "</section>"
            )
        sections = [("attributions", "Attributions")] if keys else []
        sections += [(anchor, name) for anchor, name, _ in common]
        body = grid + "".join(text for _, _, text in common)
        write_text(run_dir / _page_name(index), _page(results, models, sections, body))
    return run_dir / "report.html"


def _thumbnail_rows(items: Iterable[Mapping[str, Any]]) -> list[tuple[str, list[str]]]:
    """The input photos of the grid's items, each with the map files drawn over it: what
    :meth:`Thumbnails.make` makes before the pages are written, which then find them made."""
    rows: OrderedDict[str, list[str]] = OrderedDict()
    for item in items:
        maps = rows.setdefault(_photo_of(item), [])
        map_rel = (item.get("files") or {}).get("map")
        if map_rel and not item.get("error"):
            maps.append(map_rel)
    return list(rows.items())


def _photo_of(item: Mapping[str, Any]) -> str:
    """The input photo (model's view) of an item: beside its ``files.input`` array (a model's
    own ``inputs/`` folder when a run compares models), else the run's ``inputs/<key>.png``."""
    array = (item.get("files") or {}).get("input")
    return str(Path(array).with_suffix(".png")) if array else f"inputs/{item['key']}.png"


def _photo_row(
    run_dir: Path,
    key: str,
    items: list[dict[str, Any]],
    columns: list[tuple[str | None, str]],
    thumbs: Thumbnails,
    directions: Mapping[str, bool],
) -> str:
    first = items[0]
    photo = next((p for p in map(_photo_of, items) if (run_dir / p).is_file()), _photo_of(first))
    has_photo = (run_dir / photo).is_file()
    caption = [f"<b>{_e(key)}</b>"]
    source = first.get("image")
    if source and source != key:
        caption.append(f"<br><small>{_e(source)}</small>")
    if has_photo:
        targets = list(OrderedDict.fromkeys(
            target_text(i) for i in items if i.get("target") is not None
        ))
        for text in targets:
            caption.append(f"<br>target: {_e(text)}")
        if first.get("predicted_label") is not None:
            caption.append(
                f"<br>predicted: {_e(first['predicted_label'])} "
                f"({_probability(first.get('predicted_probability'))})"
            )
        top5 = first.get("top5")
        if top5:
            caption.append(
                "<br>top 5:<ol>"
                + "".join(
                    f"<li>{_e(t.get('label'))} ({_probability(t.get('probability'))})</li>"
                    for t in top5
                )
                + "</ol>"
            )
        thumb = thumbs.picture(photo, THUMB)
        cell = (
            f'<td class="photo"><a href="{_e(photo)}"><img loading="lazy" src="{_e(thumb)}" '
            f'alt="input {_e(key)}"></a><div class="cap">{"".join(caption)}</div></td>'
        )
    else:
        error = first.get("error") or "no input image was written"
        cell = (
            f'<td class="photo failed"><div class="cap">{"".join(caption)}</div>'
            f'<div class="err">input failed: {_e(error)}</div></td>'
        )
    cells = [cell]
    several_targets = len({repr(i.get("target")) for i in items}) > 1
    for model, label in columns:
        mine = [
            i for i in items
            if i["label"] == label and (model is None or i.get("model") == model)
        ]
        if not has_photo or not mine:
            cells.append('<td class="failed"></td>' if not has_photo else "<td></td>")
            continue
        parts = [_map_cell(run_dir, i, thumbs, directions, several_targets) for i in mine]
        failed = all(i.get("error") for i in mine)
        cells.append(f'<td{" class=failed" if failed else ""}>{"".join(parts)}</td>')
    return f'<tr class="photo-row" data-key="{_e(key)}">{"".join(cells)}</tr>'


def _map_cell(
    run_dir: Path,
    item: Mapping[str, Any],
    thumbs: Thumbnails,
    directions: Mapping[str, bool],
    several_targets: bool,
) -> str:
    target = ""
    if several_targets:
        target = f'<div class="cap">target: {_e(target_text(item))}</div>'
    if item.get("error"):
        return f'<div class="cell">{target}<div class="err">failed: {_e(item["error"])}</div></div>'
    files = item.get("files", {})
    map_rel = files.get("map")
    if not map_rel or not (run_dir / map_rel).is_file():
        missing = f"map file missing: {map_rel}"
        return f'<div class="cell">{target}<div class="err">{_e(missing)}</div></div>'
    photo = _photo_of(item)
    map_thumb, overlay_thumb, bar = thumbs.map(
        map_rel, photo if (run_dir / photo).is_file() else None
    )
    link = files.get("figure", map_rel)
    alt = f"{item['label']} map of {item['key']}"
    images = f'<img class="m" loading="lazy" src="{_e(map_thumb)}" alt="{_e(alt)}">'
    if overlay_thumb:
        images += (
            f'<img class="o" loading="lazy" src="{_e(overlay_thumb)}" alt="{_e(alt)} on the photo">'
        )
    facts = [f"{float(item.get('seconds') or 0):.2f} s"]
    for metric, value in (item.get("metrics") or {}).items():
        arrow = {True: " ↑", False: " ↓"}.get(directions.get(metric), "")
        shown = "n/a" if value is None else _number(float(value))
        facts.append(f"{_e(metric)}{arrow}: {shown}")
    return (
        f'<div class="cell">{target}<a href="{_e(link)}">{images}</a>{bar}'
        f'<div class="cap">{"<br>".join(facts)}</div></div>'
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
                f'<a href="{_e(shown)}"><img loading="lazy" src="{_e(thumb)}" '
                f'alt="{_e(title)}"></a>'
            )
        lines = "".join(_record_line(item) for item in members)
        cards.append(f'<div class="card"><h3>{_e(title)}</h3>{picture}<ul>{lines}</ul></div>')
    return (
        '<section id="synthesis"><details open><summary><h2>Synthesized images</h2></summary>'
        f'<p class="note">Click a figure for the full-resolution PNG.</p>'
        f'<div class="cards">{"".join(cards)}</div></details></section>'
    )


def _common_sections(
    run_dir: Path,
    results: dict[str, Any],
    items: list[dict[str, Any]],
    synth: list[dict[str, Any]],
    thumbs: Thumbnails,
) -> list[tuple[str, str, str]]:
    """``(anchor, name, html)`` of the sections every page repeats."""
    parts = []
    if synth:
        parts.append(("synthesis", "Synthesis", _synthesis_section(run_dir, synth, thumbs)))
    metrics_file = run_dir / "metrics.json"
    if metrics_file.is_file():
        # The table xai_core.report.tables.write_metrics_table writes: one row per method, one
        # {"mean", "sem", "n"} cell per metric.
        section = _metrics_section(json.loads(metrics_file.read_text()))
        if section:
            parts.append(("metrics", "Metrics", section))
    failed = [i for i in items if i.get("error")]
    if failed:
        rows = [
            {"image": i.get("key") or "(whole run)", "method": i.get("label"),
             "error": i.get("error")}
            for i in failed
        ]
        parts.append((
            "failures", f"Failures ({len(failed)})",
            f'<section id="failures"><details open><summary><h2>Failures ({len(failed)})</h2>'
            f"</summary>{_table(rows)}</details></section>",
        ))
    timing: dict[str, list[float]] = {}
    for item in items:
        if item.get("seconds") is not None and not item.get("error"):
            timing.setdefault(item["label"], []).append(float(item["seconds"]))
    table = _table([
        {"method": k, "items": len(v), "mean seconds": float(np.mean(v)),
         "total seconds": float(np.sum(v))}
        for k, v in timing.items()
    ])
    parts.append(("timings", "Timings", f'<section id="timings"><h2>Timings</h2>{table}</section>'))
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


def _timing(results: dict[str, Any]) -> str:
    """This invocation's wall time and the run's compute (every item's seconds, resumed ones
    included): a resumed run is quick to finish but not cheap to make, and both matter."""
    wall = results.get("wall_seconds", results.get("seconds"))
    text = f"wall time {float(wall or 0):.1f} s"
    if results.get("compute_seconds") is not None:
        text += f", compute {float(results['compute_seconds']):.1f} s (all items)"
    return text


def _page(
    results: dict[str, Any],
    models: Iterable[str],
    sections: list[tuple[str, str]],
    body: str,
) -> str:
    summary = results.get("summary", {})
    model = results.get("model", {})
    names = ", ".join(models) or model.get("name", "?")
    title = f"xai-core run: {names}"
    toc = "".join(f'<a href="#{anchor}">{_e(name)}</a>' for anchor, name in sections)
    failed = summary.get("failed", 0)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{_e(title)}</h1><div class=\"facts\">{summary.get('items', 0)} item(s), "
        f"{'<b style=color:#b00020>' if failed else ''}{failed} failed"
        f"{'</b>' if failed else ''}; weights: {_e(model.get('weights', '?'))}; "
        f"{_timing(results)}</div>"
        f'<nav aria-label="contents">{toc}<label><input type="checkbox" id="overlays"> '
        "show overlays on the photo</label></nav></header>"
        f"<main>{body}</main></body></html>\n"
    )
