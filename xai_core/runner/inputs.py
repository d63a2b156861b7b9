"""Input images: files, globs, folders, list files, and the built-in samples (``sample:cat``).

- A folder is searched recursively. When images sit in sub-folders (an ImageFolder-style tree,
  ``root/<class>/<image>``), each image's ``label`` is its top sub-folder's name, which
  ``target: label`` turns into the class to explain.
- A ``.txt`` / ``.lst`` file lists one input per line (paths relative to the list file; blank
  lines and ``#`` comments are ignored).
- The samples are the photos scikit-image ships in ``skimage/data``, so demos and tests need no
  network.

This module finds and reads images (:class:`ImageDataset` does it in DataLoader workers);
preprocessing belongs to the model handle.

What an input becomes follows the model's channel count ``C`` (:func:`read_input`): image files
are read as 8-bit RGB for ``C = 3`` and as grayscale (PIL's ``"L"``) for ``C = 1``. Other
channel counts (RGB-D, multispectral bands) come from ``.npy`` arrays, ``[C, H, W]`` or
``[H, W, C]`` (``[H, W]`` for one channel), holding pixel values in ``[0, 1]`` before the
model's normalization: floats as they are (values outside ``[0, 1]`` are refused: scale raw
bands first), unsigned integers divided by their type's maximum (``uint8`` by 255, ``uint16``
by 65535). A ``.npy`` file works for any ``C``; a folder's ``.npy`` files are inputs when
``resolve_inputs(..., arrays=True)`` (the runner asks for them for a model of other than 1 or 3
channels), so that arrays beside the photos of an RGB run are not read as inputs.

An image a run cannot explain fails its item with a message, as an unreadable file does: one
too large to decode safely (a decompression bomb), one with an extreme aspect ratio (see
:class:`~xai_core.contracts.model.Preprocessing`), and one with a side under
:data:`MIN_IMAGE_SIDE` pixels. Such an image is refused rather than upscaled with a warning:
a 1x1 image becomes 224x224 copies of one colour, so its map explains the model's answer to a
flat colour, not the picture, and a warning beside a result invites reading that result. Small
images above the minimum (a 32-pixel CIFAR image on a 224-pixel model) are resized as the
model's preprocessing says, as for any other image.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import importlib.util
import io
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor
from torchvision.transforms import functional as F

from xai_core.errors import InputError, UnknownNameError, XaiError
from xai_core.io import PHOTO_SUFFIXES, read_array

__all__ = [
    "InputImage",
    "ImageDataset",
    "SAMPLES",
    "sample_path",
    "resolve_inputs",
    "load_image",
    "read_image",
    "read_input",
    "ARRAY_SUFFIXES",
    "content_sha256",
    "IMAGE_SUFFIXES",
    "LIST_SUFFIXES",
    "MIN_IMAGE_SIDE",
    "check_image_size",
]

#: The smallest side, in pixels, of an image a run explains (the smallest ``input_size`` a
#: config accepts); smaller ones fail their item (see the module doc).
MIN_IMAGE_SIDE = 8

SAMPLE_PREFIX = "sample:"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
LIST_SUFFIXES = (".txt", ".lst")
#: Array inputs: one image of any channel count (see the module doc).
ARRAY_SUFFIXES = (".npy",)

#: Sample name -> (file in skimage/data, description).
SAMPLES: dict[str, tuple[str, str]] = {
    "cat": ("chelsea.png", "Chelsea the cat (an ImageNet 'tiger cat'/'tabby')"),
    "coffee": ("coffee.png", "a cup of coffee on a saucer ('espresso')"),
    "astronaut": ("astronaut.png", "astronaut Eileen Collins"),
    "rocket": ("rocket.jpg", "a rocket on its launch pad"),
    "motorcycle": ("motorcycle_left.png", "a motorcycle (left view of a stereo pair)"),
    "camera": ("camera.png", "the cameraman (grayscale)"),
    "coins": ("coins.png", "Greek coins (grayscale)"),
    "hubble": ("hubble_deep_field.jpg", "the Hubble deep field"),
    "retina": ("retina.jpg", "a human retina"),
    "immunohistochemistry": ("ihc.png", "an immunohistochemistry slide"),
    "brick": ("brick.png", "a brick wall texture (grayscale)"),
    "grass": ("grass.png", "a grass texture (grayscale)"),
}


@dataclass(frozen=True)
class InputImage:
    """One input: a unique, filesystem-safe ``key`` (used in output file names), its path, and
    its ImageFolder ``label`` (the class folder it sits in) when it has one.

    The key is readable, not an identity: two runs may give the same key to different files (the
    same name in another folder). A run's records therefore also store :attr:`resolved` and the
    sha256 of the bytes read, and are refused when either differs.
    """

    key: str
    source: str
    path: Path
    label: str | None = None

    @property
    def resolved(self) -> str:
        """The absolute path of the file, symbolic links followed: where its bytes come from."""
        return _resolved(str(self.path))


@functools.lru_cache(maxsize=4096)
def _real_folder(folder: str) -> str:
    return os.path.realpath(folder)


def _resolved(path: str) -> str:
    """``realpath`` with the folder resolved once for all its files (resuming a large folder
    would otherwise walk every path component of every file)."""
    if os.path.islink(path):
        return os.path.realpath(path)
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(_real_folder(folder), name)


def _skimage_data_dir() -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "sample photos come from scikit-image, which is not installed: pip install scikit-image"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def sample_path(name: str) -> Path:
    """The file behind ``sample:NAME``."""
    if name not in SAMPLES:
        raise UnknownNameError("sample", name, SAMPLES, "samples")
    path = _skimage_data_dir() / SAMPLES[name][0]
    if not path.is_file():
        raise InputError(f"sample {name!r}: {path} is missing from the scikit-image install")
    return path


def _safe_key(text: str) -> str:
    key = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "image"
    return key[:80]


_Found = list[tuple[str, Path, str, str | None]]


def _expand(spec: str, found: _Found, depth: int, arrays: bool = False) -> None:
    """Append the images ``spec`` names to ``found``: ``(source, path, key stem, label)``."""
    if spec.startswith(SAMPLE_PREFIX):
        name = spec[len(SAMPLE_PREFIX) :]
        found.append((spec, sample_path(name), name, None))
        return
    path = Path(spec).expanduser()
    if path.is_dir():
        _expand_folder(spec, path, found, arrays)
    elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        _expand_list(spec, path, found, depth, arrays)
    elif path.is_file():
        found.append((spec, path, path.stem, None))
    elif glob.has_magic(spec):
        files = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
        if not files:
            raise InputError(f"pattern {spec!r} matches no files")
        found.extend((str(p), p, p.stem, None) for p in files)
    else:
        raise InputError(
            f"input {spec!r} is not a file, folder, glob, list file or sample; samples are "
            f"written 'sample:NAME' ({', '.join(SAMPLES)})"
        )


def _expand_folder(spec: str, path: Path, found: _Found, arrays: bool = False) -> None:
    """A folder's images (and arrays, with ``arrays``), recursively; in a class folder, the
    class is the label."""
    suffixes = IMAGE_SUFFIXES + (ARRAY_SUFFIXES if arrays else ())
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise InputError(f"folder {spec!r} holds no images ({', '.join(suffixes)})")
    for p in files:
        relative = p.relative_to(path)
        label = relative.parts[0] if len(relative.parts) > 1 else None
        found.append((str(p), p, str(relative.with_suffix("")), label))


def _expand_list(spec: str, path: Path, found: _Found, depth: int, arrays: bool) -> None:
    """The inputs a list file names, one a line (relative to the list file)."""
    if depth > 3:
        raise InputError(f"list file {spec!r} nests list files too deeply")
    for line in path.read_text().splitlines():
        entry = line.strip()
        if entry and not entry.startswith("#"):
            is_sample = entry.startswith(SAMPLE_PREFIX)
            target = entry if is_sample or Path(entry).is_absolute() else str(path.parent / entry)
            _expand(target, found, depth + 1, arrays)


def resolve_inputs(specs: list[str] | str, *, arrays: bool = False) -> list[InputImage]:
    """Expand files, globs, folders (recursively), list files and ``sample:NAME`` into inputs.

    Every spec must match at least one file; keys are unique (a suffix is added on collision)
    and safe as file names whatever the input names contain. ``arrays``: a folder's ``.npy``
    files are inputs too (a model of other than 1 or 3 channels reads arrays).
    """
    if isinstance(specs, str):
        specs = [specs]
    found: _Found = []
    for spec in specs:
        _expand(spec, found, 0, arrays)
    images: list[InputImage] = []
    used: set[str] = set()
    for source, path, stem, label in found:
        key = base = _safe_key(stem)
        n = 1
        while key in used:
            n += 1
            key = f"{base}-{n}"
        used.add(key)
        images.append(InputImage(key=key, source=source, path=path, label=label))
    return images


def content_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes, without decoding them (what resuming compares)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_image(path: str | Path) -> tuple[Image.Image, str]:
    """Read an image as 8-bit RGB and the sha256 of the exact bytes decoded, or raise
    :class:`InputError` saying why it cannot be read.

    The file is read once; the hash and the decoder see the same bytes, so a record made from
    the result names the content it was computed on even if the file changes meanwhile.
    """
    path = Path(path)
    data = _read_bytes(path)
    return _decode(data, path), hashlib.sha256(data).hexdigest()


def read_input(path: str | Path, channels: int = 3) -> tuple[Image.Image | Tensor, str]:
    """Read an input for a model of ``channels`` input channels, and the sha256 of its bytes:
    an image file as 8-bit RGB (3 channels) or grayscale ``"L"`` (1 channel), a ``.npy`` array
    as a float tensor ``[C, H, W]`` in ``[0, 1]`` (see the module doc); :class:`InputError`
    saying why when it cannot be read or does not have ``channels`` channels."""
    path = Path(path)
    data = _read_bytes(path)
    sha256 = hashlib.sha256(data).hexdigest()
    if path.suffix.lower() in ARRAY_SUFFIXES:
        return _decode_array(data, path, channels), sha256
    if channels not in (1, 3):
        raise InputError(
            f"{str(path)!r} is an image file, but the model takes {channels} channels: image "
            f"files give 1 (grayscale) or 3 (RGB); give each input as a .npy array "
            f"[{channels}, H, W] or [H, W, {channels}] with values in [0, 1]"
        )
    image = _decode(data, path)
    return (image.convert("L") if channels == 1 else image), sha256


def _read_bytes(path: Path) -> bytes:
    """The bytes of an input file; :class:`InputError` when there are none to read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"image {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{str(path)!r} is a folder, not an image file") from None
    except OSError as exc:
        raise InputError(f"image {str(path)!r} cannot be read: {exc}") from None
    if not data:
        raise InputError(
            f"image {str(path)!r} is an empty file (0 bytes); an interrupted copy or download "
            "leaves such files: copy it again or remove it from the inputs"
        )
    return data


