"""Parameter schemas: one ``Params`` dataclass per technique or metric is its config schema.

A field declares its type and default, and in ``field(metadata=...)`` what else its values must
satisfy, so that every rule about a parameter is written once, where the parameter is declared,
and checked before any model loads (config checks build every technique's ``Params`` here):

- ``"choices"``: the allowed values, e.g. ``field(default="linf", metadata={"choices": NORMS})``;
- ``"min"`` / ``"max"``: inclusive bounds, e.g. ``field(default=8, metadata={"min": 1})``;
- ``"min_exclusive"`` / ``"max_exclusive"``: strict bounds, e.g. ``{"min_exclusive": 0}`` for a
  positive step size;
- ``"reason"``: why a bound is what it is, added to its error message where the number alone
  would not tell the user (``{"min": 1 / 255, "reason": "one grey level: ..."}``);
- ``"affects_result"``: ``False`` for a parameter that changes how the work is done but not
  what it gives (``batch_size``, ``channels_last``, ``progress``): resuming a run ignores it
  (:func:`result_params`), so changing it recomputes nothing. Every parameter changes the
  result unless it says so; :func:`setting` declares one that does not
  (``batch_size: int = setting(16, min=1)``).

Bounds apply to numbers and are skipped for ``None`` (an optional budget that is not set).

A rule that ties several fields together (or one that metadata cannot say) is a method of the
params class, ``check(self)``, that yields a ``(field, message)`` pair per broken rule:

    def check(self) -> Iterator[tuple[str, str]]:
        if self.stride > self.window:
            yield "stride", f"{self.stride} is larger than window {self.window}"

Each pair becomes an error naming the field's key path (``methods[0].params.stride``), in
place of a metadata error on the same field; a ``check()`` that fails on a value a field's
metadata already refused is ignored. Beside it the class lists, in
``violations``, one ``{field: value}`` example per such rule that breaks it (the first key is
the field the error names), so that a registry-wide test breaks every rule of every plugin
without knowing the plugin. An exception raised by a ``__post_init__`` is still reported (under
the params' own path), but a rule there cannot name its field.

Every check collects all errors instead of stopping at the first: :func:`params_errors` returns
them, one line each, and :func:`build_params` raises them together in one ``ConfigError``.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from xai_core.errors import ConfigError, did_you_mean


def unknown_key(where: str, key: str, valid: Sequence[str]) -> ConfigError:
    hint = did_you_mean(key, valid, otherwise=".")
    path = f"{where}.{key}" if where else key
    listed = ", ".join(valid) or "(none)"
    return ConfigError(f"unknown config key {path!r}{hint} Valid keys: {listed}")


def key_errors(schema: type, values: Any, where: str) -> list[str]:
    """One message per key the dataclass ``schema`` does not have, recursing into nested
    dataclasses and lists of them."""
    if not isinstance(values, Mapping):
        return []
    fields = {f.name: f for f in dataclasses.fields(schema)}
    hints = typing.get_type_hints(schema)
    errors = []
    for key, value in values.items():
        if key not in fields:
            errors.append(str(unknown_key(where, str(key), list(fields))))
            continue
        hint = hints[key]
        sub = f"{where}.{key}" if where else str(key)
        if dataclasses.is_dataclass(hint):
            errors += key_errors(hint, value, sub)
        elif typing.get_origin(hint) is list:
            (item,) = typing.get_args(hint) or (Any,)
            if dataclasses.is_dataclass(item) and isinstance(value, Sequence):
                for i, element in enumerate(value):
                    errors += key_errors(item, element, f"{sub}[{i}]")
    return errors


def check_keys(schema: type, values: Any, where: str) -> None:
    """Reject keys the dataclass ``schema`` does not have (all of them, one line each)."""
    raise_all(key_errors(schema, values, where))


def raise_all(errors: Sequence[str]) -> None:
    """Raise ``errors`` as one :class:`~xai_core.errors.ConfigError`, one line each."""
    if errors:
        raise ConfigError("\n".join(errors))


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


def field_value_errors(instance: Any, where: str = "") -> list[str]:
    """Every field of the dataclass ``instance`` against its ``choices`` and bounds, one
    message per broken rule.

    Recurses into nested dataclasses and lists of them, so a whole config is checked at once;
    messages name the key path (``methods[0].params.steps``), the rule and the value.
    """
    errors = []
    for f in dataclasses.fields(instance):
        value = getattr(instance, f.name)
        path = _path(where, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            errors += field_value_errors(value, path)
            continue
        if isinstance(value, list):
            for i, element in enumerate(value):
                if dataclasses.is_dataclass(element) and not isinstance(element, type):
                    errors += field_value_errors(element, f"{path}[{i}]")
        errors += _rule_errors(f, value, path)
    return errors


def _rule_errors(f: dataclasses.Field, value: Any, path: str) -> list[str]:
    choices = f.metadata.get("choices")
    if choices is not None and value not in choices:
        return [
            f"bad config value at {path!r}: {value!r} is not one of "
            f"{', '.join(repr(c) for c in choices)}"
        ]
    if value is None or isinstance(value, (bool, str)):  # bounds are numbers' (``auto``)
        return []
    errors = []
    for key, (holds, words) in BOUNDS.items():
        bound = f.metadata.get(key)
        if bound is not None and not holds(value, bound):
            reason = f" ({f.metadata['reason']})" if "reason" in f.metadata else ""
            errors.append(
                f"bad config value at {path!r}: {words} {bound:g}{reason}, got {value!r}"
            )
    return errors


def check_field_values(instance: Any, where: str = "") -> None:
    """Raise every :func:`field_value_errors` of ``instance`` in one ``ConfigError``."""
    raise_all(field_value_errors(instance, where))


def rule_errors(instance: Any, where: str, *, fields_valid: bool = True) -> list[str]:
    """The messages of the params' own ``check()`` rules, each naming the field's key path
    under ``where``. With ``fields_valid=False`` (some field broke its metadata rules), a
    ``check()`` that fails on such a value reports nothing instead of raising."""
    check = getattr(instance, "check", None)
    if check is None:
        return []
    try:
        pairs = list(check())
    except Exception:  # noqa: BLE001 - a rule that cannot read an invalid field's value
        if fields_valid:
            raise
        return []
    return [f"bad config value at {_path(where, name)!r}: {message}" for name, message in pairs]


def _all_rule_errors(instance: Any, where: str) -> list[str]:
    """Metadata and ``check()`` errors together; where both name one field, ``check()``'s
    message is the one kept (it is the more specific: ``'zero' is now called 'zeros'``)."""
    fields = field_value_errors(instance, where)
    own = rule_errors(instance, where, fields_valid=not fields)
    named = {message.split("': ", 1)[0] for message in own}
    return [m for m in fields if m.split("': ", 1)[0] not in named] + own


def setting(default: Any, **rules: Any) -> Any:
    """A field that does not change the result (``"affects_result": False``), with its other
    metadata rules as keywords: ``batch_size: int = setting(16, min=1)``."""
    return dataclasses.field(default=default, metadata={**rules, "affects_result": False})


def affects_result(f: dataclasses.Field) -> bool:
    """Whether a field changes what its technique or metric computes (the default)."""
    return bool(f.metadata.get("affects_result", True))


def result_params(params: Any) -> dict[str, Any]:
    """The fields of a params instance that change the result, as a dict: what a resumed
    run's fingerprints hash (a field declared with :func:`setting` is left out)."""
    values = dataclasses.asdict(params)
    return {f.name: values[f.name] for f in dataclasses.fields(params) if affects_result(f)}


