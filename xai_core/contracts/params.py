"""Parameter schemas: one ``Params`` dataclass per technique or metric is its config schema.

A field declares its type and default, and in ``field(metadata=...)`` what else its values must
satisfy, so that every rule about a parameter is written once, where the parameter is declared,
and checked before any model loads (config checks build every technique's ``Params`` here):

- ``"choices"``: the allowed values, e.g. ``field(default="linf", metadata={"choices": NORMS})``;
- ``"min"`` / ``"max"``: inclusive bounds, e.g. ``field(default=8, metadata={"min": 1})``;
- ``"min_exclusive"`` / ``"max_exclusive"``: strict bounds, e.g. ``{"min_exclusive": 0}`` for a
  positive step size;
- ``"reason"``: why a bound is what it is, added to its error message where the number alone
  would not tell the user (``{"min": 1 / 255, "reason": "one grey level: ..."}``).

Bounds apply to numbers and are skipped for ``None`` (an optional budget that is not set). A rule
that ties several fields together goes into the dataclass's ``__post_init__``: any exception
it raises becomes a :class:`~xai_core.errors.ConfigError` naming the key path.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from xai_core.errors import ConfigError, close_matches


def param_choices(params_cls: type, name: str) -> tuple[Any, ...] | None:
    """The allowed values of a parameter declared with ``field(metadata={"choices": ...})``."""
    for f in dataclasses.fields(params_cls):
        if f.name == name:
            choices = f.metadata.get("choices")
            return tuple(choices) if choices is not None else None
    return None


def unknown_key(where: str, key: str, valid: Sequence[str]) -> ConfigError:
    matches = close_matches(key, valid)
    hint = f"; did you mean {', '.join(repr(m) for m in matches)}?" if matches else "."
    path = f"{where}.{key}" if where else key
    listed = ", ".join(valid) or "(none)"
    return ConfigError(f"unknown config key {path!r}{hint} Valid keys: {listed}")


def check_keys(schema: type, values: Any, where: str) -> None:
    """Reject keys the dataclass ``schema`` does not have, recursing into nested dataclasses."""
    if not isinstance(values, Mapping):
        return
    fields = {f.name: f for f in dataclasses.fields(schema)}
    hints = typing.get_type_hints(schema)
    for key, value in values.items():
        if key not in fields:
            raise unknown_key(where, str(key), list(fields))
        hint = hints[key]
        sub = f"{where}.{key}" if where else str(key)
        if dataclasses.is_dataclass(hint):
            check_keys(hint, value, sub)
        elif typing.get_origin(hint) is list:
            (item,) = typing.get_args(hint) or (Any,)
            if dataclasses.is_dataclass(item) and isinstance(value, Sequence):
                for i, element in enumerate(value):
                    check_keys(item, element, f"{sub}[{i}]")


def omegaconf_message(exc: OmegaConfBaseException, where: str) -> str:
    key = getattr(exc, "full_key", None) or ""
    path = ".".join(p for p in (where, str(key)) if p)
    text = str(exc).split("\n")[0]
    return f"bad config value at {path!r}: {text}" if path else f"bad config: {text}"


#: The bound keys of a field's metadata, with the comparison each makes and how it reads.
BOUNDS: dict[str, tuple[Callable[[Any, Any], bool], str]] = {
    "min": (lambda value, bound: value >= bound, "must be at least"),
    "max": (lambda value, bound: value <= bound, "must be at most"),
    "min_exclusive": (lambda value, bound: value > bound, "must be greater than"),
    "max_exclusive": (lambda value, bound: value < bound, "must be less than"),
}


def _path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def check_field_values(instance: Any, where: str = "") -> None:
    """Check every field of the dataclass ``instance`` against its ``choices`` and bounds.

    Recurses into nested dataclasses and lists of them, so a whole config is checked at once;
    errors name the key path (``methods[0].params.steps``), the rule and the value.
    """
    for f in dataclasses.fields(instance):
        value = getattr(instance, f.name)
        path = _path(where, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_field_values(value, path)
            continue
        if isinstance(value, list):
            for i, element in enumerate(value):
                if dataclasses.is_dataclass(element) and not isinstance(element, type):
                    check_field_values(element, f"{path}[{i}]")
        choices = f.metadata.get("choices")
        if choices is not None and value not in choices:
            raise ConfigError(
                f"bad config value at {path!r}: {value!r} is not one of "
                f"{', '.join(repr(c) for c in choices)}"
            )
        if value is None or isinstance(value, bool):
            continue
        for key, (holds, words) in BOUNDS.items():
            bound = f.metadata.get(key)
            if bound is not None and not holds(value, bound):
                reason = f" ({f.metadata['reason']})" if "reason" in f.metadata else ""
                raise ConfigError(
                    f"bad config value at {path!r}: {words} {bound:g}{reason}, got {value!r}"
                )


def unknown_metadata(schema: type) -> list[str]:
    """Field metadata keys outside the vocabulary above, as ``field: 'key'`` (a typo such as
    ``"minimum"`` would otherwise check nothing); registration rejects a class that has any."""
    return [
        f"{f.name}: {key!r}"
        for f in dataclasses.fields(schema)
        for key in f.metadata
        if key not in BOUNDS and key not in ("choices", "reason")
    ]


def build_params(params_cls: type, values: Mapping[str, Any] | None, where: str = "params") -> Any:
    """Validate ``values`` against the dataclass ``params_cls`` and return an instance.

    Unknown keys name their close matches and the valid keys; wrong types, values outside a
    field's ``choices`` or bounds, and whatever ``__post_init__`` rejects name the key path and
    what it accepts.
    """
    values = dict(values or {})
    check_keys(params_cls, values, where)
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(params_cls), values)
    except OmegaConfBaseException as exc:
        raise ConfigError(omegaconf_message(exc, where)) from None
    try:
        instance = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as exc:
        raise ConfigError(omegaconf_message(exc, where)) from None
    except Exception as exc:  # noqa: BLE001 - a Params.__post_init__ rejected the values
        raise ConfigError(f"bad config value at {where!r}: {exc}") from None
    check_field_values(instance, where)
    return instance
