"""The plugin manager: loads plugins from the ``xai_core`` entry-point group, fills registries.

Built-in techniques are plugins like any other: xai-core's own ``pyproject.toml`` lists them in the
same entry-point group a third-party package uses.

Environment variables:

``XAI_CORE_DISABLE_PLUGIN_AUTOLOAD=1``
    Load only xai-core's own built-in plugins, ignoring entry points of other installed packages
    (tests use this so that a stray plugin cannot change results).
``XAI_CORE_PLUGINS=name,name``
    Allow-list: load only the entry points with these names (built-in ones included). An empty
    value loads none.
``XAI_CORE_LIST_PLUGINS=1``
    Print each loaded plugin and its package to stderr as it loads.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from xai_core.errors import PluginError
from xai_core.plugins import hookspecs
from xai_core.plugins.registry import Registry

__all__ = [
    "hookimpl",
    "get_plugin_manager",
    "get_registries",
    "register_plugin",
    "loaded_plugins",
    "reset",
    "ENTRY_POINT_GROUP",
]

ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME
CORE_DISTRIBUTION = "xai-core"
ENV_DISABLE_AUTOLOAD = "XAI_CORE_DISABLE_PLUGIN_AUTOLOAD"
ENV_ALLOW = "XAI_CORE_PLUGINS"
ENV_LIST = "XAI_CORE_LIST_PLUGINS"

hookimpl = pluggy.HookimplMarker(hookspecs.PROJECT_NAME)


@dataclass
class PluginInfo:
    """A loaded plugin: its name, where it came from, and what it registered."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    provides: dict[str, list[str]] = field(default_factory=dict)

    @property
    def builtin(self) -> bool:
        return self.distribution == CORE_DISTRIBUTION


@dataclass
class Registries:
    """Everything the plugins registered, by kind."""

    techniques: Registry[Any]
    models: Registry[Any]
    plugins: dict[str, PluginInfo]
    metrics: Registry[Any] = field(default_factory=lambda: Registry("metric", "metrics"))


