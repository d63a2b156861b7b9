"""Input images: files, globs, folders, and the built-in sample photos (``sample:cat``).

The samples are the photos scikit-image ships in ``skimage/data``, so demos and tests need no
network. This module finds and reads images; preprocessing belongs to the model handle.
"""

from __future__ import annotations

import glob
import importlib.util
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .errors import InputError, UnknownNameError

__all__ = ["InputImage", "SAMPLES", "sample_path", "resolve_inputs", "load_image", "IMAGE_SUFFIXES"]

SAMPLE_PREFIX = "sample:"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")

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
    """One input: a unique, filesystem-safe ``key`` (used in output file names) and its path."""

    key: str
    source: str
    path: Path


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


def resolve_inputs(specs: list[str] | str) -> list[InputImage]:
    """Expand files, globs, folders (recursively) and ``sample:NAME`` into a list of inputs.

    Every spec must match at least one image; keys are unique (a suffix is added on collision).
    """
    if isinstance(specs, str):
        specs = [specs]
    found: list[tuple[str, Path, str]] = []
    for spec in specs:
        if spec.startswith(SAMPLE_PREFIX):
            name = spec[len(SAMPLE_PREFIX) :]
            found.append((spec, sample_path(name), name))
            continue
        path = Path(spec).expanduser()
        if path.is_dir():
            files = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not files:
                raise InputError(f"folder {spec!r} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            found.extend((str(p), p, str(p.relative_to(path).with_suffix(""))) for p in files)
        elif path.is_file():
            found.append((spec, path, path.stem))
        elif glob.has_magic(spec):
            files = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
            if not files:
                raise InputError(f"pattern {spec!r} matches no files")
            found.extend((str(p), p, p.stem) for p in files)
        else:
            raise InputError(
                f"input {spec!r} is not a file, folder, glob or sample; samples are written "
                f"'sample:NAME' ({', '.join(SAMPLES)})"
            )
    images: list[InputImage] = []
    used: set[str] = set()
    for source, path, stem in found:
        key = base = _safe_key(stem)
        n = 1
        while key in used:
            n += 1
            key = f"{base}-{n}"
        used.add(key)
        images.append(InputImage(key=key, source=source, path=path))
    return images


def load_image(path: str | Path) -> Image.Image:
    """Read an image as 8-bit RGB, or raise :class:`InputError` saying why it cannot be read."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                return _to_rgb(image)
    except FileNotFoundError:
        raise InputError(f"image {str(path)!r} does not exist") from None
    except UnidentifiedImageError:
        raise InputError(f"{str(path)!r} is not an image PIL can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"image {str(path)!r} is too large to decode safely: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"image {str(path)!r} cannot be read: {exc}") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        import numpy as np

        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if array.max() > 255 else 255.0
        image = Image.fromarray((array / top * 255).round().clip(0, 255).astype("uint8"))
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")
