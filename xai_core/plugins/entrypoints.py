"""Which entry points of the ``xai_core`` group are plugins to load, and in which order.

Kept apart from :mod:`xai_core.plugins.manager` because it imports nothing heavy: the plugin
catalog (:mod:`xai_core.plugins.catalog`) uses the same selection to tell whether its cached
summary is still current without importing any plugin. The environment variables are documented
in :mod:`xai_core.plugins.manager`.
"""

from __future__ import annotations

import importlib.metadata
import os

from xai_core.plugins import hookspecs

__all__ = [
    "CORE_DISTRIBUTION",
    "ENTRY_POINT_GROUP",
    "ENV_ALLOW",
    "ENV_DISABLE_AUTOLOAD",
    "ENV_LIST",
    "distribution_of",
    "installed_entry_points",
    "load_order",
    "selected_entry_points",
    "should_load",
    "truthy",
]

#: The distribution of xai-core itself: its entry points are the built-in plugins.
CORE_DISTRIBUTION = "xai-core"
ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME
ENV_DISABLE_AUTOLOAD = "XAI_CORE_DISABLE_PLUGIN_AUTOLOAD"
ENV_ALLOW = "XAI_CORE_PLUGINS"
ENV_LIST = "XAI_CORE_LIST_PLUGINS"


def truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no", "off")


def distribution_of(ep: importlib.metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def installed_entry_points() -> list[importlib.metadata.EntryPoint]:
    """Every entry point of the ``xai_core`` group, whether or not it is loaded."""
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def should_load(ep: importlib.metadata.EntryPoint) -> bool:
    allow = os.environ.get(ENV_ALLOW)
    if allow is not None:
        return ep.name in {a.strip() for a in allow.split(",") if a.strip()}
    if truthy(os.environ.get(ENV_DISABLE_AUTOLOAD)):
        return distribution_of(ep)[0] == CORE_DISTRIBUTION
    return True


def load_order(eps: list[importlib.metadata.EntryPoint]) -> list[importlib.metadata.EntryPoint]:
    """Built-in entry points first, as listed; then the others by name, so that which plugin
    keeps a contested name does not depend on the order of ``sys.path``."""
    builtin = [ep for ep in eps if distribution_of(ep)[0] == CORE_DISTRIBUTION]
    others = [ep for ep in eps if distribution_of(ep)[0] != CORE_DISTRIBUTION]
    return builtin + sorted(others, key=lambda ep: (ep.name, distribution_of(ep)[0] or ""))


def selected_entry_points() -> list[importlib.metadata.EntryPoint]:
    """The entry points the plugin manager loads, in its load order."""
    return load_order([ep for ep in installed_entry_points() if should_load(ep)])
