"""Plugins: the hook specs, the plugin manager, the registries it fills and the one factory that
builds a technique from a name.

Layer: above :mod:`xai_core.contracts` (what plugins provide), below the model loader, the
runner and the CLI (what uses plugins).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xai_core.lazy import lazy_getattr

# Imported on first use, as in `xai_core/__init__.py`: the plugin catalog
# (:mod:`xai_core.plugins.catalog`) answers `xai --help` and `xai list` without torch.
if TYPE_CHECKING:
    from xai_core.plugins.manager import (
        ENTRY_POINT_GROUP,
        get_plugin_manager,
        get_registries,
        hookimpl,
        installed_entry_points,
        loaded_plugins,
        register_plugin,
        reset,
        unregister_plugin,
    )
    from xai_core.plugins.registration import Command, PluginInfo, Registries

_EXPORTS: dict[str, str] = {
    **dict.fromkeys(
        ("ENTRY_POINT_GROUP", "get_plugin_manager", "get_registries", "hookimpl",
         "installed_entry_points", "loaded_plugins", "register_plugin", "reset",
         "unregister_plugin"),
        "xai_core.plugins.manager",
    ),
    **dict.fromkeys(("Command", "PluginInfo", "Registries"), "xai_core.plugins.registration"),
}


__getattr__ = lazy_getattr(globals(), _EXPORTS)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Command",
    "PluginInfo",
    "Registries",
    "get_plugin_manager",
    "get_registries",
    "hookimpl",
    "installed_entry_points",
    "loaded_plugins",
    "register_plugin",
    "reset",
    "unregister_plugin",
]
