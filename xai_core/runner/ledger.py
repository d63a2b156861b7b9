"""The record of finished items, which makes runs resumable.

Each finished (image, method) pair gets a small JSON record under
``records/<image>/<label>.json`` holding its items (one for an attributor; one per class for a
synthesizer with several classes), written atomically *after* every file the items name. So a
record exists only for items whose outputs are complete; a run that is killed at any moment
(SIGKILL included) leaves at worst temporary files, which carry a ``.tmp`` suffix and are never
taken for outputs.

A later run of the same config skips a pair when its record exists, was made with the same
settings (a fingerprint of model, method, parameters, target and seed), reports no error, and
every file it names still reads back. Anything else is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from xai_core.io import write_json

__all__ = ["Ledger", "fingerprint", "readable"]


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable settings."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def readable(path: Path) -> bool:
    """Whether an output file reads back (``.npy`` arrays and PNG images are fully checked)."""
    try:
        if not path.is_file() or path.stat().st_size == 0:
            return False
        if path.suffix == ".npy":
            np.load(path, allow_pickle=False)
        elif path.suffix == ".png":
            with Image.open(path) as image:
                image.verify()
        elif path.suffix == ".json":
            json.loads(path.read_text())
        return True
    except Exception:
        return False


class Ledger:
    """Records of finished items under ``<output_dir>/records``."""

    def __init__(self, output_dir: str | os.PathLike[str]):
        self.root = Path(output_dir)
        self.records = self.root / "records"

    def path(self, key: str, label: str) -> Path:
        return self.records / key / f"{label}.json"

    def write(self, key: str, label: str, items: list[dict[str, Any]], settings: str) -> None:
        """Record the finished items of one (image, method); call after all files are written."""
        write_json(self.path(key, label), {"fingerprint": settings, "items": items})

    def read(self, key: str, label: str) -> dict[str, Any] | None:
        path = self.path(key, label)
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return (
            record if isinstance(record, dict) and isinstance(record.get("items"), list) else None
        )

    def done(self, key: str, label: str, settings: str) -> list[dict[str, Any]] | None:
        """The recorded items if the pair finished without error, with these settings, and all
        its files read back; otherwise ``None`` (recompute it)."""
        record = self.read(key, label)
        if record is None or record.get("fingerprint") != settings or not record["items"]:
            return None
        for item in record["items"]:
            if item.get("error"):
                return None
            if not all(readable(self.root / rel) for rel in item.get("files", {}).values()):
                return None
        return record["items"]

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

    def clear(self) -> None:
        """Forget every record (``--force``); outputs are overwritten as items finish."""
        if self.records.is_dir():
            for path in self.records.rglob("*.json"):
                path.unlink()


def remove_stale_temporaries(root: Path) -> int:
    """Delete temporary files a killed run left behind (never a finished output)."""
    count = 0
    if root.is_dir():
        for path in root.rglob(".*.tmp"):
            try:
                path.unlink()
                count += 1
            except FileNotFoundError:
                pass
    return count
