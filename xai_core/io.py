"""Atomic file writes: a reader never sees a half-written output, even after a crash.

Each writer writes to a temporary file in the destination folder, flushes it to disk, then
renames it over the destination (``os.replace`` is atomic on POSIX and Windows). The temporary
file gets the mode an ordinary ``open`` would give (``0o666`` less the umask), not the ``0600``
of :func:`tempfile.mkstemp`, so outputs are as readable as any other file the user makes.

Every writer returns the :class:`FileDigest` (size and sha256) of what it wrote, computed from
the bytes as they pass through, so a run can record them and a later run or ``xai verify`` can
tell an intact output from a damaged one without decoding it. Inside :func:`recording_digests`
every atomic write in the context is also collected, including those of code that does not pass
the digest on (figure helpers).

JSON is strict: :func:`write_json` never writes ``NaN`` or ``Infinity`` (which many parsers
reject). A non-finite float becomes ``null``; when it sat under a dictionary key ``name``, the
key ``name_note`` beside it says what it was (``"nan: not finite, written as null"``).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, features

__all__ = [
    "FileDigest",
    "atomic_open",
    "digest_file",
    "recording_digests",
    "finite_json",
    "write_json",
    "write_bytes",
    "write_text",
    "write_npy",
    "write_png",
    "write_photo",
    "PHOTO_SUFFIX",
    "PHOTO_SUFFIXES",
    "photo_beside",
    "save_figure",
    "FILE_MODE",
]

_CHUNK = 1 << 20


def _read_umask() -> int:
    """The process umask without changing it (Linux reports it in ``/proc``); elsewhere the
    set-and-restore dance, done once at import before any thread of ours writes files."""
    with contextlib.suppress(OSError, ValueError):
        status = Path("/proc/self/status").read_text()
        found = re.search(r"^Umask:\s*([0-7]+)$", status, re.MULTILINE)
        if found:
            return int(found.group(1), 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: The mode of every file written here: what ``open(path, "w")`` would create.
FILE_MODE = 0o666 & ~_read_umask()


@dataclass(frozen=True)
class FileDigest:
    """The size and sha256 of a written file: enough to tell it intact without decoding it."""

    size: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {"size": self.size, "sha256": self.sha256}


_recorder: contextvars.ContextVar[dict[str, FileDigest] | None] = contextvars.ContextVar(
    "xai_io_recorder", default=None
)


@contextlib.contextmanager
def recording_digests() -> Iterator[dict[str, FileDigest]]:
    """Collect ``{absolute path: digest}`` of every atomic write made in this context."""
    written: dict[str, FileDigest] = {}
    token = _recorder.set(written)
    try:
        yield written
    finally:
        _recorder.reset(token)


def digest_file(path: str | os.PathLike[str]) -> FileDigest:
    """Size and sha256 of a file on disk (read in chunks; nothing is decoded)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return FileDigest(size, digest.hexdigest())


class _HashingWriter:
    """A binary file object that hashes what is written through it.

    It exposes no ``fileno`` on purpose: PIL writes straight to a file descriptor when it finds
    one, bypassing ``write``. A writer that seeks back (rewriting a header) makes the running
    hash useless; :attr:`linear` then turns false and the file is hashed from disk instead.
    """

    def __init__(self, raw: IO[bytes]):
        self._raw = raw
        self._hash = hashlib.sha256()
        self._position = 0
        self.size = 0
        self.linear = True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        written = self._raw.write(view)
        count = len(view) if written is None else written
        if self.linear and self._position == self.size:
            self._hash.update(view[:count])
            self.size += count
        else:
            self.linear = False
        self._position += count
        self.size = max(self.size, self._position)
        return count

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._position = self._raw.seek(offset, whence)
        if self._position != self.size:
            self.linear = False
        return self._position

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        self._raw.flush()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self._raw.closed

    @property
    def name(self) -> str:
        return str(getattr(self._raw, "name", ""))

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class AtomicFile:
    """What :func:`atomic_open` yields: the file to write, and after the block its digest."""

    def __init__(self, handle: IO[Any]):
        self.handle = handle
        self.digest: FileDigest | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.handle)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file beside ``path``; on success it replaces ``path``, on error it goes.

    The object yielded writes like the file; after the ``with`` block its ``digest`` holds the
    :class:`FileDigest` of what was written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, mode) as raw:
            hashing = _HashingWriter(raw) if "b" in mode else None
            result = AtomicFile(hashing if hashing is not None else raw)
            yield result
            raw.flush()
            os.fsync(raw.fileno())
        if hashing is not None and hashing.linear:
            digest = FileDigest(hashing.size, hashing.hexdigest())
        else:  # text mode, or a writer that seeked back: hash what is on disk
            digest = digest_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    result.digest = digest
    recorder = _recorder.get()
    if recorder is not None:
        recorder[os.path.abspath(target)] = digest


def write_bytes(path: str | os.PathLike[str], data: bytes) -> FileDigest:
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return handle.digest


def write_text(path: str | os.PathLike[str], text: str) -> FileDigest:
    return write_bytes(path, text.encode("utf-8"))


