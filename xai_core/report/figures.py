"""Figures: the one visual vocabulary of maps shared by the per-method figures and the grid
(drawn without matplotlib by :mod:`xai_core.report.render`), the report, and the synthesis
figures drawn here (fooling images, class visualizations).

How a map becomes colours (:func:`render_map`), used everywhere a map is shown:

- **signed** maps (some values below zero, with ``sign="all"``) use a diverging scale centred on
  zero: blue below zero, white at zero, red above. Both halves saturate at the
  ``clip_percentile`` of ``|map|``, so one extreme pixel does not wash the rest out.
- **non-negative** maps (and ``sign="positive"``, ``"negative"``, ``"absolute"``) use a
  sequential scale from white: red for positive values, blue for the magnitude of negative
  values, green for absolute values. A non-negative map is stretched from its
  ``100 - clip_percentile`` to its ``clip_percentile`` percentile, so maps with a large common
  floor (RISE) keep their contrast.
- every map carries a **colour bar** whose end labels are the map's own minimum and maximum; the
  bar is drawn through the same function as the map, so values beyond the clipping percentile
  show as the saturated colour they get.
- an **overlay** blends those same colours on the photo with an opacity growing with
  ``sqrt(|value|)``: the photo shows where the map is zero, red where it is positive, blue
  where it is negative. It never discards the sign (except with ``sign="absolute"``).

The choices are a :class:`FigureOptions` (the ``figure:`` section of a run's config), in the
manner of Captum's ``visualize_image_attr``.

The photo under a map is an RGB view of the input (:func:`display_image`): a model of ``C``
input channels shows the channels ``display_channels`` names (a run's config key), one shown as
grayscale or three as red, green and blue; by default one channel (and two) as grayscale, three
as they are, more than three by their first three (:func:`display_channels`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from xai_core.errors import ConfigError, did_you_mean  # noqa: E402
from xai_core.io import save_figure  # noqa: E402

__all__ = [
    "FigureOptions",
    "RenderedMap",
    "SIGNS",
    "OVERLAYS",
    "render_map",
    "scale_bounds",
    "colour_map",
    "colour_table",
    "COLOUR_STEPS",
    "display_channels",
    "display_image",
    "display_map",
    "overlay",
    "attribution_title",
    "image_title",
    "images_figure",
    "difference_panels",
    "fooling_figure",
    "class_visualization_figure",
]

#: What part of a map is shown (as Captum's ``sign``).
SIGNS = ("all", "positive", "negative", "absolute")
#: How a map is shown on the photo (Captum's ``method`` names).
OVERLAYS = ("blended_heat_map", "masked_image", "alpha_scaling")

def display_channels(channels: int, chosen: Sequence[int] | None = None) -> tuple[int, ...]:
    """The input channels the RGB view of a ``channels``-channel input shows: ``chosen`` (one
    channel, shown as grayscale, or three, shown as red, green and blue), by default ``(0,)``
    for fewer than three channels and ``(0, 1, 2)`` otherwise. A :class:`ConfigError` names a
    ``chosen`` that is not 1 or 3 channel indices below ``channels``."""
    if chosen is None:
        return (0,) if channels < 3 else (0, 1, 2)
    picked = tuple(chosen)
    if len(picked) not in (1, 3) or not all(
        isinstance(c, int) and not isinstance(c, bool) for c in picked
    ):
        raise ConfigError(
            f"bad config value at 'display_channels': {list(picked)}; give 1 channel index "
            "(shown as grayscale) or 3 (shown as red, green, blue), e.g. [0] or [3, 2, 1]"
        )
    outside = [c for c in picked if not 0 <= c < channels]
    if outside:
        raise ConfigError(
            f"bad config value at 'display_channels': {list(picked)} names channel(s) "
            f"{', '.join(map(str, outside))}, but the model takes {channels} channel(s) "
            f"(indices 0 to {channels - 1})"
        )
    return picked


def display_image(pixels: Any, chosen: Sequence[int] | None = None) -> np.ndarray:
    """The RGB view ``[H, W, 3]`` in ``[0, 1]`` of pixels ``[C, H, W]`` (a tensor or array in
    pixel space) that figures draw maps on: :func:`display_channels` picks the channels, one
    repeated as grayscale. In numpy, which runs in the calling thread (torch would use its
    thread pool, which the model's passes hold)."""
    if hasattr(pixels, "detach"):
        pixels = pixels.detach().cpu().numpy()
    array = np.asarray(pixels)
    picked = display_channels(array.shape[0], chosen)
    if picked != (0, 1, 2) or array.shape[0] != 3:
        array = array[list(picked * 3 if len(picked) == 1 else picked)]
    return np.clip(array.transpose(1, 2, 0), 0, 1)


#: Colour maps when ``FigureOptions.cmap`` is not given: diverging for signed maps, one
#: sequential hue per sign so that red always means "positive" and blue "negative".
DEFAULT_CMAPS = {"signed": "RdBu_r", "positive": "Reds", "negative": "Blues", "absolute": "Greens"}


def _choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        hint = did_you_mean(str(value), choices, n=1)
        raise ConfigError(f"figure.{name}: {value!r} is not one of {', '.join(choices)}{hint}")
    return value


@dataclass(frozen=True)
class FigureOptions:
    """How maps are drawn in every figure and in the report (the config's ``figure:`` section)."""

    #: Which values to show: ``all`` (signed maps diverging around zero), ``positive`` or
    #: ``negative`` (that part only, as magnitudes on a sequential scale), ``absolute`` (``|map|``).
    sign: str = "all"
    #: A matplotlib colour map name; default: ``RdBu_r`` for signed maps, ``Reds`` / ``Blues`` /
    #: ``Greens`` for positive / negative / absolute ones.
    cmap: str | None = None
    #: How the map is shown on the photo: ``blended_heat_map`` (colours blended on the photo),
    #: ``masked_image`` (the photo times the map's normalised magnitude), ``alpha_scaling``
    #: (the photo faded to white where the map is small).
    overlay: str = "blended_heat_map"
    #: Opacity of the colours at the map's strongest pixels in a blended heat map, in [0, 1].
    overlay_alpha: float = field(default=0.7, metadata={"ge": 0.0, "le": 1.0})
    #: The colours saturate at this percentile of ``|map|`` (in (0, 100]; 100: at the maximum).
    clip_percentile: float = field(default=99.0, metadata={"gt": 0.0, "le": 100.0})

    def __post_init__(self):
        _choice("sign", self.sign, SIGNS)
        _choice("overlay", self.overlay, OVERLAYS)
        if self.cmap is not None and self.cmap not in matplotlib.colormaps:
            hint = did_you_mean(str(self.cmap), list(matplotlib.colormaps), n=1, otherwise=".")
            raise ConfigError(
                f"figure.cmap: {self.cmap!r} is not a matplotlib colour map{hint} "
                "E.g. RdBu_r, coolwarm, viridis, Reds"
            )
        for name in ("overlay_alpha", "clip_percentile"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"figure.{name}: expected a number, got {value!r}")
        if not 0 <= self.overlay_alpha <= 1:
            raise ConfigError(f"figure.overlay_alpha: {self.overlay_alpha} is outside [0, 1]")
        if not 0 < self.clip_percentile <= 100:
            raise ConfigError(
                f"figure.clip_percentile: {self.clip_percentile} is outside (0, 100]"
            )

    @classmethod
    def from_config(cls, value: FigureOptions | Mapping[str, Any] | None) -> FigureOptions:
        """Options from a config section (a mapping), an instance, or ``None`` (the defaults).

        :raises ConfigError: for an unknown key (with its close matches) or a bad value.
        """
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if dataclasses.is_dataclass(value):
            value = dataclasses.asdict(value)
        if not isinstance(value, Mapping):
            raise ConfigError(f"figure: expected a mapping of options, got {value!r}")
        names = [f.name for f in dataclasses.fields(cls)]
        for key in value:
            if key not in names:
                hint = did_you_mean(str(key), names, n=1, otherwise=".")
                raise ConfigError(
                    f"figure: unknown option {key!r}{hint} Options: {', '.join(names)}"
                )
        return cls(**dict(value))


@dataclass
class RenderedMap:
    """A map turned into colours, with the key to read them.

    :ivar rgb: ``[H, W, 3]`` colours in ``[0, 1]``.
    :ivar strength: ``[H, W]`` display value in ``[-1, 1]`` (signed) or ``[0, 1]``: where the map
        sits on its colour scale; overlays use ``|strength|`` as opacity.
    :ivar signed: whether the scale is diverging around zero.
    :ivar low, high: the map's minimum and maximum (after ``sign``): the colour bar's end labels.
    :ivar bar: ``[N, 3]`` colours of the colour bar from ``low`` (index 0) to ``high``.
    :ivar legend: the sign convention in words.
    """

    rgb: np.ndarray
    strength: np.ndarray
    signed: bool
    low: float
    high: float
    bar: np.ndarray
    legend: str

    @property
    def ticks(self) -> list[tuple[float, str]]:
        """``(value, label)`` of the colour bar's ticks: both ends, and zero on a signed bar."""
        ticks = [(self.low, _number(self.low))]
        if self.signed and self.low < 0 < self.high:
            ticks.append((0.0, "0"))
        ticks.append((self.high, _number(self.high)))
        return ticks


def _number(value: float) -> str:
    return f"{value:.3g}"


def scale_bounds(values: np.ndarray, signed: bool, options: FigureOptions) -> tuple[float, float]:
    """``(low, top)``: the values where a map's colours saturate, from its percentiles.

    Display strength is ``clip(v / top, -1, 1)`` on a signed scale (``low`` is ``-top``) and
    ``clip((v - low) / (top - low), 0, 1)`` on a sequential one (the report's page colours maps
    in the browser from these two numbers)."""
    if signed:
        top = float(np.percentile(np.abs(values), options.clip_percentile))
        top = top or float(np.abs(values).max()) or 1.0
        return -top, top
    low, top = (
        float(v) for v in np.percentile(values, [100 - options.clip_percentile,
                                                 options.clip_percentile])
    )
    if options.clip_percentile == 100 or low == float(values.min()):
        low = min(0.0, low)
    if top <= low:
        low, top = 0.0, float(values.max()) or 1.0
    return low, top


def _scaled(values: np.ndarray, signed: bool, options: FigureOptions):
    """The function from map values to display strength, fixed by this map's percentiles."""
    low, top = scale_bounds(values, signed, options)
    if signed:
        return lambda v: np.clip(v / top, -1, 1)
    return lambda v: np.clip((v - low) / (top - low), 0, 1)


#: Entries of every colour table (odd: one sits exactly at the centre of a diverging scale).
COLOUR_STEPS = 257


@functools.cache
def _resampled(name: str):
    """The colour map ``name`` in :data:`COLOUR_STEPS` entries, built once per name (a figure
    per item would otherwise rebuild it), its lookup table filled before any thread shares it:
    treat it as read-only."""
    cmap = matplotlib.colormaps[name].resampled(COLOUR_STEPS)
    cmap(0.5)
    return cmap


def colour_map(kind: str, options: FigureOptions | None = None):
    """The matplotlib colour map of a map ``kind`` (``signed``, ``positive``, ``negative``,
    ``absolute``) under ``options``, as :data:`COLOUR_STEPS` entries: position ``x`` in [0, 1]
    gets entry ``min(floor(x * COLOUR_STEPS), COLOUR_STEPS - 1)``. Shared: do not modify it."""
    options = options or FigureOptions()
    return _resampled(options.cmap or DEFAULT_CMAPS[kind])


def colour_table(kind: str, options: FigureOptions | None = None) -> np.ndarray:
    """The entries ``[COLOUR_STEPS, 3]`` (RGB in [0, 1]) of :func:`colour_map`: what the
    report's page colours maps with."""
    return colour_map(kind, options)(np.arange(COLOUR_STEPS))[:, :3]


def render_map(
    saliency: np.ndarray, options: FigureOptions | None = None, bar_steps: int = 64
) -> RenderedMap:
    """The colours of ``saliency`` ``[H, W]`` and its colour bar, under ``options``."""
    options = options or FigureOptions()
    values = np.nan_to_num(np.asarray(saliency, dtype=np.float32))
    if values.ndim != 2:
        raise ValueError(f"a map to draw must be [H, W], got shape {values.shape}")
    sign = options.sign
    if sign == "positive":
        values, legend = np.maximum(values, 0), "positive part only; darker red: larger"
    elif sign == "negative":
        values, legend = np.minimum(values, 0), "negative part only; darker blue: more negative"
    elif sign == "absolute":
        values, legend = np.abs(values), "|value|, sign discarded; darker: larger"
    signed = sign == "all" and float(values.min()) < 0
    if sign == "all":
        legend = (
            "red > 0 (for the target), blue < 0 (against it), white = 0"
            if signed
            else "non-negative map; darker red: larger, white: smallest"
        )
    kind = "signed" if signed else ("positive" if sign == "all" else sign)
    # An odd number of entries puts one exactly at the centre: zero gets the neutral colour
    # rather than the first entry of the positive half.
    cmap = colour_map(kind, options)
    if kind == "negative":
        # Strength of the negative part is its magnitude, so that "more negative" is darker.
        scale = _scaled(-values, False, options)
        to_strength = lambda v: scale(-v)  # noqa: E731
    else:
        to_strength = _scaled(values, signed, options)
    strength = to_strength(values).astype(np.float32)
    low, high = float(values.min()), float(values.max())
    samples = np.linspace(low, high, bar_steps, dtype=np.float32)
    return RenderedMap(
        rgb=_colours(cmap, strength, signed),
        strength=strength,
        signed=signed,
        low=low,
        high=high,
        bar=_colours(cmap, to_strength(samples), signed),
        legend=legend,
    )


def _colours(cmap, strength: np.ndarray, signed: bool) -> np.ndarray:
    position = (strength + 1) / 2 if signed else strength
    return cmap(position)[..., :3].astype(np.float32)


def display_map(saliency: np.ndarray, options: FigureOptions | None = None) -> np.ndarray:
    """The map's colours, ``[H, W, 3]`` in ``[0, 1]`` (:func:`render_map` without the key)."""
    return render_map(saliency, options).rgb


def overlay(
    image: np.ndarray,
    saliency: np.ndarray | RenderedMap,
    options: FigureOptions | None = None,
) -> np.ndarray:
    """The map on the photo ``[H, W, 3]`` in ``[0, 1]``, as ``options.overlay`` says.

    A blended heat map keeps the map's colours, and so its sign: each pixel is
    ``(1 - a) * photo + a * colour`` with ``a = overlay_alpha * sqrt(|strength|)``: the square
    root keeps middling values visible on a busy photo, and zero leaves the photo as it is.
    """
    options = options or FigureOptions()
    rendered = saliency if isinstance(saliency, RenderedMap) else render_map(saliency, options)
    image = np.asarray(image, dtype=np.float32)
    if image.shape[:2] != rendered.rgb.shape[:2]:
        raise ValueError(
            f"map {rendered.rgb.shape[:2]} and image {image.shape[:2]} differ in size; "
            "give the model-input image the map was computed on"
        )
    weight = np.abs(rendered.strength)[..., None]
    if options.overlay == "masked_image":
        return np.clip(image * weight, 0, 1)
    if options.overlay == "alpha_scaling":
        return np.clip(image * weight + (1 - weight), 0, 1)
    alpha = options.overlay_alpha * np.sqrt(weight)
    return np.clip((1 - alpha) * image + alpha * rendered.rgb, 0, 1)


def _probability(value: Any) -> str:
    return f"{float(value):.2f}" if value is not None else "?"


def target_text(item: Mapping[str, Any]) -> str:
    """What an item explains, for titles and the report: ``<class> (<p>)``, or for a target
    kind its own score: ``label 'dog', logit 2.1 (p 0.89)``, ``tabby - tiger cat, logit 1.7``."""
    label = item.get("target_label")
    if not item.get("target_value_name"):
        return f"{label} ({_probability(item.get('target_probability'))})"
    value = item.get("target_value")
    text = f"{label}, {item['target_value_name']} " + (
        f"{value:.3g}" if value is not None else "n/a"
    )
    if item.get("target_probability") is not None and item["target_value_name"] != "sigmoid":
        text += f" (p {_probability(item['target_probability'])})"
    return text


def image_title(item: Mapping[str, Any], separator: str = "\n") -> str:
    """``target: <class> (<p>)`` (a target kind: ``target: <what>, <score name> <value>``) and
    ``predicted: <class> (<p>)`` of a result item, and
    ``(random weights)`` when the model was not trained (``random_weights`` in the item)."""
    target = f"target: {target_text(item)}"
    untrained = " (random weights)" if item.get("random_weights") else ""
    if item.get("predicted_label") is None:
        return target + untrained
    predicted = (
        f"predicted: {item.get('predicted_label')} "
        f"({_probability(item.get('predicted_probability'))})"
    )
    return f"{target}{separator}{predicted}{untrained}"


def attribution_title(label: str, item: Mapping[str, Any]) -> str:
    """The title of a per-method figure: method, then the item's target and prediction, and a
    technique's own note (``metadata.title_note``: an integrated-gradients tolerance not met)."""
    title = f"{label}: {image_title(item, separator='; ')}"
    note = (item.get("metadata") or {}).get("title_note")
    return f"{title}\n{note}" if note else title


def _colorbar(ax, rendered: RenderedMap, orientation: str = "vertical", fontsize: int = 7):
    """The colour bar of ``rendered`` drawn into ``ax``, ticks at both ends (and zero);
    :mod:`xai_core.report.render` draws the same key for the per-item figures and the grid."""
    bar = rendered.bar[::-1, None] if orientation == "vertical" else rendered.bar[None]
    low, high = rendered.low, rendered.high
    span = (low, high) if high > low else (low - 0.5, high + 0.5)
    extent = (0, 1, *span) if orientation == "vertical" else (*span, 0, 1)
    ax.imshow(bar, aspect="auto", extent=extent)
    values = [v for v, _ in rendered.ticks]
    labels = [label for _, label in rendered.ticks]
    if orientation == "vertical":
        ax.set_xticks([])
        ax.yaxis.tick_right()
        ax.set_yticks(values, labels, fontsize=fontsize)
    else:
        ax.set_yticks([])
        ax.set_xticks(values, labels, fontsize=fontsize)
        ticks = ax.get_xticklabels()
        if len(ticks) >= 2:
            ticks[0].set_horizontalalignment("left")
            ticks[-1].set_horizontalalignment("right")
    ax.tick_params(length=2, pad=1)


def images_figure(path: str | Path, images: Sequence[tuple[str, np.ndarray]], columns: int = 5):
    """A grid of titled images (synthesized images, class visualizations)."""
    n = len(images)
    cols = max(1, min(columns, n))
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.9 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            title, image = images[i]
            ax.imshow(image)
            ax.set_title(title, fontsize=10)
    fig.tight_layout()
    save_figure(path, fig, palette=True)
    plt.close(fig)


def difference_panels(original: np.ndarray, result: np.ndarray) -> list[np.ndarray]:
    """The four images of a fooling figure, ``[H, W, 3]`` in ``[0, 1]`` each.

    Original, result, their difference and the difference magnified 10x; a difference is shown
    around mid-grey (``0.5 + d``, clipped) so that negative changes stay visible. These are the
    images the figure's titles classify, so a caller can predict exactly what is shown.
    """
    delta = np.asarray(result, dtype=np.float32) - np.asarray(original, dtype=np.float32)
    return [
        np.asarray(original, dtype=np.float32),
        np.asarray(result, dtype=np.float32),
        np.clip(0.5 + delta, 0, 1),
        np.clip(0.5 + 10 * delta, 0, 1),
    ]


def fooling_figure(
    path: str | Path, panels: Sequence[np.ndarray], titles: Sequence[str], title: str = ""
) -> None:
    """Original | result | change | change as a signed map with its colour bar.

    The third panel is the difference magnified 10x around mid-grey (what the model classifies
    in the title); the fourth shows the change's per-pixel mean over channels on the diverging
    scale of every map, with its range in 1/255 steps on the colour bar: a change of a few
    levels is visible there where the grey panel looks flat.

    :param panels: the four images from :func:`difference_panels`.
    :param titles: one title per panel (its predicted class and probability).
    """
    change = (np.asarray(panels[1]) - np.asarray(panels[0])).mean(axis=2) * 255
    rendered = render_map(change)
    fig = plt.figure(figsize=(11, 3.6))
    grid = fig.add_gridspec(1, 5, width_ratios=[1, 1, 1, 1, 0.05], wspace=0.1)
    names = ("original", "result", "change x10 (on grey)", "change (1/255 levels)")
    shown = [panels[0], panels[1], panels[3], rendered.rgb]
    captions = [titles[0], titles[1], titles[3], ""]
    for i, (name, image, caption) in enumerate(zip(names, shown, captions)):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(image)
        ax.set_title(f"{name}\n{caption}" if caption else name, fontsize=9)
        ax.axis("off")
    _colorbar(fig.add_subplot(grid[0, 4]), rendered)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(top=0.78, bottom=0.04, left=0.02, right=0.95)
    save_figure(path, fig, palette=True)
    plt.close(fig)


def class_visualization_figure(
    path: str | Path,
    images: Sequence[tuple[str, np.ndarray]],
    snapshots: tuple[Sequence[int], np.ndarray] | None = None,
    columns: int = 5,
) -> None:
    """Synthesized class images titled with their class names.

    Without ``snapshots`` a grid of ``columns``; with ``(steps, array [K, N, H, W, 3])`` one row per
    class showing the image at each kept step and then the final image.
    """
    if snapshots is None:
        images_figure(path, images, columns=columns)
        return
    steps, frames = snapshots
    n_rows, n_cols = len(images), len(steps) + 1
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(1.9 * n_cols + 0.6, 2.1 * n_rows), squeeze=False
    )
    for r, (name, final) in enumerate(images):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.imshow(frames[c, r] if c < len(steps) else final)
            ax.axis("off")
            if r == 0:
                ax.set_title(f"step {steps[c]}" if c < len(steps) else "final", fontsize=9)
        axes[r][0].text(-0.05, 0.5, name, rotation=90, ha="right", va="center", fontsize=9,
                        transform=axes[r][0].transAxes)
    fig.tight_layout()
    save_figure(path, fig, palette=True)
    plt.close(fig)


