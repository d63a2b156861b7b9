"""xai-core's cache folder, and the broken plugins' warnings it remembers showing.

A leaf of :mod:`xai_core.plugins`: the plugin manager warns about a broken plugin as it loads
it, and the plugin catalog (:mod:`xai_core.plugins.catalog`), which loads the plugins through the
manager, warns about one it finds in its cached summary; both take :func:`warn_broken` from here
so that neither imports the other for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from xai_core.plugins.entrypoints import distribution_of, selected_entry_points

__all__ = ["ENV_CACHE_DIR", "cache_dir", "warn_broken", "write_atomic"]

ENV_CACHE_DIR = "XAI_CORE_CACHE_DIR"
#: Broken plugins whose warning this process printed (from the catalog or as the plugin manager
#: loaded them): a later load in the same process, or ``reset()``, prints nothing more.
printed_warnings: set[str] = set()
#: Set by ``xai --debug``: broken plugins' warnings are printed in full, on every command.
debug_warnings = False
#: The file in the cache folder that remembers which warnings were shown, and how many it keeps.
SHOWN_FILE = "shown-warnings.json"
KEEP_SHOWN = 64


def cache_dir() -> Path:
    """The cache folder: ``$XAI_CORE_CACHE_DIR``, else ``$XDG_CACHE_HOME/xai-core``, else
    ``~/.cache/xai-core``."""
    explicit = os.environ.get(ENV_CACHE_DIR)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "xai-core"


def write_atomic(path: Path, text: str) -> None:
    """Write a cache file whole or not at all; a cache folder that cannot be written costs
    only speed (the next command rebuilds the summary, or shows a warning again)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(text)
        os.replace(temporary, path)
    except OSError:
        pass


def warn_broken(name: str, warning: str, details: str = "") -> None:
    """Print broken plugin ``name``'s one-line ``warning`` on stderr, once per change.

    Once per process, and not again in a later process while nothing changed: the cache
    folder remembers each warning shown for the set of selected entry points (a new version,
    another problem, an installed or removed plugin or another allow-list shows it again), so
    a broken plugin is announced when it becomes broken, not on every command. ``xai list
    plugins`` and the error for one of its names always say it; with ``xai --debug`` the full
    ``details`` are printed on every command.
    """
    if name in printed_warnings:
        return
    printed_warnings.add(name)
    if debug_warnings:
        print(details or warning, file=sys.stderr)
    elif not _shown_before(warning):
        print(warning, file=sys.stderr)


def _shown_before(warning: str) -> bool:
    """Whether ``warning`` was shown for these entry points; remembers it was, from now on."""
    eps = [(ep.name, ep.value, *distribution_of(ep)) for ep in selected_entry_points()]
    key = hashlib.sha256(json.dumps([warning, eps], default=str).encode()).hexdigest()[:24]
    path = cache_dir() / SHOWN_FILE
    try:
        shown = json.loads(path.read_text())
    except (OSError, ValueError):
        shown = []
    if not isinstance(shown, list):
        shown = []
    if key in shown:
        return True
    write_atomic(path, json.dumps([*shown, key][-KEEP_SHOWN:]))
    return False