def _note(value: float) -> str:
    kind = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return f"{kind}: not finite, written as null"


def _finite(value: Any, notes: list[str]) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, (float, np.floating)):
        return _finite_float(float(value), notes)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return _finite(value.tolist(), notes)
    if isinstance(value, dict):
        return _finite_dict(value, notes)
    if isinstance(value, (list, tuple)):
        return [_finite(item, notes) for item in value]
    return value


def _finite_float(value: float, notes: list[str]) -> float | None:
    if math.isfinite(value):
        return value
    notes.append(_note(value))
    return None


def _finite_dict(value: dict[Any, Any], notes: list[str]) -> dict[Any, Any]:
    """``value`` made finite, a ``<key>_note`` beside each key whose value was not (unless
    ``value`` has that key already)."""
    out: dict[Any, Any] = {}
    for key, item in value.items():
        found: list[str] = []
        out[key] = _finite(item, found)
        if found:
            notes.extend(found)
            note_key = f"{key}_note"
            if note_key not in value:
                kinds = sorted({n.split(":")[0] for n in found})
                out[note_key] = (
                    found[0] if len(found) == 1
                    else f"{len(found)} values not finite ({', '.join(kinds)}), written as null"
                )
    return out


def finite_json(data: Any) -> Any:
    """``data`` with every non-finite float as ``None`` and a ``<key>_note`` beside the key that
    held it (see the module doc); numpy scalars and arrays become plain JSON values."""
    return _finite(data, [])


class _NotPlain(Exception):
    """Raised inside the fast encoder for values only :func:`finite_json` can write."""


def _plain(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating) and math.isfinite(value):
        return float(value)
    if isinstance(value, (np.floating, np.ndarray)):
        raise _NotPlain
    return str(value)


def write_json(
    path: str | os.PathLike[str], data: Any, *, indent: int | None = 2
) -> FileDigest:
    """Strict JSON (no ``NaN``/``Infinity``: see :func:`finite_json`), atomically.

    ``indent=None`` writes one line with Python's C encoder, several times faster: for large
    machine-read files (``results.json``, records) written on every run and resume.
    """
    try:  # nearly all data is finite: encode directly, sanitise only when needed
        text = json.dumps(data, indent=indent, allow_nan=False, default=_plain)
    except (ValueError, _NotPlain):
        text = json.dumps(finite_json(data), indent=indent, allow_nan=False, default=str)
    return write_text(path, text + "\n")


def write_npy(path: str | os.PathLike[str], array: np.ndarray) -> FileDigest:
    with atomic_open(path, "wb") as handle:
        np.save(handle, array, allow_pickle=False)
    return handle.digest


def _rgb8(pixels: Any) -> Image.Image:
    """An image tensor/array ``[3, H, W]`` (or ``[H, W, 3]``, ``[H, W]``) in ``[0, 1]`` as an
    8-bit PIL image."""
    array = np.asarray(pixels, dtype=np.float32)
    if array.ndim == 3 and array.shape[0] == 3:
        array = array.transpose(1, 2, 0)
    return Image.fromarray((np.clip(array, 0, 1) * 255).round().astype(np.uint8))


def write_png(path: str | os.PathLike[str], pixels: Any) -> FileDigest:
    """An image tensor/array ``[3, H, W]`` in ``[0, 1]`` as an 8-bit RGB PNG.

    Compressed at zlib level 1: a quarter of the default level's encoding time for files about
    6% larger (PNG is lossless at every level), which matters when a run writes one per input.
    """
    image = _rgb8(pixels)
    with atomic_open(path, "wb") as handle:
        image.save(handle, format="PNG", compress_level=1)
    return handle.digest


#: Whether this Pillow encodes WebP (its wheels bundle libwebp; a build from source may not).
WEBP = features.check("webp")
#: The suffix of the photo a run keeps of each input (:func:`write_photo`).
PHOTO_SUFFIX = ".webp" if WEBP else ".png"
#: The suffixes a run's photos have had (a file of one of these is a photo, not an array).
PHOTO_SUFFIXES = (".webp", ".png")


def photo_beside(path: str | os.PathLike[str]) -> Path:
    """The photo a run keeps beside an input file (``inputs/<image>.npz`` or the photo itself):
    ``inputs/<image>.webp``, or the ``.png`` of runs before WebP (or of a Pillow without it)
    where only that one exists."""
    path = Path(path)
    found = (path.with_suffix(s) for s in PHOTO_SUFFIXES)
    return next((photo for photo in found if photo.is_file()), path.with_suffix(PHOTO_SUFFIX))


def write_photo(path: str | os.PathLike[str], pixels: Any) -> FileDigest:
    """The 8-bit photo of an input, as lossless WebP where ``path`` ends in ``.webp`` (else a
    PNG, :func:`write_png`): the same pixels exactly, in about three quarters of the bytes of
    a PNG of a photo for about the same encoding time (``method`` 0; measured at 224 px)."""
    if not os.fspath(path).endswith(".webp"):
        return write_png(path, pixels)
    image = _rgb8(pixels)
    with atomic_open(path, "wb") as handle:
        image.save(handle, format="WEBP", lossless=True, method=0)
    return handle.digest


