"""The per-item attribution figure, drawn without matplotlib: input | map | colour key | overlay,
the title above and the sign convention below, as one small PNG.

A run draws one such figure per (image, method); through matplotlib each cost about six times the
attribution of a small model (0.38 s against 0.06 s, saliency on EfficientNet-Lite0 at 64 px).
Here the colours come from :func:`~xai_core.report.figures.render_map` and
:func:`~xai_core.report.figures.overlay` (the one home of the scaling and colour maps, shared with
the grid and the report), and PIL puts the panels, the text and the colour key together:

- **panels** are the model-input image, the map and the overlay at the input's resolution,
  enlarged by a whole factor (nearest neighbour, so each map pixel stays a crisp square) until
  the longer side is at least :data:`PANEL_SIDE` pixels;
- the **colour key** between map and overlay runs from the map's maximum (top) to its minimum,
  labelled at both ends and at zero on a signed map, drawn through the same function as the
  map; a target's **region** (a detection box or a segmentation mask) is outlined in cyan on the
  input and the overlay;
- text is DejaVu Sans (matplotlib's default font, so the figure reads as the grid's), PIL's own
  font where that file is missing;
- the PNG is a 256-colour palette image (map colours come from a 257-entry colour map, and the
  photos lose little at 256 colours without dithering) at zlib level 3: at 224 px input about
  65 KB for a smooth map (Grad-CAM) to 115 KB for gradient noise, against 400-600 KB through
  matplotlib; at 64 px input about 20 KB. Drawing one takes 5-15 ms
  (``benchmarks/bench_figures.py`` measures a run with figures against one without).
"""

from __future__ import annotations

import functools
import io
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from xai_core.io import write_bytes
from xai_core.report.figures import FigureOptions, RenderedMap, overlay, render_map

__all__ = [
    "PANEL_SIDE", "OUTLINE", "GRID_CELL", "attribution_figure", "attribution_image",
    "grid_figure", "grid_image",
]

#: The panels of a figure are enlarged by a whole factor until their longer side is at least
#: this many pixels (a 64 px input is drawn 3x); larger inputs are drawn at their own size.
PANEL_SIDE = 192
#: The colour of a target region's outline (as the grid's).
OUTLINE = (0, 229, 255)

_MARGIN = 8
_GAP = 10
_BAR_WIDTH = 12
_TEXT = (0, 0, 0)
_NOTE = (68, 68, 68)
_COMPRESS_LEVEL = 3
_SIZES = {"title": 14, "panel": 12, "tick": 10, "legend": 11}


@functools.cache
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    path = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf")
    try:
        return ImageFont.truetype(path, size)
    except OSError:
        return ImageFont.load_default(size=size)


#: Rendering text is most of a figure's cost, and most of its text repeats from figure to
#: figure (panel names, legends, titles of one method, tick labels): each string is rendered
#: once, as a mask, and stamped. FreeType is not thread-safe, hence the lock around it.
_FONT_LOCK = threading.Lock()


@functools.lru_cache(maxsize=2048)
def _stamp(text: str, size: int, anchor: str) -> tuple[Image.Image, int, int]:
    """``text`` as an ``L`` mask and the offset of its top-left corner from the anchor point."""
    font = _font(size)
    with _FONT_LOCK:
        left, top, right, bottom = font.getbbox(text, anchor=anchor)
        mask = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
        ImageDraw.Draw(mask).text((-left, -top), text, fill=255, font=font, anchor=anchor)
    return mask, left, top


def _write(
    canvas: Image.Image, xy: tuple[float, float], text: str, size: int, anchor: str,
    colour: tuple[int, int, int] = (0, 0, 0),
) -> None:
    mask, left, top = _stamp(text, size, anchor)
    x, y = round(xy[0]) + left, round(xy[1]) + top
    canvas.paste(colour, (x, y, x + mask.width, y + mask.height), mask)


def _text_width(text: str, size: int) -> float:
    with _FONT_LOCK:
        return _font(size).getlength(text)


