"""Figures: one attribution (image, map, overlay) and the side-by-side grid of methods per image.

Maps are shown the way their papers show them: non-negative maps on a heat scale clipped at the
99th percentile; signed maps on a blue-white-red scale centred at zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from xai_core.io import save_figure

__all__ = ["display_map", "overlay", "attribution_figure", "grid_figure", "images_figure"]


def display_map(saliency: np.ndarray) -> tuple[np.ndarray, str, float, float]:
    """Map scaled for display: ``(values, colormap, vmin, vmax)``.

    Signed maps: blue-white-red, symmetric at the 99th percentile of ``|map|``. Non-negative
    maps: heat scale from the 1st to the 99th percentile.
    """
    values = np.nan_to_num(np.asarray(saliency, dtype=np.float32))
    if values.min() < 0:
        top = float(np.percentile(np.abs(values), 99)) or float(np.abs(values).max()) or 1.0
        return np.clip(values / top, -1, 1), "bwr", -1.0, 1.0
    # From the 1st to the 99th percentile: maps with a large common floor (RISE) keep contrast.
    low, top = (float(v) for v in np.percentile(values, [1, 99]))
    if top <= low:
        low, top = 0.0, float(values.max()) or 1.0
    return np.clip((values - low) / (top - low), 0, 1), "hot", 0.0, 1.0


def overlay(image: np.ndarray, saliency: np.ndarray, alpha: float = 0.5, cmap: str = "jet"):
    """RGB overlay of a map on an image ``[H, W, 3]`` in ``[0, 1]``."""
    values, _, _, _ = display_map(np.abs(saliency))
    colours = matplotlib.colormaps[cmap](values)[..., :3]
    return np.clip((1 - alpha) * image + alpha * colours, 0, 1)


def attribution_figure(path: str | Path, image: np.ndarray, saliency: np.ndarray, title: str):
    """Save image | map | overlay as one PNG."""
    values, cmap, vmin, vmax = display_map(saliency)
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.3))
    axes[0].imshow(image)
    axes[0].set_title("input", fontsize=9)
    axes[1].imshow(values, cmap=cmap, vmin=vmin, vmax=vmax)
    axes[1].set_title("map", fontsize=9)
    axes[2].imshow(overlay(image, saliency))
    axes[2].set_title("overlay", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    save_figure(path, fig)
    plt.close(fig)


def grid_figure(
    path: str | Path,
    rows: Sequence[tuple[str, np.ndarray]],
    columns: Sequence[str],
    maps: dict[tuple[int, int], np.ndarray],
) -> None:
    """Methods side by side per image, as in Simonyan et al. (2014), Fig. 2.

    :param rows: ``(title, image)`` per row; the image is ``[H, W, 3]`` in ``[0, 1]``.
    :param columns: method labels.
    :param maps: ``(row, column) -> map``; missing cells (failed items) stay blank.
    """
    n_rows, n_cols = len(rows), len(columns) + 1
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(2.4 * n_cols, 2.5 * n_rows), squeeze=False
    )
    for r, (title, image) in enumerate(rows):
        axes[r][0].imshow(image)
        axes[r][0].set_title(title, fontsize=8)
        for c, label in enumerate(columns, start=1):
            ax = axes[r][c]
            cell = maps.get((r, c - 1))
            if cell is not None:
                values, cmap, vmin, vmax = display_map(cell)
                ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax)
            else:
                ax.text(0.5, 0.5, "failed", ha="center", va="center", transform=ax.transAxes)
            if r == 0:
                ax.set_title(label, fontsize=9)
    for row in axes:
        for ax in row:
            ax.axis("off")
    fig.tight_layout()
    save_figure(path, fig)
    plt.close(fig)


def images_figure(path: str | Path, images: Sequence[tuple[str, np.ndarray]], columns: int = 5):
    """A grid of titled images (synthesized images, class visualizations)."""
    n = len(images)
    cols = max(1, min(columns, n))
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.8 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            title, image = images[i]
            ax.imshow(image)
            ax.set_title(title, fontsize=8)
    fig.tight_layout()
    save_figure(path, fig)
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
    """Original | fooling image | difference | difference x10, as in the seed project.

    :param panels: the four images from :func:`difference_panels`.
    :param titles: one title per panel (its predicted class and probability).
    """
    names = ("original", "result", "difference", "difference x10")
    fig, axes = plt.subplots(1, 4, figsize=(11, 3.3))
    for ax, name, image, caption in zip(axes, names, panels, titles):
        ax.imshow(image)
        ax.set_title(f"{name}\n{caption}", fontsize=8)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(path, fig)
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
        n_rows, n_cols, figsize=(1.9 * n_cols, 2.1 * n_rows), squeeze=False
    )
    for r, (name, final) in enumerate(images):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.imshow(frames[c, r] if c < len(steps) else final)
            ax.axis("off")
            if r == 0:
                ax.set_title(f"step {steps[c]}" if c < len(steps) else "final", fontsize=8)
        axes[r][0].text(-0.05, 0.5, name, rotation=90, ha="right", va="center", fontsize=8,
                        transform=axes[r][0].transAxes)
    fig.tight_layout()
    save_figure(path, fig)
    plt.close(fig)


__all__ += ["difference_panels", "fooling_figure", "class_visualization_figure"]