def _decode_array(data: bytes, path: Path, channels: int) -> Tensor:
    """A ``.npy`` input as ``[channels, H, W]`` float32 in ``[0, 1]`` (see the module doc)."""
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{str(path)!r} is not a .npy array numpy can read: {exc}") from None
    array = _channels_first(array, path, channels)
    if np.issubdtype(array.dtype, np.unsignedinteger):
        array = array / np.iinfo(array.dtype).max
    elif not np.issubdtype(array.dtype, np.floating):
        raise InputError(
            f"array {str(path)!r} holds {array.dtype} values; give floats in [0, 1] or "
            "unsigned integers (uint8, uint16: divided by their maximum)"
        )
    array = np.asarray(array, dtype=np.float32)
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
        raise InputError(
            f"array {str(path)!r} holds values in [{np.nanmin(array):.4g}, "
            f"{np.nanmax(array):.4g}] (or non-finite ones); inputs are pixel values in [0, 1] "
            "before the model's normalization: scale raw bands first (divide by the sensor's "
            "maximum, or by each band's range)"
        )
    return torch.from_numpy(np.ascontiguousarray(array))


def _channels_first(array: np.ndarray, path: Path, channels: int) -> np.ndarray:
    """``array`` as ``[channels, H, W]``: given so, as ``[H, W, channels]``, or (one channel)
    ``[H, W]``."""
    if array.ndim == 2 and channels == 1:
        return array[None]
    if array.ndim == 3 and array.shape[0] == channels:
        return array
    if array.ndim == 3 and array.shape[-1] == channels:
        return array.transpose(2, 0, 1)
    raise InputError(
        f"array {str(path)!r} has shape {array.shape}, but the model takes {channels} "
        f"channel(s): give [{channels}, H, W] or [H, W, {channels}]"
    )