def _to_bytes(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def _panel(rgb: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """Colours ``[H, W, 3]`` in [0, 1] as an image of ``size`` (width, height): each pixel a
    square of a whole number of pixels (nearest neighbour)."""
    image = Image.fromarray(_to_bytes(rgb))
    return image if image.size == size else image.resize(size, Image.Resampling.NEAREST)


def _region_mask(region: Any, shape: tuple[int, int], factor: int) -> Image.Image | None:
    """The pixels of a panel of ``shape`` (enlarged by ``factor``) that outline ``region``, as
    a mask: a box ``[x0, y0, x1, y1]`` in input pixels, or the border of a boolean mask of any
    resolution (scaled to the panel); ``None`` for no region, or a mask that is empty or full."""
    if region is None:
        return None
    h, w = shape
    if isinstance(region, (list, tuple)):
        x0, y0, x1, y1 = (float(v) for v in region)
        box = Image.new("1", (w, h), 0)
        ImageDraw.Draw(box).rectangle(
            [round(x0 * factor), round(y0 * factor),
             round(x1 * factor) - 1, round(y1 * factor) - 1], outline=1, width=2,
        )
        return box
    mask = np.asarray(region.cpu().numpy() if hasattr(region, "cpu") else region, dtype=bool)
    if mask.ndim != 2 or not 0 < mask.sum() < mask.size:
        return None
    inside = np.asarray(Image.fromarray(mask).resize((w, h), Image.Resampling.NEAREST),
                        dtype=bool)
    padded = np.pad(inside, 1, mode="edge")
    neighbours_out = (
        ~padded[:-2, 1:-1] | ~padded[2:, 1:-1] | ~padded[1:-1, :-2] | ~padded[1:-1, 2:]
    )
    border = inside & neighbours_out
    # Two pixels wide, as the grid's outline reads at this size.
    right = np.pad(border, ((0, 0), (1, 0)))[:, :-1]
    below = np.pad(border, ((1, 0), (0, 0)))[:-1]
    return Image.fromarray(border | right | below)


def _title_lines(title: str, width: int) -> list[str]:
    """The title's lines (its own line breaks), each too-wide line broken at ``"; "``."""
    lines = []
    for line in title.split("\n"):
        parts = line.split("; ")
        current = parts[0]
        for part in parts[1:]:
            joined = f"{current}; {part}"
            if _text_width(joined, _SIZES["title"]) <= width:
                current = joined
            else:
                lines.append(current + ";")
                current = part
        lines.append(current)
    return lines


def _colour_key(
    canvas: Image.Image, rendered: RenderedMap, left: int, top: int, height: int
) -> None:
    """The colour bar at ``(left, top)``, ``height`` tall, from ``rendered.high`` (top) down to
    ``rendered.low`` (``rendered`` has one bar entry per row), framed, with its ticks (both
    ends, zero on a signed map) right of it."""
    bar = Image.fromarray(_to_bytes(rendered.bar[::-1])[:, None])
    canvas.paste(bar.resize((_BAR_WIDTH, height), Image.Resampling.NEAREST), (left, top))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle([left - 1, top - 1, left + _BAR_WIDTH, top + height], outline=_TEXT)
    low, high = rendered.low, rendered.high
    span = (low, high) if high > low else (low - 0.5, high + 0.5)
    for value, label in rendered.ticks:
        y = top + round((span[1] - value) / (span[1] - span[0]) * (height - 1))
        x = left + _BAR_WIDTH
        draw.line([x, y, x + 3, y], fill=_TEXT)
        _write(canvas, (x + 5, y), label, _SIZES["tick"], "lm")


def _layout(shape: tuple[int, int], title: str) -> dict[str, Any]:
    h, w = shape
    factor = max(1, math.ceil(PANEL_SIDE / max(h, w)))
    ph, pw = h * factor, w * factor
    key_width = _BAR_WIDTH + 50
    width = 2 * _MARGIN + 3 * pw + key_width + 3 * _GAP
    lines = _title_lines(title, width - 2 * _MARGIN)
    title_height = len(lines) * (_SIZES["title"] + 4)
    panel_top = _MARGIN + title_height + _GAP + _SIZES["panel"] + 4
    lefts = [_MARGIN, _MARGIN + pw + _GAP, _MARGIN + 2 * pw + 2 * _GAP + key_width]
    height = panel_top + ph + _GAP + _SIZES["legend"] + _MARGIN
    return {"factor": factor, "panel": (ph, pw), "size": (height, width), "lines": lines,
            "panel_top": panel_top, "lefts": lefts, "key_left": lefts[1] + pw + _GAP}


def attribution_image(
    image: np.ndarray,
    saliency: np.ndarray,
    title: str,
    options: FigureOptions | None = None,
    region: Any = None,
) -> Image.Image:
    """The figure as an RGB image: input | map | colour key | overlay (each panel titled), the
    ``title`` above and the map's sign convention below; ``region`` (a target kind's box
    ``[x0, y0, x1, y1]`` in input pixels, or a boolean mask) outlined on the input and the
    overlay. ``image`` is ``[H, W, 3]`` in ``[0, 1]``, ``saliency`` ``[H, W]``."""
    options = options or FigureOptions()
    image = np.asarray(image, dtype=np.float32)
    saliency = np.asarray(saliency)
    if saliency.ndim != 2:
        raise ValueError(f"a map to draw must be [H, W], got shape {saliency.shape}")
    plan = _layout(saliency.shape, title)
    (ph, pw), panel_top = plan["panel"], plan["panel_top"]
    rendered = render_map(saliency, options, bar_steps=ph)
    panels = [image, rendered.rgb, overlay(image, rendered, options)]
    height, width = plan["size"]
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    outline = _region_mask(region, (ph, pw), plan["factor"])
    for index, (left, panel) in enumerate(zip(plan["lefts"], panels)):
        canvas.paste(_panel(panel, (pw, ph)), (left, panel_top))
        if outline is not None and index != 1:
            canvas.paste(OUTLINE, (left, panel_top, left + pw, panel_top + ph), outline)
    _colour_key(canvas, rendered, plan["key_left"], panel_top, ph)
    _text(canvas, plan, options, rendered.legend)
    return canvas
def attribution_figure(
    path: str | Path,
    image: np.ndarray,
    saliency: np.ndarray,
    title: str,
    options: FigureOptions | None = None,
    region: Any = None,
) -> None:
    """Save :func:`attribution_image` as a 256-colour PNG, atomically. Safe to call from any
    thread (no shared state but the cached fonts)."""
    _save_png(path, attribution_image(image, saliency, title, options, region))


def _text(
    canvas: Image.Image, plan: dict[str, Any], options: FigureOptions, legend: str
) -> None:
    height, width = plan["size"]
    for i, line in enumerate(plan["lines"]):
        _write(canvas, (width / 2, _MARGIN + i * (_SIZES["title"] + 4)), line, _SIZES["title"],
               "ma")
    panel_top, pw = plan["panel_top"], plan["panel"][1]
    names = ("input (model's view)", "map", options.overlay.replace("_", " "))
    for left, name in zip(plan["lefts"], names):
        _write(canvas, (left + pw / 2, panel_top - 3), name, _SIZES["panel"], "md")
    _write(canvas, (plan["key_left"], panel_top - 3), "value", _SIZES["tick"], "ld")
    _write(canvas, (width / 2, height - _MARGIN), legend, _SIZES["legend"], "md", _NOTE)


#: The side of a grid cell: each image and map is fitted into a square of this many pixels
#: (small inputs enlarged by a whole factor, larger ones reduced by averaging).
GRID_CELL = 160
_RED = (176, 0, 32)


def _fitted(rgb: np.ndarray, side: int) -> Image.Image:
    """Colours ``[H, W, 3]`` in [0, 1] fitted into a ``side`` square, aspect kept: enlarged by
    a whole factor (nearest neighbour) when that fits, else reduced by averaging."""
    h, w = rgb.shape[:2]
    image = Image.fromarray(_to_bytes(rgb))
    factor = side // max(h, w)
    if factor >= 1:
        size = (w * factor, h * factor)
        return image if factor == 1 else image.resize(size, Image.Resampling.NEAREST)
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return image.resize(size, Image.Resampling.BOX)


def _elided(text: str, size: int, width: int) -> str:
    """``text``, cut with an ellipsis to fit ``width`` pixels."""
    if _text_width(text, size) <= width:
        return text
    while text and _text_width(text + "…", size) > width:
        text = text[:-1]
    return text + "…"


def _horizontal_key(
    canvas: Image.Image, rendered: RenderedMap, left: int, top: int, width: int
) -> None:
    """A map's colour bar, ``width`` wide, with its ticks below."""
    bar = Image.fromarray(_to_bytes(rendered.bar)[None])
    canvas.paste(bar.resize((width, 8), Image.Resampling.NEAREST), (left, top))
    draw = ImageDraw.Draw(canvas)
    low, high = rendered.low, rendered.high
    span = (low, high) if high > low else (low - 0.5, high + 0.5)
    ticks = rendered.ticks
    for i, (value, label) in enumerate(ticks):
        x = left + round((value - span[0]) / (span[1] - span[0]) * (width - 1))
        draw.line([x, top + 8, x, top + 10], fill=_TEXT)
        anchor = "la" if i == 0 else ("ra" if i == len(ticks) - 1 else "ma")
        _write(canvas, (x, top + 11), label, _SIZES["tick"] - 1, anchor)


def grid_image(
    rows: Sequence[tuple[str, np.ndarray]],
    columns: Sequence[str],
    maps: dict[tuple[int, int], np.ndarray],
    options: FigureOptions | None = None,
) -> Image.Image:
    """Methods side by side per image, as in Simonyan et al. (2014), Fig. 2: a row per image
    (titled with its lines), a column per method (labelled on the first row), each map with its
    own colour bar (end labels: its range; zero on a signed map).

    :param rows: ``(title, image)`` per row; the image is ``[H, W, 3]`` in ``[0, 1]`` (rows may
        differ in size: each is fitted into a :data:`GRID_CELL` square, its maps too).
    :param columns: method labels.
    :param maps: ``(row, column) -> map``; missing cells (failed items) say "failed".
    """
    options = options or FigureOptions()
    size = _SIZES["tick"]
    lines = max((len(title.split("\n")) for title, _ in rows), default=1)
    title_height = lines * (size + 3) + 2
    row_height = title_height + GRID_CELL + 4 + 8 + size + 4 + _GAP
    width = 2 * _MARGIN + (len(columns) + 1) * GRID_CELL + len(columns) * _GAP
    canvas = Image.new("RGB", (width, 2 * _MARGIN + len(rows) * row_height), (255, 255, 255))
    for r, (title, image) in enumerate(rows):
        top = _MARGIN + r * row_height + title_height
        for i, line in enumerate(title.split("\n")):
            y = top - title_height + i * (size + 3)
            text = _elided(line, size, GRID_CELL)
            _write(canvas, (_MARGIN + GRID_CELL / 2, y), text, size, "ma")
        canvas.paste(_fitted(np.asarray(image, dtype=np.float32), GRID_CELL), (_MARGIN, top))
        for c, label in enumerate(columns, start=1):
            left = _MARGIN + c * (GRID_CELL + _GAP)
            if r == 0:
                text = _elided(label, _SIZES["panel"], GRID_CELL)
                _write(canvas, (left + GRID_CELL / 2, top - 3), text, _SIZES["panel"], "md")
            saliency = maps.get((r, c - 1))
            if saliency is None:
                centre = (left + GRID_CELL / 2, top + GRID_CELL / 2)
                _write(canvas, centre, "failed", _SIZES["panel"], "mm", _RED)
                continue
            rendered = render_map(saliency, options, bar_steps=GRID_CELL)
            shown = _fitted(rendered.rgb, GRID_CELL)
            canvas.paste(shown, (left, top))
            _horizontal_key(canvas, rendered, left, top + shown.height + 4, shown.width)
    return canvas


def grid_figure(
    path: str | Path,
    rows: Sequence[tuple[str, np.ndarray]],
    columns: Sequence[str],
    maps: dict[tuple[int, int], np.ndarray],
    options: FigureOptions | None = None,
) -> None:
    """Save :func:`grid_image` as a 256-colour PNG, atomically."""
    _save_png(path, grid_image(rows, columns, maps, options))


def _save_png(path: str | Path, figure: Image.Image) -> None:
    palette = figure.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG", compress_level=_COMPRESS_LEVEL)
    write_bytes(path, buffer.getvalue())