def unknown_metadata(schema: type) -> list[str]:
    """Field metadata keys outside the vocabulary above, as ``field: 'key'`` (a typo such as
    ``"minimum"`` would otherwise check nothing); registration rejects a class that has any."""
    return [
        f"{f.name}: {key!r}"
        for f in dataclasses.fields(schema)
        for key in f.metadata
        if key not in BOUNDS and key not in ("choices", "reason", "affects_result")
    ]


def params_errors(
    params_cls: type, values: Mapping[str, Any] | None, where: str = "params"
) -> tuple[Any, list[str]]:
    """``(instance or None, errors)``: ``values`` checked against the dataclass ``params_cls``,
    every error at once, one line each, each naming its key path under ``where``.

    Unknown keys name their close matches and the valid keys; wrong types, values outside a
    field's ``choices`` or bounds, and the class's own ``check()`` rules name the key and what
    it accepts.
    """
    values = dict(values or {})
    errors = key_errors(params_cls, values, where)
    schema = OmegaConf.structured(params_cls)
    typed = {}
    for key, value in values.items():
        if any(f.name == key for f in dataclasses.fields(params_cls)):
            try:
                OmegaConf.merge(schema, {key: value})
            except OmegaConfBaseException as exc:
                errors.append(omegaconf_message(exc, where))
            else:
                typed[key] = value
    if errors:
        return None, errors
    try:
        instance = OmegaConf.to_object(OmegaConf.merge(schema, typed))
    except OmegaConfBaseException as exc:
        return None, [omegaconf_message(exc, where)]
    except Exception as exc:  # noqa: BLE001 - a Params.__post_init__ rejected the values
        # A value outside its field's declared rules is the error to name (with its key path),
        # not what a __post_init__ then made of it.
        raw = _unchecked_instance(params_cls, OmegaConf.merge(schema, typed))
        field_errors = field_value_errors(raw, where) if raw is not None else []
        return None, [*field_errors, f"bad config value at {where!r}: {exc}"]
    errors = _all_rule_errors(instance, where)
    return (None if errors else instance), errors


def _unchecked_instance(params_cls: type, cfg: Any) -> Any:
    """An instance of ``params_cls`` holding ``cfg``'s values without running its
    ``__post_init__``; ``None`` when the values cannot be read back plainly."""
    try:
        instance = object.__new__(params_cls)
        for f in dataclasses.fields(params_cls):
            value = cfg[f.name]
            if OmegaConf.is_config(value):
                value = OmegaConf.to_container(value)
            object.__setattr__(instance, f.name, value)
    except Exception:  # noqa: BLE001 - nested schemas: fall back to the __post_init__ message
        return None
    return instance


def build_params(params_cls: type, values: Mapping[str, Any] | None, where: str = "params") -> Any:
    """Validate ``values`` against the dataclass ``params_cls`` and return an instance; raise
    every :func:`params_errors` message in one :class:`~xai_core.errors.ConfigError`."""
    instance, errors = params_errors(params_cls, values, where)
    raise_all(errors)
    return instance


def check_params(params: Any, where: str = "params") -> None:
    """Check an already built params instance (fields and ``check()`` rules), all at once."""
    raise_all(_all_rule_errors(params, where))
