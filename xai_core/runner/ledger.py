"""The record of finished items, which makes runs resumable and checkable.

Each finished (image, method) pair gets a small JSON record under
``records/<image>/<label>.json``, written atomically *after* every file its items name::

    {"format": 3,
     "input": {"source": "/abs/path/cat.png", "sha256": "<hash of the bytes decoded>"},
     "fingerprint": "<hash of every setting the map depends on>",
     "scores": {"<metric label>": "<hash of what its score depends on>", ...},
     "figure": "<hash of the figure settings>" or null,
     "items": [{..., "files": {"map": "maps/cat/saliency.npz", ...},
                "digests": {"maps/cat/saliency.npz": {"size": 4224, "sha256": "..."}, ...}}]}

(``input`` is ``null`` for a synthesizer that runs once per run, under ``records/_run/``.) So a
record exists only for items whose outputs are complete; a run that is killed at any moment
(SIGKILL included) leaves at worst temporary files, which carry a ``.tmp`` suffix and are never
taken for outputs.

A later run of the same config skips a pair only when its record exists, names the same input
(the same resolved path *and* the same content: a file replaced in place, or another file that
got the same key, is recomputed), was made with the same settings, reports no error, and every
file it names still has the recorded size and sha256. Checking hashes needs no decoding, so
resuming a finished run costs a read of each output, not a reload. Anything else is recomputed.
What each fingerprint covers, and what a run does when only ``scores`` or ``figure`` differ
(renews them from the saved map), is in :mod:`xai_core.runner.plan`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from xai_core.io import FileDigest, digest_file, read_array, write_json
from xai_core.runner.item import ResultItem
from xai_core.runner.lock import OutputLock

__all__ = [
    "Ledger",
    "decode",
    "fingerprint",
    "file_problem",
    "readable",
    "remove_stale_temporaries",
    "RECORD_FORMAT",
]

#: Records of an older format are recomputed, never trusted (2 had no per-metric scores; 3
#: named float32 ``.npy`` maps and inputs).
RECORD_FORMAT = 4


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable settings."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def decode(path: Path, *, strict: bool = False) -> None:
    """Raise unless the output file ``path`` decodes: it is not empty, an array loads, a PNG
    or WebP image verifies, JSON parses. ``strict`` decodes every pixel of an image too and
    refuses the constants ``NaN`` and ``Infinity``, which the strict JSON of :mod:`xai_core.io`
    never writes (what ``scripts/kill_resume.py`` checks a killed run's files with)."""
    if path.stat().st_size == 0:
        raise ValueError("empty file")
    if path.suffix in (".npy", ".npz"):
        read_array(path)
    elif path.suffix in (".png", ".webp"):
        with Image.open(path) as image:
            if strict:
                image.load()
            else:
                image.verify()
    elif path.suffix == ".json":
        json.loads(path.read_text(), parse_constant=_refuse_constant if strict else None)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def readable(path: Path) -> bool:
    """Whether an output file decodes (see :func:`decode`).

    Resuming compares hashes instead; this is for files no record describes."""
    try:
        if not path.is_file():
            return False
        decode(path)
        return True
    except Exception:
        return False


class Ledger:
    """Records of finished items under ``<output_dir>/records``.

    :param written: digests of the files this process wrote (from
        :func:`xai_core.io.recording_digests`), so records get them without reading files back.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike[str],
        written: dict[str, FileDigest] | None = None,
        records: str | os.PathLike[str] | None = None,
    ):
        """:param records: the folder of the records (default ``<output_dir>/records``; one
            per model in a run that compares models). Files in records are relative to
            ``output_dir``."""
        self.root = Path(output_dir)
        self.records = Path(records) if records is not None else self.root / "records"
        self.written = written if written is not None else {}
        self._records: dict[tuple[str, str], dict[str, Any] | None] = {}
        self._on_disk: dict[str, FileDigest | None] = {}

    def path(self, key: str, label: str) -> Path:
        return self.records / key / f"{label}.json"

    def digest(self, rel: str) -> FileDigest:
        """The digest of an output: as written by this process, or read from disk."""
        path = self.root / rel
        found = self.written.get(os.path.abspath(path))
        return found if found is not None else digest_file(path)

    def write(
        self,
        key: str,
        label: str,
        items: list[ResultItem],
        settings: str,
        identity: dict[str, str] | None = None,
        scores: dict[str, str] | None = None,
        figure: str | None = None,
    ) -> None:
        """Record the finished items of one (image, method); call after all files are written.

        :param settings: the map's fingerprint; ``scores`` one per metric, ``figure`` that of
            the figure settings (see :mod:`xai_core.runner.plan`).

        Each item gets ``digests`` (size and sha256 of every file it names) and, for a photo,
        ``image_sha256``; the items are changed in place, so ``results.json`` carries the same.
        """
        for item in items:
            digests = {rel: self.digest(rel) for rel in sorted(set(item.files.values()))}
            self._on_disk.update(digests)
            item.digests = {rel: digest.as_dict() for rel, digest in digests.items()}
            if identity is not None:
                item.image_sha256 = identity["sha256"]
        record = {"format": RECORD_FORMAT, "input": identity, "fingerprint": settings,
                  "scores": scores or {}, "figure": figure,
                  "items": [item.as_record() for item in items]}
        write_json(self.path(key, label), record, indent=None)
        self._records[(key, label)] = record

    def read(self, key: str, label: str) -> dict[str, Any] | None:
        """The record of ``(key, label)``, read from disk at most once per ledger."""
        if (key, label) in self._records:
            return self._records[(key, label)]
        try:
            with open(os.path.join(self.records, key, f"{label}.json"), "rb") as handle:
                record = json.loads(handle.read())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            record = None
        if not (isinstance(record, dict) and _items_readable(record.get("items"))):
            record = None
        self._records[(key, label)] = record
        return record

    def usable(self, key: str, label: str, settings: str) -> dict[str, Any] | None:
        """The record if it is of this format, made with these settings, without error: the
        checks that need no input file. :meth:`done` adds the input and the outputs."""
        record = self.read(key, label)
        if (
            record is None
            or record.get("format") != RECORD_FORMAT
            or record.get("fingerprint") != settings
            or not record["items"]
            or any(item.get("error") for item in record["items"])
        ):
            return None
        return record

    def done(
        self, key: str, label: str, settings: str, identity: dict[str, str] | None = None
    ) -> list[dict[str, Any]] | None:
        """The recorded items if the pair finished without error, on this input (``identity``:
        resolved ``source`` and content ``sha256``), with these settings, and all its files have
        the recorded size and hash; otherwise ``None`` (recompute it)."""
        record = self.usable(key, label, settings)
        if record is None or record.get("input") != identity:
            return None
        for item in record["items"]:
            digests = item.get("digests")
            if not isinstance(digests, dict) or set(digests) != set(item["files"].values()):
                return None
            if not all(self.intact(rel, expected) for rel, expected in digests.items()):
                return None
        return record["items"]

    def intact(self, rel: str, expected: Any) -> bool:
        """Whether ``rel`` has the recorded size and sha256 (each file is hashed once; a file
        whose size differs is not hashed at all)."""
        return file_problem(self.root, rel, expected, self._on_disk) is None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if not self.records.is_dir():
            return
        for path in sorted(self.records.rglob("*.json")):
            try:
                yield json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue

    def items(self, key: str, label: str) -> list[dict[str, Any]]:
        record = self.read(key, label)
        return record["items"] if record is not None else []

    def forget(self, key: str, label: str) -> None:
        """Drop a cached record (another rank may have rewritten it)."""
        self._records.pop((key, label), None)


def _items_readable(items: Any) -> bool:
    """Whether a record's ``items`` is a list of result items (:class:`ResultItem` objects)."""
    if not isinstance(items, list):
        return False
    try:
        for item in items:
            ResultItem.from_record(item)
    except ValueError:
        return False
    return True


def file_problem(
    root: str | os.PathLike[str], rel: str, expected: Any, known: dict[str, FileDigest | None]
) -> str | None:
    """What is wrong with the output ``rel`` against its recorded ``{"size", "sha256"}``, or
    ``None`` when it matches: the one check behind resume and ``xai verify``.

    :param known: digests already taken (or written this run), filled as files are hashed, so
        each file is hashed at most once; a file whose size differs is not hashed at all.
    """
    if not isinstance(expected, dict):
        return f"{rel}: no size and sha256 recorded"
    if rel not in known:
        path = os.path.join(root, rel)
        try:
            size = os.stat(path).st_size
            if size != expected.get("size"):
                return f"{rel}: size {size} bytes, recorded {expected.get('size')}"
            known[rel] = digest_file(path)
        except OSError:
            known[rel] = None
    actual = known[rel]
    if actual is None:
        return f"{rel}: missing"
    if actual.size != expected.get("size"):
        return f"{rel}: size {actual.size} bytes, recorded {expected.get('size')}"
    if actual.sha256 != expected.get("sha256"):
        return f"{rel}: content differs from the recorded sha256 (same size)"
    return None


def remove_stale_temporaries(root: Path, lock: OutputLock) -> int:
    """Delete temporary files a killed run left behind (never a finished output).

    Only the holder of the folder's lock may do this: another live run's temporaries are files
    it is about to rename into place."""
    if lock.fd is None or Path(lock.root).resolve() != Path(root).resolve():
        raise RuntimeError("remove_stale_temporaries needs the output folder's lock held")
    count = 0
    for folder, _, names in os.walk(root):
        for name in names:
            if name.startswith(".") and name.endswith(".tmp"):
                try:
                    os.unlink(os.path.join(folder, name))
                    count += 1
                except FileNotFoundError:
                    pass
    return count