def save_figure(
    path: str | os.PathLike[str], figure: Any, *, palette: bool = False, **kwargs: Any
) -> FileDigest:
    """Save a matplotlib figure atomically (PNG, zlib level 1: see :func:`write_png`; for a
    figure it halves the time of ``savefig`` for files about 6% larger).

    ``palette`` stores it as a 256-colour PNG (about a quarter of the bytes of a figure of
    photos, as the per-item figures are): for figures to look at, not to measure pixels on
    (the images themselves are saved apart)."""
    kwargs.setdefault("dpi", 100)
    kwargs.setdefault("bbox_inches", "tight")
    if not palette:
        kwargs.setdefault("pil_kwargs", {"compress_level": 1})
        with atomic_open(path, "wb") as handle:
            figure.savefig(handle, format="png", **kwargs)
        return handle.digest
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", **kwargs)
    buffer.seek(0)
    with Image.open(buffer) as image:
        small = image.convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE)
    out = io.BytesIO()
    small.save(out, format="PNG", compress_level=6)
    return write_bytes(path, out.getvalue())


#: The dtypes a stored array may have (``storage: {dtype: ...}`` of a run config).
ARRAY_DTYPES = ("float16", "float32")


def write_array(
    path: str | os.PathLike[str], array: Any, dtype: str = "float16"
) -> FileDigest:
    """A map or an image array as a compressed ``.npz``, atomically (read it with
    :func:`read_array`).

    ``float16`` by default: half the bytes of float32 before compression, and a map read back
    is within float16's relative precision (2**-11) of its largest magnitude, whatever its
    range: the values are stored divided by a power of two (``scale``, exact in binary) that
    brings the largest magnitude into [0.5, 1], so tiny gradients never fall into float16's
    subnormals and large ones never overflow. ``float32`` on request stores the values as they
    are (``scale`` 1).

    The values are stored as byte planes (``planes``, ``uint8`` ``[itemsize, *shape]``: plane
    ``k`` holds byte ``k`` of each little-endian value), the shuffle of Blosc and Zarr: the
    planes of signs and exponents, smooth across a map, deflate far better apart from the
    mantissas' noise (a third off a Grad-CAM map, a tenth off a gradient map, measured).
    Readable with numpy alone: ``a = np.load(path)``, then
    ``np.ascontiguousarray(np.moveaxis(a["planes"], 0, -1)).view("<f2")[..., 0] * a["scale"]``
    (``"<f4"`` where ``a["dtype"]`` is float32). The zip container checks each member's CRC,
    and one file per map keeps resume, checksums and atomic writes as they were.
    """
    scaled, scale = _scaled(array, dtype)
    little = scaled.astype(scaled.dtype.newbyteorder("<"), copy=False)
    planes = np.moveaxis(little.view(np.uint8).reshape(*scaled.shape, scaled.itemsize), -1, 0)
    buffer = io.BytesIO()  # zipfile seeks back to write headers: hash the bytes once, in memory
    np.savez_compressed(buffer, planes=planes, dtype=np.array(dtype), scale=scale)
    return write_bytes(path, buffer.getvalue())


def _scaled(array: Any, dtype: str) -> tuple[np.ndarray, np.float32]:
    """What :func:`write_array` stores of ``array``: the values over ``scale``, as ``dtype``."""
    if dtype not in ARRAY_DTYPES:
        raise ValueError(f"dtype {dtype!r}: use one of {', '.join(ARRAY_DTYPES)}")
    values = np.asarray(array, dtype=np.float32)
    scale = np.float32(1.0)
    if dtype == "float16":
        finite = np.abs(values[np.isfinite(values)])
        largest = float(finite.max()) if finite.size else 0.0
        if largest > 0:
            scale = np.float32(2.0 ** math.ceil(math.log2(largest)))
    return (values / scale).astype(dtype), scale


def stored_values(array: Any, dtype: str = "float16") -> np.ndarray:
    """``array`` as :func:`read_array` gives it back once :func:`write_array` stored it
    (float32): what a run scores and draws, so a score renewed from the saved map equals the
    score of the first run. Storing the result again stores the same values."""
    scaled, scale = _scaled(array, dtype)
    return scaled.astype(np.float32) * scale


def read_array(path: str | os.PathLike[str]) -> np.ndarray:
    """An array of :func:`write_array` (or a plain ``.npy`` of older runs) as float32."""
    path = os.fspath(path)
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as archive:
            if "planes" in archive:
                planes = np.moveaxis(archive["planes"], 0, -1)
                dtype = np.dtype(str(archive["dtype"])).newbyteorder("<")
                scaled = np.ascontiguousarray(planes).view(dtype)[..., 0]
            else:  # the float16 ``.npz`` of runs before byte planes
                scaled = archive["scaled"]
            return scaled.astype(np.float32) * archive["scale"]
    return np.load(path, allow_pickle=False).astype(np.float32, copy=False)
