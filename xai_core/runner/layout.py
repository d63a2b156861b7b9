"""Where everything of a run lives: one home for every path of its output folder.

Output layout under ``output_dir``::

    config.yaml                  the resolved config
    results.json                 environment, summary, and one item per (image, method)
    report.html                  the run as a static web page (``xai report`` rebuilds it)
    inputs/<image>.webp          the input in pixel space (resized and cropped), as the RGB
                                 view figures show (``display_channels``), lossless; for a
                                 photo it is the input itself: normalizing it gives, bit for
                                 bit, the tensor each map was computed on (``.png`` in runs
                                 before WebP or under a Pillow without it)
    inputs/<image>.npz           the exact normalized input tensor (float32), only for inputs
                                 an 8-bit RGB photo cannot hold (arrays, other channel counts)
    maps/<image>/<method>.npz    attribution maps [H, W] at input resolution, float16 by
                                 default (``storage``; xai_core.io.write_array)
    images/<image>/<method>.png  synthesized images (and .npz, [C, H, W] in [0, 1])
    figures/<image>/<method>.png image | map | overlay
    figures/grid.png             methods side by side for the first images
    given/<n>.png (or .npy)      images passed from Python (xai_core.explain: PIL images,
                                 tensors), the files the run reads them from
    records/<image>/<method>.json  what finished (the resume ledger, see xai_core.runner.ledger)
    model.json                   the model's entry in results.json, for runs that do not load it
    .lock                        held while a run writes the folder (xai_core.runner.lock)

A run of several models keeps ``config.yaml``, ``results.json``, the report and
``figures/compare/`` at the top and everything else per model under ``<model label>/``; items
name their files relative to the top (:meth:`RunLayout.rel`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from xai_core.io import photo_beside

__all__ = ["RunLayout"]


def _fixed(folder: str, *parts: str) -> property:
    """A path of the layout that takes no key: ``parts`` under its ``folder`` (``root``, the
    run's folder, or ``out``, the model's)."""
    return property(lambda layout: Path(getattr(layout, folder), *parts))


@dataclass(frozen=True)
class RunLayout:
    """The paths of one model's part of a run: ``root`` is the run's folder, ``out`` the
    model's (the same folder when the run has one model)."""

    root: Path
    out: Path

    def rel(self, path: Path) -> str:
        """``path`` relative to the run's folder, as items name their files."""
        return str(path.relative_to(self.root))

    results = _fixed("root", "results.json")
    config = _fixed("root", "config.yaml")
    records = _fixed("out", "records")
    model_file = _fixed("out", "model.json")
    given = _fixed("root", "given")

    def input(self, key: str) -> Path:
        """The normalized input tensor of image ``key`` when its photo cannot give it (``.npz``,
        float32)."""
        return self.out / "inputs" / f"{key}.npz"

    def photo(self, key: str) -> Path:
        """The input of image ``key`` in pixel space (lossless ``.webp``, or ``.png`` where
        Pillow has no WebP: :data:`xai_core.io.PHOTO_SUFFIX`); :func:`xai_core.io.photo_beside`
        finds it, or the ``.png`` of a run before WebP."""
        return photo_beside(self.out / "inputs" / f"{key}.npz")

    def map(self, key: str, name: str) -> Path:
        """An attribution map (:func:`xai_core.io.write_array`)."""
        return self.out / "maps" / key / f"{name}.npz"

    def figure(self, key: str, name: str) -> Path:
        return self.out / "figures" / key / f"{name}.png"

    def image(self, key: str, name: str) -> Path:
        """A synthesized image of image ``key`` (``.png``; its array, ``.npz``, beside it)."""
        return self.out / "images" / key / f"{name}.png"

    def run_image(self, label: str, name: str) -> Path:
        """An image of a synthesizer that runs once per run."""
        return self.out / "images" / label / f"{name}.png"

    def run_figure(self, label: str) -> Path:
        """The figure of a synthesizer that runs once per run."""
        return self.out / "figures" / f"{label}.png"

    grid = _fixed("out", "figures", "grid.png")