_manager: pluggy.PluginManager | None = None
_registries: Registries | None = None
_infos: dict[str, PluginInfo] = {}


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no", "off")


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def _should_load(ep: importlib.metadata.EntryPoint) -> bool:
    allow = os.environ.get(ENV_ALLOW)
    if allow is not None:
        return ep.name in {a.strip() for a in allow.split(",") if a.strip()}
    if _truthy(os.environ.get(ENV_DISABLE_AUTOLOAD)):
        dist = getattr(ep, "dist", None)
        return dist is not None and dist.metadata["Name"] == CORE_DISTRIBUTION
    return True


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with entry-point plugins loaded on first use."""
    global _manager
    if _manager is None:
        pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        pm.add_hookspecs(hookspecs)
        for ep in _entry_points():
            if not _should_load(ep) or pm.get_plugin(ep.name) is not None:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginError(
                    f"plugin {ep.name!r} (entry point {ep.value!r} in group "
                    f"{ENTRY_POINT_GROUP!r}) failed to import: {type(exc).__name__}: {exc}"
                ) from exc
            pm.register(plugin, name=ep.name)
            dist = getattr(ep, "dist", None)
            _infos[ep.name] = PluginInfo(
                name=ep.name,
                module=ep.value,
                distribution=dist.metadata["Name"] if dist is not None else None,
                version=dist.version if dist is not None else None,
            )
            if _truthy(os.environ.get(ENV_LIST)):
                info = _infos[ep.name]
                print(
                    f"xai-core: loaded plugin {ep.name} from {info.distribution or '?'} "
                    f"{info.version or ''} ({ep.value})",
                    file=sys.stderr,
                )
        _check_pending(pm)
        _manager = pm
    return _manager


def _check_pending(pm: pluggy.PluginManager) -> None:
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(
            f"{exc}; the hooks xai-core knows are: {', '.join(hookspecs.HOOK_NAMES)}"
        ) from exc


def register_plugin(plugin: object, name: str | None = None) -> str:
    """Register a plugin object or module at run time (notebooks, tests, scripts).

    Returns the plugin's name. The registries are rebuilt on next use.
    """
    global _registries
    pm = get_plugin_manager()
    try:
        registered = pm.register(plugin, name=name)
    except ValueError as exc:
        raise PluginError(str(exc)) from exc
    except pluggy.PluginValidationError as exc:
        raise PluginError(str(exc)) from exc
    if registered is None:
        raise PluginError(f"plugin {name!r} is blocked")
    _check_pending(pm)
    plugin_name = pm.get_name(plugin) or str(registered)
    _infos[plugin_name] = PluginInfo(
        name=plugin_name, module=getattr(plugin, "__name__", type(plugin).__name__)
    )
    _registries = None
    return plugin_name


def unregister_plugin(name: str) -> None:
    """Remove a plugin registered by name; the registries are rebuilt on next use."""
    global _registries
    pm = get_plugin_manager()
    pm.unregister(name=name)
    _infos.pop(name, None)
    _registries = None


def reset() -> None:
    """Forget every plugin and registry; the next use reloads entry points."""
    global _manager, _registries
    _manager = None
    _registries = None
    _infos.clear()


def _call_each(pm: pluggy.PluginManager, hook_name: str, make_register: Callable[[str], Any]):
    """Call ``hook_name`` on every plugin separately, so each registration knows its plugin."""
    caller = getattr(pm.hook, hook_name)
    for impl in reversed(caller.get_hookimpls()):
        kwargs = {"register": make_register(impl.plugin_name)} if impl.argnames else {}
        impl.function(**kwargs)


def get_registries() -> Registries:
    """The registries, built from every loaded plugin on first use."""
    global _registries
    if _registries is not None:
        return _registries
    from xai_core.contracts.metric import Metric
    from xai_core.contracts.model import ModelEntry
    from xai_core.contracts.technique import Attributor, Synthesizer

    pm = get_plugin_manager()
    techniques: Registry[Any] = Registry("technique", "attributors")
    models: Registry[ModelEntry] = Registry("model", "models")
    metrics: Registry[Any] = Registry("metric", "metrics")
    infos = {name: _infos.get(name) or PluginInfo(name, "?") for name, _ in pm.list_name_plugin()}

    def class_register(base: type, kind: str, registry: Registry[Any], public_path: str):
        """``register(cls, name=None)`` for hooks that register subclasses of ``base``."""

        def make(plugin: str):
            def register(cls: type, name: str | None = None) -> None:
                if not (isinstance(cls, type) and issubclass(cls, base)):
                    raise PluginError(
                        f"plugin {plugin!r} passed {cls!r} to register_{kind}s' register(); "
                        f"it takes a subclass of {public_path}"
                    )
                base.check_class(cls, plugin)
                public = name or cls.name
                registry.add(public, cls, plugin)
                infos[plugin].provides.setdefault(kind + "s", []).append(public)

            return register

        return make

    def model_make(plugin: str):
        def register(
            name: str,
            loader: Callable[..., Any],
            description: str = "",
            lister: Callable[[], list[str]] | None = None,
        ) -> None:
            if not callable(loader):
                raise PluginError(
                    f"plugin {plugin!r} registered model {name!r} with a loader that is not "
                    "callable"
                )
            models.add(name, ModelEntry(name, loader, description, lister), plugin)
            infos[plugin].provides.setdefault("models", []).append(name)

        return register

    _call_each(
        pm,
        "register_attributors",
        class_register(Attributor, "attributor", techniques, "xai_core.Attributor"),
    )
    _call_each(
        pm,
        "register_synthesizers",
        class_register(Synthesizer, "synthesizer", techniques, "xai_core.Synthesizer"),
    )
    _call_each(pm, "register_models", model_make)
    _call_each(
        pm,
        "register_metrics",
        class_register(Metric, "metric", metrics, "xai_core.Metric"),
    )
    _registries = Registries(techniques=techniques, models=models, plugins=infos, metrics=metrics)
    return _registries


def loaded_plugins() -> list[PluginInfo]:
    """Every loaded plugin with what it provides, sorted by name."""
    regs = get_registries()
    return [regs.plugins[name] for name in sorted(regs.plugins)]