def load_image(path: str | Path) -> Image.Image:
    """Read an image as 8-bit RGB, or raise :class:`InputError` saying why it cannot be read."""
    return read_image(path)[0]


def _decode(data: bytes, path: Path) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                # Photos from cameras and phones store their orientation separately.
                image = ImageOps.exif_transpose(image)
                return _to_rgb(image)
    except UnidentifiedImageError:
        raise InputError(f"{str(path)!r} is not an image PIL can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"image {str(path)!r} is too large to decode safely: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"image {str(path)!r} cannot be read: {exc}") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        if image.mode == "F" and array.max() <= 1.0:
            top = 1.0
        else:
            top = 65535.0 if array.max() > 255 else 255.0
        image = Image.fromarray((array / top * 255).round().clip(0, 255).astype("uint8"))
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def check_image_size(
    image: Image.Image | Tensor, input_size: tuple[int, int] | None = None
) -> None:
    """Raise :class:`InputError` for an image (or array input ``[C, H, W]``) with a side under
    :data:`MIN_IMAGE_SIDE` pixels, saying how far the model's ``input_size`` would upscale it."""
    width, height = image.size if isinstance(image, Image.Image) else image.shape[:0:-1]
    if min(width, height) >= MIN_IMAGE_SIDE:
        return
    upscale = ""
    if input_size is not None:
        factor = max(input_size) / max(1, min(width, height))
        upscale = (f"; the model's preprocessing would upscale it {factor:.0f}x to "
                   f"{input_size[1]}x{input_size[0]}, so its map would explain a few flat "
                   "colours, not a picture")
    raise InputError(
        f"image of {width}x{height} pixels is smaller than {MIN_IMAGE_SIDE} pixels on a side"
        f"{upscale}. Give the image at its full resolution, or leave it out of the inputs."
    )


