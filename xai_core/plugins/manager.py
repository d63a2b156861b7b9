"""The plugin manager: loads plugins from the ``xai_core`` entry-point group, fills registries.

Built-in techniques are plugins like any other: xai-core's own ``pyproject.toml`` lists them in the
same entry-point group a third-party package uses.

Load order and names
    xai-core's own plugins load first (in ``pyproject.toml`` order), then installed plugins sorted
    by entry-point name, then plugins registered at run time (:func:`register_plugin`) in the
    order they were registered. The first plugin to register a name keeps it; every technique,
    metric, model and command is also reachable as ``plugin:name`` (``saliency:saliency``),
    ``plugin`` being the entry-point name.

Broken plugins
    A plugin is broken when its entry point fails to import, when pluggy rejects it (a hook that
    is not in :mod:`~xai_core.plugins.hookspecs`, such as a misspelt ``register_atributors``, or an
    argument the spec lacks), when one of its hooks raises, or when it registers something
    invalid or a name that is already taken. What happens then depends on where it comes from:

    - An *installed third-party plugin* is skipped as a whole: none of its registrations apply
      and it is unregistered from pluggy, its healthy names included (a plugin with one
      clashing technique is a plugin whose author has not seen it work beside the others, so
      none of it is trusted; and half a plugin would make its names depend on which clash
      comes first). Everything else keeps working: one broken package must not take the whole
      tool down with it. It is said where it matters: asking for a name the broken plugin
      would have provided says that plugin provides it, why it was skipped and how to fix it,
      and any unknown name, while some plugin failed to load, names the failed plugins and
      why. One short line on stderr names the plugin, its distribution and version, what is
      wrong and the fix, once for each change (see :func:`~xai_core.plugins.cache.warn_broken`:
      not on every command); ``xai list plugins`` shows it as broken with the reason and how to
      fix or disable it, and ``xai --debug`` prints the full warning every time.
    - A *built-in plugin* (distribution ``xai-core``) raises :class:`~xai_core.errors.PluginError`:
      it is a bug in xai-core, and skipping it quietly would remove techniques without notice and
      shrink the contract tests, which run over whatever is registered. The message says how to
      run without it (``XAI_CORE_PLUGINS``) until it is fixed.
    - A plugin registered at run time (:func:`register_plugin`, in tests and notebooks) raises
      :class:`~xai_core.errors.PluginError` too, since its author is right there: pluggy's
      rejections at once, registration errors when the registries are next used.

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
from typing import Any

import pluggy

from xai_core.errors import PluginError, did_you_mean
from xai_core.plugins import hookspecs
from xai_core.plugins.cache import warn_broken
from xai_core.plugins.entrypoints import (
    ENTRY_POINT_GROUP,
    ENV_ALLOW,
    ENV_LIST,
    distribution_of,
    installed_entry_points,
    selected_entry_points,
    should_load,
    truthy,
)
from xai_core.plugins.registration import (
    PendingRegistrations,
    PluginInfo,
    Registries,
    registration_callbacks,
)
from xai_core.plugins.registry import Registry

__all__ = [
    "hookimpl",
    "get_plugin_manager",
    "get_registries",
    "registries_loaded",
    "register_plugin",
    "unregister_plugin",
    "loaded_plugins",
    "installed_entry_points",
    "reset",
    "ENTRY_POINT_GROUP",
]


hookimpl = pluggy.HookimplMarker(hookspecs.PROJECT_NAME)

_manager: pluggy.PluginManager | None = None
_registries: Registries | None = None
_infos: dict[str, PluginInfo] = {}
#: The most of a broken plugin's reason its one-line warning quotes (``xai list plugins`` and
#: the errors for its names quote all of it).
WARNING_REASON_CHARS = 120


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with entry-point plugins loaded on first use."""
    global _manager
    if _manager is None:
        pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        pm.add_hookspecs(hookspecs)
        for ep in selected_entry_points():
            _load_entry_point(pm, ep)
        _manager = pm
    return _manager


