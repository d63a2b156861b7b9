"""The plugin catalog: a summary of what the installed plugins register, cached on disk, so that
``xai --help`` and ``xai list`` answer without importing any plugin (and with them torch, 2-4 s).

The summary holds, per kind, names with the plugin that registered them and their one-line
descriptions, presets, metrics' needs, model families' members, the help line of each plugin
command and each plugin's status (broken ones with their reason). It is JSON in the cache folder
(``$XAI_CORE_CACHE_DIR``, else ``$XDG_CACHE_HOME/xai-core``, else ``~/.cache/xai-core``), in a
file named by a key over everything that can change it:

- xai-core's version and the Python interpreter;
- the plugin-selection environment variables (``XAI_CORE_PLUGINS``,
  ``XAI_CORE_DISABLE_PLUGIN_AUTOLOAD``) and the selected entry points, with their distributions and
  versions;
- the modification time of every ``sys.path`` folder (installing or removing a package changes
  its site-packages folder, which also covers timm's list of architectures);
- the newest modification time and the number of the ``.py`` files of xai-core and of each
  plugin's top-level package, so that editing an editable plugin refreshes the summary.

A missing or stale file is rebuilt by loading the plugins once (what every command did before);
a cache folder that cannot be written costs only speed. When this process has loaded the plugins
already (a test, a notebook, a plugin registered at run time), the live registries are summarised
and nothing is written. The cache folder also remembers which broken plugins' warnings were
shown (:func:`xai_core.plugins.cache.warn_broken`). Everything that needs a plugin's code
(running, ``describe``, a plugin's own command) still loads the plugins.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

from xai_core.plugins.cache import ENV_CACHE_DIR, cache_dir, warn_broken, write_atomic
from xai_core.plugins.entrypoints import (
    ENV_ALLOW,
    ENV_DISABLE_AUTOLOAD,
    distribution_of,
    selected_entry_points,
)
from xai_core.version import __version__

__all__ = [
    "CATALOG_FORMAT", "ENV_CACHE_DIR", "catalog", "cache_dir", "summarise",
]

#: Bump when the summary's layout changes.
CATALOG_FORMAT = 5
#: Catalog files kept in the cache folder.
KEEP = 8


def _tree_stamp(folder: str) -> tuple[str, int, int]:
    newest, count = 0, 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d != "__pycache__" and not d.startswith(".")]
        for name in files:
            if name.endswith(".py"):
                try:
                    newest = max(newest, os.stat(os.path.join(root, name)).st_mtime_ns)
                except OSError:
                    continue
                count += 1
    return folder, newest, count


def _source_stamps(modules: list[str]) -> list[tuple[str, int, int]]:
    folders = {str(Path(__file__).resolve().parents[1])}
    for module in modules:
        try:
            # A top-level name only: finding it imports nothing.
            spec = importlib.util.find_spec(module.split(".")[0])
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        if spec.submodule_search_locations:
            folders.update(spec.submodule_search_locations)
        elif spec.origin and os.path.isfile(spec.origin):
            folders.add(os.path.dirname(spec.origin))
    return [_tree_stamp(folder) for folder in sorted(folders)]


def _key() -> str:
    eps = selected_entry_points()
    paths = []
    here = os.getcwd()
    for entry in sys.path:
        if entry in ("", ".", here):
            continue  # `python -m` puts the working folder first; its changes are not installs
        try:
            paths.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            continue
    parts = {
        "format": CATALOG_FORMAT,
        "version": __version__,
        "python": sys.executable,
        "env": [os.environ.get(ENV_ALLOW), os.environ.get(ENV_DISABLE_AUTOLOAD)],
        "entry_points": [(ep.name, ep.value, *distribution_of(ep)) for ep in eps],
        "paths": paths,
        "sources": _source_stamps([ep.module for ep in eps]),
    }
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:24]


def summarise(registries: Any) -> dict[str, Any]:
    """The catalog of ``registries`` (:class:`xai_core.plugins.registration.Registries`)."""
    techniques = [
        {"name": e.name, "plugin": e.plugin, "kind": e.obj.kind,
         "summary": getattr(e.obj, "summary", "")}
        for e in registries.techniques
    ]
    presets = [
        {"name": e.name, "plugin": e.plugin, "technique": e.obj.technique,
         "description": e.obj.description}
        for e in registries.presets
    ]
    metrics = [
        {"name": e.name, "plugin": e.plugin, "summary": e.obj.summary,
         "requires": list(e.obj.requires)}
        for e in registries.metrics
    ]
    models = []
    for e in registries.models:
        model = e.obj
        members = None
        if model.is_family:
            members = sorted(model.lister()) if model.lister is not None else []
        models.append({"name": model.name, "plugin": e.plugin, "description": model.description,
                       "family": model.is_family, "prefix": getattr(model, "prefix", ""),
                       "members": members})
    commands = [{"name": e.name, "help": e.obj.help} for e in registries.commands]
    targets = [
        {"name": e.name, "plugin": e.plugin, "summary": e.obj.summary, "tasks": list(e.obj.tasks)}
        for e in registries.targets
    ]
    sinks = [
        {"name": e.name, "plugin": e.plugin, "summary": e.obj.summary,
         "missing": e.obj.missing(), "install": e.obj.install}
        for e in registries.sinks
    ]
    plugins = [
        {"name": info.name, "source": info.source, "ok": info.ok, "reason": info.reason,
         "provides": info.provides, "entry_point": info.entry_point, "warning": info.warning,
         "fix": info.fix, "details": info.details, "withheld": info.withheld}
        for info in registries.plugins.values()
    ]
    return {"format": CATALOG_FORMAT, "techniques": techniques, "presets": presets,
            "metrics": metrics, "models": models, "commands": commands, "plugins": plugins,
            "targets": targets, "sinks": sinks}


def _live_registries() -> Any:
    manager = sys.modules.get("xai_core.plugins.manager")
    if manager is not None and manager.registries_loaded():
        return manager.get_registries()
    return None


def catalog() -> dict[str, Any]:
    """The summary of every plugin: live when this process loaded them, else cached, else
    built (loading the plugins) and cached."""
    live = _live_registries()
    if live is not None:
        return summarise(live)
    path = cache_dir() / f"catalog-{_key()}.json"
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        cached = None
    if isinstance(cached, dict) and cached.get("format") == CATALOG_FORMAT:
        # The warning loading a broken plugin would print, when loading it would print it.
        for plugin in cached["plugins"]:
            if plugin.get("warning"):
                warn_broken(plugin["name"], plugin["warning"], plugin.get("details", ""))
        return cached
    from xai_core.plugins.manager import get_registries  # loads every plugin: the slow path

    registries = get_registries()
    summary = summarise(registries)
    if all(info.entry_point for info in registries.plugins.values()):
        _store(path, summary)
    return summary


def _store(path: Path, summary: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # A few keys live side by side (`xai` and `python -m xai_core.cli` see different
        # sys.path folders; several environments may share the cache): keep the newest ones.
        older = sorted(path.parent.glob("catalog-*.json"), key=lambda p: p.stat().st_mtime)
        for old in older[:-(KEEP - 1)] if len(older) >= KEEP else []:
            old.unlink(missing_ok=True)
    except OSError:
        pass
    write_atomic(path, json.dumps(summary))
