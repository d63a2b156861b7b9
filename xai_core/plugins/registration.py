"""What plugins register and how: the ``register`` callbacks each hook receives, the registries
they fill (:class:`Registries`), what is known about each plugin (:class:`PluginInfo`) and the
commands plugins add (:class:`Command`).

A plugin's registrations are held in :class:`PendingRegistrations` and applied only when all its
hooks succeeded, so that a broken plugin leaves nothing behind. Loading plugins and deciding what
happens to a broken one is :mod:`xai_core.plugins.manager`'s job.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from xai_core.contracts.attributor import Attributor
from xai_core.contracts.metric import Metric
from xai_core.contracts.model import ModelEntry
from xai_core.contracts.sink import Sink
from xai_core.contracts.synthesizer import Synthesizer
from xai_core.contracts.target_kinds import TASKS, TargetKind
from xai_core.errors import PluginError
from xai_core.plugins import hookspecs
from xai_core.plugins.entrypoints import CORE_DISTRIBUTION
from xai_core.plugins.registry import Registry


@dataclass
class PluginInfo:
    """A plugin: its name, where it came from, what it registered, and whether it works.

    :param name: the plugin's name: its entry-point name, or the name given to
        :func:`register_plugin`.
    :param module: what the entry point points to (``package.module``).
    :param distribution: the installed package (``pip`` name) that provides it; ``None`` for a
        plugin registered at run time.
    :param entry_point: whether it came from the entry-point group (as opposed to
        :func:`register_plugin`).
    :param status: ``"ok"``, or ``"broken"`` for a plugin that was skipped (see the module doc).
    :param reason: for a broken plugin, what is wrong with it.
    :param warning: for a broken plugin, the short line printed on stderr about it (the plugin
        catalog prints it when it answers for the plugins; see
        :func:`xai_core.plugins.cache.warn_broken` for when).
    :param fix: for a broken plugin, how to fix or disable it (``xai list plugins`` shows it).
    :param details: for a broken plugin, the long form of ``warning`` (``xai --debug``).
    :param withheld: for a broken plugin, what it would have registered had it worked, by kind
        (as in ``provides``; only what its hooks got to before they failed): none of it is
        registered, and asking for one of these names says why.
    """

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    provides: dict[str, list[str]] = field(default_factory=dict)
    entry_point: bool = False
    status: str = "ok"
    reason: str = ""
    warning: str = ""
    fix: str = ""
    details: str = ""
    withheld: dict[str, list[str]] = field(default_factory=dict)

    @property
    def builtin(self) -> bool:
        return self.distribution == CORE_DISTRIBUTION

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def source(self) -> str:
        """``distribution version``, or ``local`` for a plugin registered at run time."""
        if self.distribution is None:
            return "local"
        return f"{self.distribution} {self.version}" if self.version else self.distribution

    @property
    def contained(self) -> bool:
        """Whether a failure of this plugin is contained (skipped with a warning) rather than
        raised: true for installed plugins other than xai-core's own."""
        return self.entry_point and not self.builtin


@dataclass(frozen=True)
class Command:
    """An ``xai`` subcommand a plugin registered with the ``register_commands`` hook."""

    name: str
    handler: Callable[[argparse.Namespace], int | None]
    help: str
    configure: Callable[[argparse.ArgumentParser], None] | None = None


@dataclass(frozen=True)
class Preset:
    """A named technique with settings (the ``register_presets`` hook): ``smoothgrad`` is
    ``noise_tunnel`` with ``base: saliency``."""

    name: str
    technique: str
    params: dict[str, Any]
    description: str = ""


@dataclass
class Registries:
    """Everything the plugins registered, by kind, and every plugin (broken ones included)."""

    techniques: Registry[Any]
    models: Registry[ModelEntry]
    plugins: dict[str, PluginInfo]
    metrics: Registry[Any] = field(default_factory=lambda: Registry("metric", "metrics"))
    commands: Registry[Command] = field(default_factory=lambda: Registry("command"))
    presets: Registry[Preset] = field(default_factory=lambda: Registry("preset", "presets"))
    targets: Registry[Any] = field(default_factory=lambda: Registry("target kind", "targets"))
    sinks: Registry[Any] = field(default_factory=lambda: Registry("sink", "sinks"))


class PendingRegistrations:
    """One plugin's registrations, checked as they come and applied only if all its hooks
    succeed, so that a broken plugin leaves no half of itself behind.

    A name another plugin took does not stop the hooks: every clash is reported at once
    (:meth:`problems`), and the plugin's other names are known (:meth:`names`), so that asking
    for one of them can say why it is missing."""

    def __init__(self, plugin: str, info: PluginInfo):
        self.plugin = plugin
        self.info = info
        self.items: list[tuple[Registry[Any], str, Any, str]] = []
        self.clashes: list[str] = []

    def add(self, registry: Registry[Any], name: str, obj: Any, provides: str) -> None:
        try:
            registry.check_name(name, self.plugin)
        except PluginError as exc:
            if name not in registry:
                raise  # an invalid name, not a taken one
            self.clashes.append(str(exc))
        if any(r is registry and n == name for r, n, _, _ in self.items):
            raise PluginError(
                f"plugin {self.plugin!r} registers the {registry.kind} name {name!r} twice"
            )
        self.items.append((registry, name, obj, provides))

    def problems(self, failure: BaseException | None = None) -> str:
        """What is wrong with the plugin: every clash, then ``failure`` (its hooks' error);
        ``""`` when nothing is."""
        return "; ".join([*self.clashes, *([str(failure)] if failure is not None else [])])

    def withhold(self, why: str) -> None:
        """Register none of the names, but have each registry say ``why`` when one is asked
        for."""
        for registry, name, _, _ in self.items:
            registry.withhold(name, self.plugin, why)

    def names(self) -> dict[str, list[str]]:
        """The names registered so far, by kind (the keys of ``PluginInfo.provides``)."""
        names: dict[str, list[str]] = {}
        for _, name, _, provides in self.items:
            names.setdefault(provides, []).append(name)
        return names

    def apply(self) -> None:
        self.info.provides = {}
        for registry, name, obj, provides in self.items:
            registry.add(name, obj, self.plugin)
            self.info.provides.setdefault(provides, []).append(name)


