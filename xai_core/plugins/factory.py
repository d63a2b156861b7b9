"""One way from a name (and parameters) to a technique or metric, for every caller.

The CLI, the runner, config checks, the benchmark and the Python API all build techniques here:
look the name up in its registry (close matches on a typo), check that it is the kind the caller
needs, validate the parameters against the class's ``Params`` (errors name the config key), and
instantiate it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from omegaconf import OmegaConf

from xai_core.contracts.attributor import Attributor
from xai_core.contracts.metric import Metric
from xai_core.contracts.params import build_params
from xai_core.contracts.sink import Sink
from xai_core.contracts.synthesizer import Synthesizer
from xai_core.contracts.target_kinds import TargetKind
from xai_core.contracts.technique import Technique
from xai_core.errors import ConfigError, UnknownNameError
from xai_core.plugins.manager import get_registries
from xai_core.plugins.registration import Preset
from xai_core.plugins.registry import Registry

__all__ = [
    "technique_class",
    "resolve_entry",
    "build_entries",
    "build_metrics",
    "get_attributor",
    "get_synthesizer",
    "get_metric",
    "list_attributors",
    "list_synthesizers",
    "list_metrics",
    "list_presets",
    "get_target",
    "list_targets",
    "build_target",
    "parse_target",
    "find_preset",
    "resolve_technique",
    "get_sink",
    "list_sinks",
    "build_sink",
    "build_sinks",
]

T = TypeVar("T", bound=Technique)


def _registry(kind: type[Technique]) -> Registry[Any]:
    registries = get_registries()
    return registries.metrics if issubclass(kind, Metric) else registries.techniques


def technique_class(name: str, kind: type[T] = Technique) -> type[T]:  # type: ignore[assignment]
    """The class registered as ``name``, which must be a subclass of ``kind``.

    Raises :class:`~xai_core.errors.UnknownNameError` naming close matches among the names of
    that kind (a synthesizer's name given where an attributor is needed is unknown there).
    """
    registry = _registry(kind)
    cls = registry.get(name)
    if not issubclass(cls, kind):
        same_kind = [e.name for e in registry if issubclass(e.obj, kind)]
        raise UnknownNameError(kind.kind, name, same_kind, kind.kind + "s")
    return cls


def find_preset(name: str) -> Preset | None:
    """The preset registered as ``name``, unless a technique has that name."""
    registries = get_registries()
    if registries.techniques.find(name) is not None:
        return None
    entry = registries.presets.find(name)
    return entry.obj if entry is not None else None


def resolve_technique(
    name: str, kind: type[T] = Technique  # type: ignore[assignment]
) -> tuple[type[T], dict[str, Any]]:
    """``(cls, preset params)`` for a technique or preset name (presets: see
    :func:`xai_core.plugins.hookspecs.register_presets`); the params are ``{}`` for a technique.
    """
    preset = None if issubclass(kind, Metric) else find_preset(name)
    if preset is None:
        try:
            return technique_class(name, kind), {}
        except UnknownNameError as exc:
            if issubclass(kind, Metric):
                raise
            presets = get_registries().presets.names()
            raise UnknownNameError(
                exc.kind, name, [*exc.choices, *presets], kind.kind + "s", note=exc.note
            ) from None
    try:
        cls = technique_class(preset.technique, kind)
    except UnknownNameError as exc:
        raise UnknownNameError(
            exc.kind, preset.technique, exc.choices, kind.kind + "s", note=exc.note
        ) from None
    return cls, dict(preset.params)


def resolve_entry(
    entry: Any, where: str, kind: type[T] = Technique  # type: ignore[assignment]
) -> tuple[type[T], Any]:
    """``(cls, params)`` for a config entry (``name`` and ``params``), nothing instantiated.
    A preset's parameters come first; the entry's override them.

    :param where: the entry's config path (``methods[0]``), used in error messages.
    """
    cls, preset = resolve_technique(entry.name, kind)
    if preset:
        where = f"{where} (preset {entry.name!r} of {cls.name!r})"
    return cls, build_params(cls.Params, {**preset, **entry.params}, where=f"{where}.params")


def build_entries(
    entries: Sequence[Any], section: str, kind: type[T] = Technique  # type: ignore[assignment]
) -> list[tuple[str, T]]:
    """``(label, instance)`` for each entry of a config list such as ``methods`` or ``metrics``;
    the label is the entry's ``label`` or, by default, its name."""
    built = []
    for i, entry in enumerate(entries):
        cls, params = resolve_entry(entry, f"{section}[{i}]", kind)
        built.append((entry.label or entry.name, cls(params)))
    return built


def build_metrics(entries: Sequence[Any]) -> list[tuple[str, Metric]]:
    """``(label, metric)`` for each entry of a config's ``metrics``."""
    return build_entries(entries, "metrics", Metric)


def _build(kind: type[T], name: str, params: Mapping[str, Any]) -> T:
    cls, preset = resolve_technique(name, kind)
    return cls(**{**preset, **params})


def get_attributor(name: str, **params: Any) -> Attributor:
    """An attributor by registered name, parameters validated: ``get_attributor("saliency")``."""
    return _build(Attributor, name, params)


def get_synthesizer(name: str, **params: Any) -> Synthesizer:
    """A synthesizer by registered name, with its parameters validated."""
    return _build(Synthesizer, name, params)


def get_metric(name: str, **params: Any) -> Metric:
    """A metric by registered name, with its parameters validated: ``get_metric("deletion")``."""
    return _build(Metric, name, params)


def _names(kind: type[Technique]) -> list[str]:
    return [e.name for e in _registry(kind) if issubclass(e.obj, kind)]


def list_attributors() -> list[str]:
    """Registered attributor names, sorted."""
    return _names(Attributor)


def list_synthesizers() -> list[str]:
    """Registered synthesizer names, sorted."""
    return _names(Synthesizer)


def list_metrics() -> list[str]:
    """Registered metric names, sorted."""
    return _names(Metric)


def list_presets() -> list[str]:
    """Registered preset names, sorted (``smoothgrad``, ...)."""
    return get_registries().presets.names()


def get_sink(name: str, **params: Any) -> Sink:
    """A sink by registered name, its parameters validated and its libraries checked:
    ``get_sink("tensorboard", images=8)``."""
    cls = get_registries().sinks.get(name)
    cls.check_available()
    return cls(**params)


def list_sinks() -> list[str]:
    """Registered sink names, sorted (``tensorboard``, ``mlflow``, ...)."""
    return get_registries().sinks.names()


def build_sink(entry: Any, where: str) -> Sink:
    """The sink of one config entry (``name``, ``params``) at config path ``where``
    (``sinks[0]``): an unknown name with close matches, bad parameters naming their key, a
    missing library naming the extra to install."""
    cls = get_registries().sinks.get(entry.name)
    params = build_params(cls.Params, entry.params, where=f"{where}.params")
    cls.check_available()
    return cls(params)


def build_sinks(entries: Sequence[Any]) -> list[tuple[str, Sink]]:
    """``(label, sink)`` for each entry of a config's ``sinks``; the label is the entry's
    ``label`` or its name."""
    return [(e.label or e.name, build_sink(e, f"sinks[{i}]")) for i, e in enumerate(entries)]


#: The kind a plain ``target:`` value has (``predicted``, ``top-k``, an index, a class name).
CLASS_KIND = "class"


def get_target(kind: str, **params: Any) -> TargetKind:
    """A target kind by registered name, its keys validated:
    ``get_target("logit_difference", a="tabby", b="tiger cat")``."""
    cls = get_registries().targets.get(kind)
    return cls(**params)


def list_targets() -> list[str]:
    """Registered target kinds, sorted (``class`` targets are plain values, not listed here)."""
    return get_registries().targets.names()


def build_target(spec: Any, where: str = "target") -> Any:
    """A config's ``target``: a mapping with ``kind`` becomes that :class:`TargetKind` (its keys
    checked, errors naming ``where.key``); ``{kind: class, label: X}`` is ``X``; any other value
    (``predicted``, a class, a list of them, a kind already built) is returned as it is.

    :raises ConfigError: an unknown kind (close matches), a bad key (the valid keys).
    :raises UnknownNameError: an unknown kind.
    """
    if OmegaConf.is_config(spec):  # a loaded config's value
        spec = OmegaConf.to_container(spec, resolve=True)
    if not isinstance(spec, Mapping):
        if isinstance(spec, (list, tuple)) and any(isinstance(t, Mapping) for t in spec):
            raise ConfigError(
                f"bad config value at {where!r}: a list of targets holds class targets only; "
                "give one target kind ({kind: ..., ...}) on its own"
            )
        return spec
    values = dict(spec)
    kind = values.pop("kind", None)
    if not isinstance(kind, str):
        raise ConfigError(
            f"bad config value at {where!r}: a target mapping names its `kind` "
            f"({', '.join([CLASS_KIND, *list_targets()])}); a plain value is a class target"
        )
    if kind == CLASS_KIND:
        if set(values) != {"label"}:
            raise ConfigError(
                f"bad config value at {where!r}: kind 'class' takes one key, label "
                "(predicted, top-k, a class index or name)"
            )
        return values["label"]
    registry = get_registries().targets
    if registry.find(kind) is None:
        raise UnknownNameError("target kind", kind, [CLASS_KIND, *list_targets()], "targets")
    cls = registry.get(kind)
    return cls(build_params(cls.Params, values, where=where))


def parse_target(text: str) -> Any:
    """A command-line target: ``KIND:key=value,key=value`` (values in YAML: ``a=281``,
    ``region=[0,0,64,64]``) as the mapping :func:`build_target` takes, or ``text`` itself for a
    class target (``predicted``, ``tabby``, ``top-3``)."""
    kind, colon, rest = text.partition(":")
    known = [CLASS_KIND, *list_targets()]
    if not colon:
        return text
    if kind not in known:
        if "=" in rest:  # KIND:key=value with a kind that is not registered
            raise UnknownNameError("target kind", kind, known, "targets")
        return text
    import yaml

    values: dict[str, Any] = {"kind": kind}
    for part in _split_top_level(rest):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise ConfigError(
                f"bad --target {text!r}: {part!r} is not key=value (e.g. --target "
                "logit_difference:a=tabby,b=tiger_cat)"
            )
        values[key.strip()] = yaml.safe_load(value)
    return values


def _split_top_level(text: str) -> list[str]:
    """``text`` split at the commas outside brackets (``region=[0,0,8,8],label=3``)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "[{" and 1 or 0
        depth -= ch in "]}" and 1 or 0
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in parts if p.strip()]
