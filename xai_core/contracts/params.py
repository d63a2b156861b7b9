from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
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
    return ConfigError(f"unknown config key {path!r}{hint} Valid keys: {', '.join(valid) or '(none)'}")


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


def build_params(params_cls: type, values: Mapping[str, Any] | None, where: str = "params") -> Any:
    """Validate ``values`` against the dataclass ``params_cls`` and return an instance.

    Unknown keys name their close matches and the valid keys; wrong types and values outside a
    field's ``choices`` metadata name the key and what it accepts.
    """
    values = dict(values or {})
    check_keys(params_cls, values, where)
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(params_cls), values)
        instance = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as exc:
        raise ConfigError(omegaconf_message(exc, where)) from None
    for f in dataclasses.fields(params_cls):
        choices = f.metadata.get("choices")
        if choices is not None and getattr(instance, f.name) not in choices:
            raise ConfigError(
                f"bad config value at '{where}.{f.name}': {getattr(instance, f.name)!r} is not "
                f"one of {', '.join(repr(c) for c in choices)}"
            )
    return instance
