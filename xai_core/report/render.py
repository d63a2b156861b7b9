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
  photos lose little at 256 colours without dithering), which keeps a figure at 224 px input
  near 60 KB instead of about 400 KB and is quick to compress
  (``benchmarks/bench_figures.py`` measures the cost against a run without figures).
"""

from __future__ import annotations

import functools
import io
import math
import os
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from xai_core.io import write_bytes
from xai_core.report.figures import FigureOptions, RenderedMap, overlay, render_map

__all__ = ["PANEL_SIDE", "OUTLINE", "attribution_figure", "attribution_image"]

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
_COMPRESS_LEVEL = 6
_SIZES = {"title": 14, "panel": 12, "tick": 10, "legend": 11}


@functools.cache
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    path = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf")
    try:
        return ImageFont.truetype(path, size)
    except OSError:
        return ImageFont.load_default(size=size)


def _to_bytes(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def _enlarged(rgb: np.ndarray, factor: int) -> np.ndarray:
    pixels = _to_bytes(rgb)
    if factor == 1:
        return pixels
    return np.repeat(np.repeat(pixels, factor, axis=0), factor, axis=1)


def _region_mask(region: Any, shape: tuple[int, int], factor: int) -> np.ndarray | None:
    """The pixels of a panel of ``shape`` (enlarged by ``factor``) that outline ``region``: a
    box ``[x0, y0, x1, y1]`` in input pixels, or the border of a boolean mask of any
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
        return np.asarray(box, dtype=bool)
    mask = np.asarray(region.cpu().numpy() if hasattr(region, "cpu") else region, dtype=bool)
    if mask.ndim != 2 or not 0 < mask.sum() < mask.size:
        return None
    inside = np.asarray(Image.fromarray(mask).resize((w, h), Image.NEAREST), dtype=bool)
    padded = np.pad(inside, 1, mode="edge")
    neighbours_out = (
        ~padded[:-2, 1:-1] | ~padded[2:, 1:-1] | ~padded[1:-1, :-2] | ~padded[1:-1, 2:]
    )
    border = inside & neighbours_out
    # Two pixels wide, as the grid's outline reads at this size.
    return border | np.pad(border, ((0, 0), (1, 0)))[:, :-1] | np.pad(border, ((1, 0), (0, 0)))[:-1]


def _title_lines(title: str, width: int, font) -> list[str]:
    """The title's lines (its own line breaks), each too-wide line broken at ``"; "``."""
    lines = []
    for line in title.split("\n"):
        parts = line.split("; ")
        current = parts[0]
        for part in parts[1:]:
            joined = f"{current}; {part}"
            if font.getlength(joined) <= width:
                current = joined
            else:
                lines.append(current + ";")
                current = part
        lines.append(current)
    return lines


def _colour_key(
    canvas: np.ndarray, draw: ImageDraw.ImageDraw | None, rendered: RenderedMap, left: int,
    top: int, height: int,
) -> None:
    """The colour bar at ``(left, top)``, ``height`` tall, from ``rendered.high`` (top) down to
    ``rendered.low``: its colours into ``canvas`` (``draw=None``), else its frame and ticks
    (both ends, zero on a signed map) right of it."""
    if draw is None:
        bar = _to_bytes(rendered.bar[::-1])  # rendered with ``bar_steps=height``: one row each
        canvas[top : top + height, left : left + _BAR_WIDTH] = bar[:, None]
        return
    low, high = rendered.low, rendered.high
    span = (low, high) if high > low else (low - 0.5, high + 0.5)
    draw.rectangle([left - 1, top - 1, left + _BAR_WIDTH, top + height], outline=_TEXT)
    font = _font(_SIZES["tick"])
    for value, label in rendered.ticks:
        y = top + round((span[1] - value) / (span[1] - span[0]) * (height - 1))
        x = left + _BAR_WIDTH
        draw.line([x, y, x + 3, y], fill=_TEXT)
        draw.text((x + 5, y), label, fill=_TEXT, font=font, anchor="lm")


def _layout(shape: tuple[int, int], title: str) -> dict[str, Any]:
    h, w = shape
    factor = max(1, math.ceil(PANEL_SIDE / max(h, w)))
    ph, pw = h * factor, w * factor
    key_width = _BAR_WIDTH + 50
    width = 2 * _MARGIN + 3 * pw + key_width + 3 * _GAP
    lines = _title_lines(title, width - 2 * _MARGIN, _font(_SIZES["title"]))
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
    factor, (ph, pw), panel_top = plan["factor"], plan["panel"], plan["panel_top"]
    rendered = render_map(saliency, options, bar_steps=ph)
    panels = [image, rendered.rgb, overlay(image, rendered, options)]
    canvas = np.full((*plan["size"], 3), 255, dtype=np.uint8)
    outline = _region_mask(region, (ph, pw), factor)
    for index, (left, panel) in enumerate(zip(plan["lefts"], panels)):
        pixels = _enlarged(panel, factor)
        if outline is not None and index != 1:
            pixels[outline] = OUTLINE
        canvas[panel_top : panel_top + ph, left : left + pw] = pixels
    _colour_key(canvas, None, rendered, plan["key_left"], panel_top, ph)
    figure = Image.fromarray(canvas)
    draw = ImageDraw.Draw(figure)
    _colour_key(canvas, draw, rendered, plan["key_left"], panel_top, ph)
    _text(draw, plan, options, rendered.legend)
    return figure


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
    figure = attribution_image(image, saliency, title, options, region)
    palette = figure.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG", compress_level=_COMPRESS_LEVEL)
    write_bytes(path, buffer.getvalue())


def _text(
    draw: ImageDraw.ImageDraw, plan: dict[str, Any], options: FigureOptions, legend: str
) -> None:
    (height, width) = plan["size"]
    font = _font(_SIZES["title"])
    for i, line in enumerate(plan["lines"]):
        draw.text((width / 2, _MARGIN + i * (_SIZES["title"] + 4)), line, fill=_TEXT,
                  font=font, anchor="ma")
    panel_top, pw = plan["panel_top"], plan["panel"][1]
    names = ("input (model's view)", "map", options.overlay.replace("_", " "))
    for left, name in zip(plan["lefts"], names):
        draw.text((left + pw / 2, panel_top - 3), name, fill=_TEXT, font=_font(_SIZES["panel"]),
                  anchor="md")
    draw.text((plan["key_left"], panel_top - 3), "value", fill=_TEXT,
              font=_font(_SIZES["tick"]), anchor="ld")
    draw.text((width / 2, height - _MARGIN), legend, fill=_NOTE, font=_font(_SIZES["legend"]),
              anchor="md")
