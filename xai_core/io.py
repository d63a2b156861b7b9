"""Atomic file writes: a reader never sees a half-written output, even after a crash.

Each writer writes to a temporary file in the destination folder, flushes it to disk, then
renames it over the destination (``os.replace`` is atomic on POSIX and Windows).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image

__all__ = ["atomic_open", "write_json", "write_text", "write_npy", "write_png", "save_figure"]


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success it replaces ``path``, on error it goes."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def write_npy(path: str | os.PathLike[str], array: np.ndarray) -> None:
    with atomic_open(path, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


def write_png(path: str | os.PathLike[str], pixels: Any) -> None:
    """An image tensor/array ``[3, H, W]`` in ``[0, 1]`` as an 8-bit RGB PNG."""

    array = np.asarray(pixels, dtype=np.float32)
    if array.ndim == 3 and array.shape[0] == 3:
        array = array.transpose(1, 2, 0)
    image = Image.fromarray((np.clip(array, 0, 1) * 255).round().astype(np.uint8))
    with atomic_open(path, "wb") as handle:
        image.save(handle, format="PNG")


def save_figure(path: str | os.PathLike[str], figure: Any, **kwargs: Any) -> None:
    """Save a matplotlib figure atomically (PNG)."""
    kwargs.setdefault("dpi", 100)
    kwargs.setdefault("bbox_inches", "tight")
    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, format="png", **kwargs)
