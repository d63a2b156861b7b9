"""Plugins: the hook specs, the plugin manager, the registries it fills and the one factory that
builds a technique from a name.

Layer: above :mod:`xai_core.contracts` (what plugins provide), below the model loader, the
runner and the CLI (what uses plugins).
"""

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