class ImageDataset:
    """A torch-style dataset over inputs: item ``i`` is ``(i, pixels [C,H,W] in [0,1], inputs
    (the pixels normalized for the model), error, sha256)``, the last being the hash of the
    bytes decoded (``None`` when unreadable); ``C`` is the preprocessing's channel count.

    Reading, hashing and preprocessing happen in DataLoader workers; an unreadable image yields
    ``pixels=None`` and the error message instead of raising, so one bad file fails one item.
    """

    def __init__(self, images: list[InputImage], preprocessing: Any):
        self.images = images
        self.preprocessing = preprocessing

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[int, Any, Any, str | None, str | None]:
        try:
            image, sha256 = read_input(self.images[index].path, self.preprocessing.channels)
            check_image_size(image, tuple(self.preprocessing.input_size))
            pixels = self.preprocessing.to_pixels(image)
            # Normalized here too: tensor work in the main process competes with the model's
            # threads (on few cores each small operation then waits for a busy core).
            return index, pixels, self.preprocessing.normalize(pixels), None, sha256
        except XaiError as exc:
            return index, None, None, str(exc), None
        except Exception as exc:  # a broken decoder must not take the run down
            return (
                index,
                None,
                None,
                f"cannot read {self.images[index].source!r}: {type(exc).__name__}: {exc}",
                None,
            )


def collate_items(batch: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Keep items as a list: some have no pixels (errors), sizes are checked later."""
    return batch


def photo_is_input(pixels: torch.Tensor) -> bool:
    """Whether the 8-bit RGB PNG of ``pixels`` (``[C, H, W]`` in ``[0, 1]``) gives them back
    bit for bit: an RGB photo, whose pixels are 8-bit values over 255 (``to_tensor`` of a
    decoded image). Its normalized input is then the photo normalized, and the run stores the
    photo alone (:func:`stored_input`)."""
    return pixels.shape[0] == 3 and bool(torch.equal(torch.round(pixels * 255) / 255, pixels))


def stored_input(path: str | os.PathLike[str], preprocessing: Any) -> torch.Tensor:
    """The normalized input a run stored (``files["input"]`` of an item): its photo normalized
    by ``preprocessing`` (the model's), or its float32 array."""
    path = Path(path)
    if path.suffix in PHOTO_SUFFIXES:
        with Image.open(path) as photo:
            pixels = F.to_tensor(photo.convert("RGB"))
        return preprocessing.normalize(pixels)
    return torch.from_numpy(read_array(path))