def class_register(pending: PendingRegistrations, base: type, registry: Registry[Any], kind: str):
    """``register(cls, name=None)`` for hooks that register subclasses of ``base``."""

    def register(cls: type, name: str | None = None) -> None:
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise PluginError(
                f"plugin {pending.plugin!r} passed {cls!r} to register_{kind}s' register(); "
                f"it takes a subclass of xai_core.{base.__name__}"
            )
        base.check_class(cls, pending.plugin)  # type: ignore[attr-defined]
        pending.add(registry, name or cls.name, cls, kind + "s")

    return register


def model_register(pending: PendingRegistrations, registry: Registry[ModelEntry]):
    def register(
        name: str,
        loader: Callable[..., Any],
        description: str = "",
        lister: Callable[[], list[str]] | None = None,
        classes: str | None = None,
        task: str | None = None,
        from_code: bool = False,
        check: Callable[..., None] | None = None,
    ) -> None:
        if task is not None and task not in TASKS:
            raise PluginError(
                f"plugin {pending.plugin!r} registered model {name!r} with task={task!r}; use "
                f"one of {', '.join(TASKS)} or leave it out"
            )
        if classes not in (None, "imagenet"):
            raise PluginError(
                f"plugin {pending.plugin!r} registered model {name!r} with classes={classes!r}; "
                "use 'imagenet' (ImageNet-1k classes) or leave it out"
            )
        if not callable(loader):
            raise PluginError(
                f"plugin {pending.plugin!r} registered model {name!r} with a loader that is not "
                "callable"
            )
        if check is not None and not callable(check):
            raise PluginError(
                f"plugin {pending.plugin!r} registered model {name!r} with a check that is not "
                "callable"
            )
        entry = ModelEntry(name, loader, description, lister, classes, task, bool(from_code), check)
        pending.add(registry, name, entry, "models")

    return register


def command_register(pending: PendingRegistrations, registry: Registry[Command]):
    def register(
        name: str,
        handler: Callable[[argparse.Namespace], int | None],
        *,
        help: str,
        configure: Callable[[argparse.ArgumentParser], None] | None = None,
    ) -> None:
        where = f"plugin {pending.plugin!r} registers the command {name!r}"
        if name in hookspecs.BUILTIN_COMMANDS:
            raise PluginError(f"{where}, which is a built-in xai command; pick another name")
        if not isinstance(name, str) or not name[:1].isalpha() or any(c.isspace() for c in name):
            raise PluginError(f"{where}: a command name starts with a letter and has no spaces")
        if not callable(handler) or (configure is not None and not callable(configure)):
            raise PluginError(f"{where} with a handler or configure that is not callable")
        if not isinstance(help, str):
            raise PluginError(f"{where} with a help that is not a string")
        if configure is not None:
            configure(argparse.ArgumentParser(prog=f"xai {name}"))
        pending.add(registry, name, Command(name, handler, help, configure), "commands")

    return register


def preset_register(pending: PendingRegistrations, registry: Registry[Preset]):
    def register(
        name: str, technique: str, params: Any = None, *, description: str = ""
    ) -> None:
        where = f"plugin {pending.plugin!r} registers the preset {name!r}"
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            raise PluginError(f"{where}: a preset name is a non-empty string without spaces")
        if not isinstance(technique, str):
            raise PluginError(f"{where} with a technique that is not a registered name")
        if params is not None and not isinstance(params, Mapping):
            raise PluginError(f"{where} with params that are not a mapping")
        preset = Preset(name, technique, dict(params or {}), str(description))
        pending.add(registry, name, preset, "presets")

    return register


def registration_callbacks(
    pending: PendingRegistrations, registries: Registries
) -> dict[str, Callable[..., None]]:
    """The ``register`` argument of each hook, for one plugin, keyed by hook name."""
    return {
        "register_attributors": class_register(
            pending, Attributor, registries.techniques, "attributor"
        ),
        "register_synthesizers": class_register(
            pending, Synthesizer, registries.techniques, "synthesizer"
        ),
        "register_models": model_register(pending, registries.models),
        "register_metrics": class_register(pending, Metric, registries.metrics, "metric"),
        "register_commands": command_register(pending, registries.commands),
        "register_presets": preset_register(pending, registries.presets),
        "register_targets": class_register(pending, TargetKind, registries.targets, "target"),
        "register_sinks": class_register(pending, Sink, registries.sinks, "sink"),
    }