def _load_entry_point(pm: pluggy.PluginManager, ep: importlib.metadata.EntryPoint) -> None:
    distribution, version = distribution_of(ep)
    info = PluginInfo(
        name=ep.name,
        module=ep.value,
        distribution=distribution,
        version=version,
        entry_point=True,
    )
    if ep.name in _infos:
        # Two packages chose the same entry-point name: the first keeps it; the second gets its
        # own line in `xai list plugins` so that the warning has something to point at.
        _infos[f"{ep.name} ({distribution})"] = info
        _fail(
            info,
            f"its entry-point name {ep.name!r} is already taken by "
            f"{_infos[ep.name].source}; rename the entry point",
        )
        return
    _infos[ep.name] = info
    try:
        plugin = ep.load()
    except Exception as exc:
        _fail(
            info,
            f"entry point {ep.name} = {ep.value!r} failed to import: {type(exc).__name__}: {exc}",
            exc,
        )
        return
    try:
        _register_with_pluggy(pm, plugin, ep.name)
    except PluginError as exc:
        _fail(info, str(exc), exc)
        return
    if truthy(os.environ.get(ENV_LIST)):
        print(f"xai-core: loaded plugin {ep.name} from {info.source} ({ep.value})", file=sys.stderr)


def _register_with_pluggy(pm: pluggy.PluginManager, plugin: object, name: str | None) -> str:
    """Register ``plugin`` and check its hook names (pluggy's ``check_pending``, but for this
    plugin alone, so that the error names the plugin that is wrong). Returns its name."""
    try:
        registered = pm.register(plugin, name=name)
    except (ValueError, pluggy.PluginValidationError) as exc:
        raise PluginError(_one_line(exc)) from exc
    if registered is None:
        raise PluginError(f"plugin {name!r} is blocked")
    plugin_name = pm.get_name(plugin) or str(registered)
    for caller in pm.get_hookcallers(plugin) or []:
        if caller.has_spec():
            continue
        if any(i.plugin is plugin and not i.optionalhook for i in caller.get_hookimpls()):
            pm.unregister(plugin)
            hint = did_you_mean(caller.name, hookspecs.HOOK_NAMES, n=1)
            raise PluginError(
                f"unknown hook {caller.name!r} in plugin {plugin_name!r}{hint} The hooks "
                f"xai-core knows are: {', '.join(hookspecs.HOOK_NAMES)}"
            )
    return plugin_name


def _fix_hint(info: PluginInfo) -> str:
    others = [
        ep.name for ep in installed_entry_points() if should_load(ep) and ep.name != info.name
    ]
    allow = f"set {ENV_ALLOW}={','.join(sorted(set(others)))} (an allow-list without it)"
    if info.builtin:
        return (
            "This is a bug in xai-core; please report it. Until it is fixed, run without it: "
            + allow
        )
    return (
        f"Fix: update {info.distribution} or tell its authors. To disable it: "
        f"`pip uninstall {info.distribution}`, or {allow}"
    )


def _fail(info: PluginInfo, reason: str, exc: BaseException | None = None) -> None:
    """Record that ``info``'s plugin is broken: warn once and skip it if its failures are
    contained, raise :class:`PluginError` otherwise (see the module docstring)."""
    reason = _one_line(reason)
    if not info.contained:
        if info.builtin:
            raise PluginError(
                f"built-in plugin {info.name!r} is broken: {reason}. {_fix_hint(info)}"
            ) from exc
        raise PluginError(f"plugin {info.name!r} is broken: {reason}") from exc
    info.status, info.reason, info.provides = "broken", reason, {}
    info.fix = _fix_hint(info)
    short = reason if len(reason) <= WARNING_REASON_CHARS else (
        reason[: WARNING_REASON_CHARS - 3].rstrip() + "..."
    )
    info.warning = (
        f"xai-core: skipped broken plugin {info.name!r} ({info.source}): {short.rstrip('.')}. "
        f"Fix: update {info.distribution} or `pip uninstall {info.distribution}`; "
        "`xai list plugins` says more"
    )
    info.details = (
        f"xai-core: skipped broken plugin {info.name!r} (entry point {info.name} = "
        f"{info.module!r} from {info.source}): {reason}. {info.fix}"
    )
    warn_broken(info.name, info.warning, info.details)


