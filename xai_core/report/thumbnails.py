"""The report's thumbnails: a JPEG of each input photo and each map as data the page recolours.

A map thumbnail is an 8-bit grayscale PNG of the map at thumbnail size (value
``min + v / 255 * (max - min)``, ``min`` and ``max`` the map's own) with, for each ``sign`` of
:data:`~xai_core.report.figures.SIGNS`, where the colours saturate
(:func:`~xai_core.report.figures.scale_bounds`, from the full-size map, as the figures have
it): :func:`map_scales`. With those and the colour tables
(:func:`~xai_core.report.figures.colour_table`) the page colours a map as
:func:`~xai_core.report.figures.render_map` does, under any sign, opacity or shared scale, and
reads the value under the pointer.

An image's thumbnails (its photo for each model, its maps) travel in one JavaScript file,
``report/px/<key>.js`` (base64): a page opened from ``file://`` may load scripts but neither
fetch files nor read image files into a canvas (Chromium taints it), and the page loads only
the images it shows. That file is also the cache: made from the run's files only, kept while
the figure options stay the same (a stamp file holds their digest; other options start the
folder afresh), and made again only where a photo or map is newer than it.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from xai_core.io import atomic_open, read_array, write_text
from xai_core.report.figures import SIGNS, FigureOptions, scale_bounds

__all__ = ["THUMB", "JPEG_QUALITY", "Thumbnails", "map_scales", "sign_values"]

#: Width in pixels of a photo or map thumbnail (as shown on the page, in CSS pixels).
THUMB = 160
JPEG_QUALITY = 85
#: The version of what ``report/`` holds: a folder of another version starts afresh (as one
#: made under other figure options does).
FORMAT = 2


def sign_values(values: np.ndarray, sign: str) -> np.ndarray:
    """The part of a map that ``sign`` shows (as :func:`~xai_core.report.figures.render_map`
    takes it): all of it, its positive or negative part, or its magnitude."""
    if sign == "positive":
        return np.maximum(values, 0)
    if sign == "negative":
        return np.minimum(values, 0)
    if sign == "absolute":
        return np.abs(values)
    return values


def _short(value: float) -> float:
    return float(f"{value:.5g}")


def map_scales(saliency: np.ndarray, options: FigureOptions) -> dict[str, list[float]]:
    """Per sign: ``[low, high, lo, top, signed]``: the shown part's minimum and maximum, where
    its colours saturate (``lo``, ``top``: :func:`~xai_core.report.figures.scale_bounds`; of
    the magnitude of the negative part under ``negative``) and whether the scale is diverging
    (1) or sequential (0).

    A map of one sign shows, under a sign, itself, its negation or nothing (zeros): those parts
    are the same values, so each distinct one is measured and fitted once (a non-negative map's
    percentiles once instead of four times); a map of both signs has four parts."""
    values = np.nan_to_num(np.asarray(saliency, dtype=np.float32))
    low, high = float(values.min()), float(values.max())
    parts: dict[str, np.ndarray] = {"map": values, "zero": np.zeros(1, np.float32)}
    # Which part each sign shows, and which part its colours are fitted on (the negation of
    # the shown part under ``negative``).
    if low >= 0:
        shown_as = {"all": "map", "positive": "map", "negative": "zero", "absolute": "map"}
    elif high <= 0:
        shown_as = {"all": "map", "positive": "zero", "negative": "map", "absolute": "minus"}
    else:
        shown_as = {"all": "map", "positive": "positive", "negative": "negative",
                    "absolute": "absolute"}
    negated = {"map": "minus", "minus": "map", "zero": "zero", "negative": "minus negative"}
    extent: dict[str, tuple[float, float]] = {"map": (low, high)}
    bounds: dict[tuple[str, bool], tuple[float, float]] = {}
    scales = {}
    for sign in SIGNS:
        name = shown_as[sign]
        if name not in parts:
            parts[name] = -values if name == "minus" else sign_values(values, sign)
        shown = parts[name]
        if name not in extent:
            extent[name] = (float(shown.min()), float(shown.max()))
        smallest, largest = extent[name]
        signed = sign == "all" and smallest < 0
        fitted = negated[name] if sign == "negative" else name
        if fitted not in parts:
            parts[fitted] = -shown
        if (fitted, signed) not in bounds:
            bounds[fitted, signed] = scale_bounds(parts[fitted], signed, options)
        lo, top = bounds[fitted, signed]
        scales[sign] = [_short(smallest), _short(largest), _short(lo), _short(top), int(signed)]
    return scales


def _quantized(saliency: np.ndarray, size: tuple[int, int]) -> tuple[bytes, float, float]:
    """The map at ``size`` (width, height) as an 8-bit grayscale PNG, and its min and max."""
    values = np.nan_to_num(np.asarray(saliency, dtype=np.float32))
    low, high = float(values.min()), float(values.max())
    image = Image.fromarray(values)
    if image.size != size:
        image = image.resize(size, Image.Resampling.BILINEAR)
    small = np.asarray(image, dtype=np.float32)
    span = high - low
    levels = np.zeros(small.shape, np.uint8) if span <= 0 else np.clip(
        np.rint((small - low) / span * 255), 0, 255
    ).astype(np.uint8)
    buffer = io.BytesIO()
    # Level 4: on maps, smaller than zlib's default 6 and faster (1.4 ms against 1.8 for one).
    Image.fromarray(levels).save(buffer, format="PNG", compress_level=4)
    return buffer.getvalue(), low, high


def _thumb_size(width: int, height: int, most: int = THUMB) -> tuple[int, int]:
    if width <= most:
        return width, height
    return most, max(1, round(height * most / width))


class Thumbnails:
    """Photo and map thumbnails under ``report/``, made from the run's files (see the module).

    :meth:`make` makes those of a whole report, one image (all its models' photos and maps) per
    task on a thread pool (decoding, resizing and encoding release the GIL): each image's are
    one script, ``report/px/<key>.js``, which is also their cache (one file per image keeps a
    run of 10,000 images to 10,000 writes); :meth:`picture` makes JPEG files of other pictures
    (synthesis figures).
    """

    def __init__(self, run_dir: Path, options: FigureOptions):
        self.run_dir = run_dir
        self.root = run_dir / "report"
        self.options = options
        stamp = hashlib.sha256(json.dumps(
            {**dataclasses.asdict(options), "format": FORMAT}, sort_keys=True
        ).encode()).hexdigest()[:16]
        stamp_file = self.root / "options.txt"
        if not stamp_file.is_file() or stamp_file.read_text().strip() != stamp:
            shutil.rmtree(self.root, ignore_errors=True)
            write_text(stamp_file, stamp + "\n")

    def picture(self, rel: str, width: int = THUMB) -> str:
        """A JPEG thumbnail of an image file (a figure) of the run, at most ``width`` wide,
        made when missing or older than its source: its path in the run."""
        source = self.run_dir / rel
        out = self.root / Path(rel).with_suffix(".jpg")
        if not (out.is_file() and out.stat().st_mtime >= source.stat().st_mtime):
            with atomic_open(out, "wb") as handle:
                handle.write(_jpeg(source, width))
        return str(out.relative_to(self.run_dir))

    def script(self, key: str) -> Path:
        """The pixel script of an image: ``report/px/<key>.js``."""
        return self.root / "px" / f"{key}.js"

    def image(self, key: str, photos: Sequence[str], maps: Sequence[str]) -> dict[str, Any]:
        """Make (or keep) the pixel script of image ``key``: its ``photos`` (JPEG) and ``maps``
        (paths in the run). Returns ``{"maps": {path: data less its PNG, or the error that
        kept it from being made}}``; the data are those of :meth:`map_data`."""
        out = self.script(key)
        cached = _read_script(out)
        made = out.stat().st_mtime if cached else 0.0
        content: dict[str, Any] = {"key": key, "photos": {}, "maps": {}}
        changed = not cached
        for rel in photos:
            old = cached.get("photos", {}).get(rel) if cached else None
            if old is not None and (self.run_dir / rel).stat().st_mtime <= made:
                content["photos"][rel] = old
                continue
            content["photos"][rel] = base64.b64encode(_jpeg(self.run_dir / rel)).decode("ascii")
            changed = True
        found: dict[str, Any] = {}
        for rel in maps:
            old = cached.get("maps", {}).get(rel) if cached else None
            try:
                if old is None or (self.run_dir / rel).stat().st_mtime > made:
                    old = self.map_data(rel)
                    changed = True
            except (OSError, ValueError) as exc:
                found[rel] = f"map not readable: {rel}: {exc}"
                continue
            content["maps"][rel] = old
            found[rel] = {k: v for k, v in old.items() if k != "png"}
        if cached and (set(cached.get("photos", {})) != set(photos)
                       or set(cached.get("maps", {})) != set(content["maps"])):
            changed = True
        if changed:
            with atomic_open(out, "wb") as handle:
                handle.write(_script_text(content).encode("utf-8"))
        return {"maps": found}

    def map_data(self, map_rel: str) -> dict[str, Any]:
        """A map file's thumbnail: ``png`` (base64), ``size`` ``[width, height]``, ``min``,
        ``max`` and ``scales`` (:func:`map_scales`)."""
        saliency = read_array(self.run_dir / map_rel)
        if saliency.ndim != 2:
            raise ValueError(f"a map must be [H, W], got shape {saliency.shape}")
        size = _thumb_size(saliency.shape[1], saliency.shape[0])
        png, low, high = _quantized(saliency, size)
        return {
            "png": base64.b64encode(png).decode("ascii"), "size": list(size),
            "min": _short(low), "max": _short(high),
            "scales": map_scales(saliency, self.options),
        }

    def make(
        self, images: Sequence[tuple[str, Sequence[str], Sequence[str]]],
        threads: int | None = None,
    ) -> list[dict[str, Any]]:
        """:meth:`image` of each ``(key, photos, maps)``, on ``threads`` threads (default: one
        per core); scripts of images the run no longer has go."""
        keep = {self.script(key) for key, _, _ in images}
        px = self.root / "px"
        if px.is_dir():
            for stale in px.rglob("*.js"):
                if stale not in keep:
                    stale.unlink()
        return _pooled(lambda i: self.image(*images[i]), range(len(images)), threads)


#: How a pixel script starts: a call the page defines (``report.js``).
_CALL = "XAI_PIXELS("


def _script_text(content: Mapping[str, Any]) -> str:
    return f"{_CALL}{json.dumps(content, separators=(',', ':'))});\n"


def _read_script(path: Path) -> dict[str, Any] | None:
    """The content of a pixel script, ``None`` when there is none or it is not one of ours."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if not (text.startswith(_CALL) and text.endswith(");\n")):
        return None
    try:
        content = json.loads(text[len(_CALL):-3])
    except ValueError:
        return None
    return content if isinstance(content, dict) else None


def _jpeg(source: Path, width: int = THUMB) -> bytes:
    """An image file as a JPEG at most ``width`` wide."""
    with Image.open(source) as opened:
        image = opened.convert("RGB")
    if image.width > width:
        # Bilinear: a thumbnail a few times smaller than its source looks the same as with
        # Lanczos, at a third of the time.
        height = max(1, round(image.height * width / image.width))
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def _write_if_changed(path: Path, text: str) -> None:
    data = text.encode("utf-8")
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return
    except OSError:
        pass
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def _pooled(task: Callable[[int], Any], indices: Iterable[int], threads: int | None) -> list:
    indices = list(indices)
    workers = max(1, min(threads or os.cpu_count() or 1, len(indices)))
    if workers == 1:
        return [task(i) for i in indices]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(task, indices))
