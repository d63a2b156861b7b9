"""Ground-truth object masks for the localisation metrics in ``xai run`` (``masks:`` in a config).

Where an input's mask is (docs/masks.md has the whole convention):

- ``files``: an explicit mapping, input -> mask file. A key is the input as the config's
  ``inputs`` give it (``sample:cat``, ``photos/a.jpg``) or any path of the same file.
- ``folder``: ``<folder>/<class>/<stem>.png`` for an image of an ImageFolder tree (its class
  sub-folder), then ``<folder>/<stem>.png``; a sample's stem is its name (``cat``).

``files`` is looked up first. Relative paths are relative to the working directory, like
``inputs``; ``example:masks`` is the folder shipped beside the example configs.

How a mask file reads (:func:`read_mask`): a palette PNG (``P``, as Pascal VOC's label files) holds
class indices, and ``labels`` picks the object's; VOC's void border (255) is background unless
listed. Any other image is binary: greyscale (``1``, ``L``, 16-bit) nonzero is object; colour
(``RGB``) any channel nonzero; with transparency (``RGBA``, ``LA``) alpha nonzero. A mask has
its image's size and goes through exactly its image's geometry (:meth:`MaskSet.for_image`), with
nearest-neighbour resampling.

What does not live here: passing masks to metrics (:mod:`xai_core.runner.attribution`) and the
synthetic ground-truth set of ``xai benchmark`` (its masks are generated with its images).
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from xai_core.contracts.model import Preprocessing
from xai_core.errors import ConfigError, MaskError, did_you_mean
from xai_core.runner.examples import example_file
from xai_core.runner.inputs import SAMPLE_PREFIX, InputImage

__all__ = ["MaskSet", "read_mask", "check_mask_config", "VOID", "MASK_SUFFIX"]

#: Pascal VOC's label for object boundaries and regions nobody labelled.
VOID = 255
#: The suffix of mask files found in ``folder``: PNG is lossless (JPEG noise is not background).
MASK_SUFFIX = ".png"
#: EXIF orientations that swap width and height (rotations by 90 degrees, transpositions).
_SWAPPED = (5, 6, 7, 8)


def check_mask_config(masks: Any) -> None:
    """The ``masks:`` entry of a config (``folder``, ``files``, ``labels``) before any model
    loads: the folder and every mapped file exist, labels are palette indices."""
    if masks.folder is not None:
        folder = example_file(masks.folder)
        if not folder.is_dir():
            what = "is a file, not a folder" if folder.exists() else "does not exist"
            raise ConfigError(
                f"bad config value at 'masks.folder': {str(folder)!r} {what}; give the folder "
                "that holds <stem>.png for each input (relative paths start at the working "
                "directory, like inputs)"
            )
    missing = [
        f"{key!r}: {str(example_file(path))!r}"
        for key, path in masks.files.items()
        if not example_file(path).is_file()
    ]
    if missing:
        raise ConfigError(
            f"bad config value at 'masks.files': {len(missing)} mask file(s) do not exist: "
            f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}"
        )
    for i, label in enumerate(masks.labels):
        if not 0 <= label <= VOID:
            raise ConfigError(
                f"bad config value at 'masks.labels[{i}]': {label} is not a palette index "
                f"(0 to {VOID}); labels pick the object's classes in label PNGs such as "
                "Pascal VOC's (8 is cat there)"
            )


def read_mask(path: str | Path, labels: Sequence[int] = ()) -> np.ndarray:
    """The object pixels of a mask file, ``[H, W]`` bool at the file's own size (after its EXIF
    orientation, as images are read).

    :param labels: the label values that are the object in a palette (label) PNG.
    :raises MaskError: unreadable, a label PNG without ``labels``, or no object pixel.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MaskError(f"mask {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise MaskError(
            f"mask {str(path)!r} is not an image PIL can read ({type(exc).__name__}: {exc}); "
            "save masks as PNG"
        ) from None
    if image.mode == "P":
        values = np.asarray(image)
        present = ", ".join(str(v) for v in np.unique(values))
        if not labels:
            raise MaskError(
                f"mask {str(path)!r} is a label PNG (palette image) with values {present}; set "
                "`masks.labels` to the object's class values (e.g. labels: [8] for VOC's cat; "
                f"{VOID} is VOC's void border)"
            )
        mask = np.isin(values, list(labels))
        if not mask.any():
            raise MaskError(
                f"mask {str(path)!r} has no pixel of labels {list(labels)}: it holds the values "
                f"{present}; pick the object's class with `masks.labels`"
            )
        return mask
    mask = _binary(image)
    if not mask.any():
        raise MaskError(
            f"mask {str(path)!r} is all background (every pixel 0); an image without its object "
            "cannot be scored for localisation: remove it from the inputs"
        )
    return mask