def _missing_because(info: PluginInfo) -> str:
    """What the error for a name that broken plugin ``info`` would have provided says."""
    return (
        f"Plugin {info.name!r} ({info.source}) provides it but was skipped because it is "
        f"broken: {info.reason}. Fix: update {info.distribution} or "
        f"`pip uninstall {info.distribution}`."
    )


def _note_broken(registries: Registries) -> None:
    """Every registry's unknown-name error names the plugins that failed to load."""
    for info in _infos.values():
        if info.ok:
            continue
        for registry in (registries.techniques, registries.models, registries.metrics,
                         registries.commands, registries.presets, registries.targets,
                         registries.sinks):
            registry.note_broken(f"plugin {info.name!r} ({info.source}) failed to load: "
                                 f"{info.reason}")


def register_plugin(plugin: object, name: str | None = None) -> str:
    """Register a plugin object or module at run time (notebooks, tests, scripts).

    Returns the plugin's name. A hook pluggy rejects (a misspelt hook name, an argument the spec
    lacks) raises :class:`PluginError` here; the registries are rebuilt on next use, which raises
    :class:`PluginError` if this plugin registers something invalid or a name already taken.
    """
    global _registries
    pm = get_plugin_manager()
    plugin_name = _register_with_pluggy(pm, plugin, name)
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


def _plugin_order(pm: pluggy.PluginManager) -> list[str]:
    """Names of the plugins pluggy holds, in load order (see the module docstring)."""
    held = [name for name, _ in pm.list_name_plugin()]
    return [n for n in _infos if n in held] + [n for n in held if n not in _infos]


def _call_hooks(pm: pluggy.PluginManager, plugin: object, makers: dict[str, Any]) -> None:
    """Call each of ``plugin``'s hooks with its ``register``; a failure names the hook."""
    for hook_name in hookspecs.HOOK_NAMES:
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            if impl.plugin is not plugin:
                continue
            try:
                impl.function(**({"register": makers[hook_name]} if impl.argnames else {}))
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(
                    f"its {hook_name} hook raised {type(exc).__name__}: {exc}"
                ) from exc


def registries_loaded() -> bool:
    """Whether this process has built the registries (loaded the plugins) already, or has a
    plugin registered at run time (which only the live registries know of)."""
    return _registries is not None or any(not info.entry_point for info in _infos.values())


def get_registries() -> Registries:
    """The registries, built from every loaded plugin on first use."""
    global _registries
    if _registries is not None:
        return _registries
    pm = get_plugin_manager()
    registries = Registries(
        techniques=Registry("technique", "attributors"),
        models=Registry("model", "models"),
        plugins={},
    )
    for name in _plugin_order(pm):
        plugin = pm.get_plugin(name)
        info = _infos.setdefault(name, PluginInfo(name, type(plugin).__name__))
        pending = PendingRegistrations(name, info)
        failure = None
        try:
            _call_hooks(pm, plugin, registration_callbacks(pending, registries))
        except PluginError as exc:
            failure = exc
        problems = pending.problems(failure)
        if problems:
            _fail(info, problems, failure)
            info.withheld = pending.names()
            pending.withhold(_missing_because(info))
            pm.unregister(plugin)
            continue
        pending.apply()
    _note_broken(registries)
    registries.plugins = dict(_infos)
    _registries = registries
    return _registries


def loaded_plugins(include_broken: bool = False) -> list[PluginInfo]:
    """Every loaded plugin with what it provides, sorted by name; with ``include_broken``, also
    the plugins that were skipped because they are broken (``status == "broken"``)."""
    infos = get_registries().plugins
    return [infos[key] for key in sorted(infos) if include_broken or infos[key].ok]
