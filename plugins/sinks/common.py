"""What the built-in sinks share: where under the run a sink writes, and tracker-safe names."""

from __future__ import annotations

import re
import time
from pathlib import Path

from xai_core.contracts.sink import SinkRun

__all__ = ["run_path", "fresh_folder", "safe_key", "config_text"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_./\- ]+")


def run_path(run: SinkRun, value: str) -> Path:
    """``value`` as a folder: absolute as given (``~`` expanded), relative to the run's
    folder otherwise."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else run.folder / path


def fresh_folder(base: Path) -> Path:
    """A new folder under ``base`` named by the time (``20260107-153000``, then ``-2``, ...):
    each logging of a run is a tracker run of its own."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        folder = base / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise RuntimeError(f"no free folder name under {base}")


def safe_key(*parts: str) -> str:
    """``parts`` joined by ``/``, every character trackers refuse in a key (parentheses,
    colons...) replaced by ``_``: ``saliency (timm/resnet18)`` -> ``saliency _timm/resnet18_``."""
    return "/".join(_UNSAFE.sub("_", str(p)).strip() for p in parts)


def config_text(run: SinkRun) -> str:
    """The run's ``config.yaml`` (``""`` if it has none)."""
    path = run.folder / "config.yaml"
    return path.read_text() if path.is_file() else ""