def _binary(image: Image.Image) -> np.ndarray:
    """Object pixels of a binary mask: nonzero, or nonzero alpha where there is transparency."""
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        alpha = np.asarray(image.getchannel("A"))
        if (alpha < 255).any():  # a cut-out: the object is what is not transparent
            return alpha > 0
        image = image.convert("RGB")
    elif image.mode not in ("1", "L", "I", "F", "RGB") and not image.mode.startswith("I;16"):
        image = image.convert("RGB")
    values = np.asarray(image)
    return values.any(axis=-1) if values.ndim == 3 else values != 0


def _image_size(path: Path) -> tuple[int, int]:
    """An image's ``(width, height)`` as the runner reads it (after EXIF orientation), from its
    header only."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise MaskError(f"image {str(path)!r} cannot be read to check its mask: {exc}") from None
    return (height, width) if orientation in _SWAPPED else (width, height)


class MaskSet:
    """The masks of a run: finds each input's mask file and reads it at the model's input size.

    Build it with :meth:`from_config`; :meth:`for_image` gives the mask of an input as the model
    sees the image, :meth:`digest` the sha256 of its file (resuming redoes items whose mask
    changed).
    """

    def __init__(
        self,
        folder: str | Path | None = None,
        files: dict[str, str | Path] | None = None,
        labels: Sequence[int] = (),
    ):
        """:param folder: where ``<stem>.png`` masks are (``example:`` paths allowed).
        :param files: input (as written in ``inputs``, or a path of it) -> mask file.
        :param labels: label values of the object in palette (label) PNGs."""
        self.folder = example_file(str(folder)) if folder is not None else None
        self.files = {key: example_file(str(path)) for key, path in (files or {}).items()}
        self.labels = tuple(labels)
        # Keys that are paths also match the same file written another way.
        self._by_file = {
            os.path.realpath(key): path
            for key, path in self.files.items()
            if not key.startswith(SAMPLE_PREFIX)
        }

    @classmethod
    def from_config(cls, masks: Any) -> MaskSet | None:
        """The set of a config's ``masks:`` entry, or ``None`` when it names no masks."""
        if masks is None or (masks.folder is None and not masks.files):
            return None
        return cls(masks.folder, dict(masks.files), masks.labels)

    def candidates(self, source: InputImage) -> list[Path]:
        """The paths where the mask of ``source`` may be, in the order they are tried."""
        found = self.files.get(source.source) or self._by_file.get(source.resolved)
        paths = [found] if found is not None else []
        if self.folder is not None:
            if source.source.startswith(SAMPLE_PREFIX):
                stem = source.source[len(SAMPLE_PREFIX):]
            else:
                stem = source.path.stem
            if source.label is not None:
                paths.append(self.folder / source.label / f"{stem}{MASK_SUFFIX}")
            paths.append(self.folder / f"{stem}{MASK_SUFFIX}")
        return paths

    def path(self, source: InputImage) -> Path:
        """The mask file of ``source``; :class:`MaskError` naming where it was looked for."""
        paths = self.candidates(source)
        for path in paths:
            if path.is_file():
                return path
        looked = ", ".join(repr(str(p)) for p in paths)
        message = f"no ground-truth mask for input {source.source!r}"
        message += f": looked for {looked}" if paths else " (not a key of masks.files)"
        message += did_you_mean(
            source.source, self.files, otherwise=".", lead="did you mean the masks.files key"
        )
        raise MaskError(
            f"{message} Put its mask there, map the input to its mask under `masks.files`, "
            "or leave the image out of the inputs"
        )

    def digest(self, source: InputImage) -> str | None:
        """The sha256 of the mask file of ``source``, or ``None`` when it has none (its items
        fail then, and are redone on the next run anyway)."""
        try:
            path = self.path(source)
            return hashlib.sha256(path.read_bytes()).hexdigest()
        except (MaskError, OSError):
            return None

    def for_image(self, source: InputImage, preprocessing: Preprocessing) -> Tensor:
        """The mask of ``source`` as the model sees the image: ``[H, W]`` bool at
        ``preprocessing.input_size``, resized and cropped like the image, nearest-neighbour.

        :raises MaskError: no mask, unreadable, a size other than the image's, or no object
            pixel (in the file, or inside the model's centre crop).
        """
        path = self.path(source)
        mask = read_mask(path, self.labels)
        height, width = mask.shape
        size = _image_size(source.path)
        if (width, height) != size:
            raise MaskError(
                f"mask {str(path)!r} is {width}x{height} pixels but its image "
                f"{source.source!r} is {size[0]}x{size[1]}; a mask is drawn on the original "
                "image, at its size (resize and crop happen here, like the image's)"
            )
        image = Image.fromarray(mask.astype(np.uint8) * 255)
        cropped = np.asarray(preprocessing.resize_crop(image, "nearest")) > 0
        if not cropped.any():
            raise MaskError(
                f"the object of mask {str(path)!r} lies outside the model's centre crop of "
                f"{source.source!r} ({'x'.join(map(str, preprocessing.input_size))} after "
                f"resizing the short side to {preprocessing.resize_size})"
            )
        return torch.from_numpy(cropped.copy())