def map_grid(
    rows: Sequence[tuple[str, np.ndarray | None]],
    columns: Sequence[str],
    cells: Mapping[tuple[int, int], np.ndarray | str],
    options: FigureOptions | None = None,
    on_photo: bool = True,
) -> Figure:
    """Images down, methods across, as :func:`xai_core.report.render.grid_figure` draws them,
    returned (not saved) for :meth:`xai_core.Explanations.plot`: each map on its photo
    (``on_photo``, as
    ``options.overlay`` says, at its ``overlay_alpha``) or alone, with its own colour bar.

    :param rows: ``(title, photo)`` per row; the photo is ``[H, W, 3]`` in ``[0, 1]`` or
        ``None`` (its maps are then drawn alone).
    :param cells: ``(row, column) -> map``, or the text shown instead (a failed item's error);
        missing cells stay empty.
    """
    options = options or FigureOptions()
    n_rows, n_cols = max(1, len(rows)), len(columns) + 1
    # Not through pyplot: the figure belongs to the caller, never to pyplot's registry.
    fig = Figure(figsize=(2.1 * n_cols, 2.75 * n_rows))
    outer = fig.add_gridspec(n_rows, n_cols, hspace=0.45, wspace=0.08)
    for r, (title, photo) in enumerate(rows):
        ax = fig.add_subplot(outer[r, 0])
        if photo is not None:
            ax.imshow(photo)
        ax.set_title(title, fontsize=7)
        ax.axis("off")
        for c, label in enumerate(columns, start=1):
            cell = outer[r, c].subgridspec(2, 1, height_ratios=[1, 0.06], hspace=0.05)
            ax = fig.add_subplot(cell[0])
            ax.axis("off")
            if r == 0:
                ax.set_title(label, fontsize=8)
            value = cells.get((r, c - 1))
            if value is None:
                continue
            if isinstance(value, str):
                ax.text(0.5, 0.5, value, ha="center", va="center", transform=ax.transAxes,
                        color="#b00020", fontsize=7, wrap=True)
                continue
            rendered = render_map(value, options)
            shown = on_photo and photo is not None and photo.shape[:2] == rendered.rgb.shape[:2]
            ax.imshow(overlay(photo, rendered, options) if shown else rendered.rgb)
            _colorbar(fig.add_subplot(cell[1]), rendered, "horizontal", fontsize=6)
    return fig
