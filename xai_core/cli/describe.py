"""``xai describe NAME``: what a technique, preset, metric, model or target kind is, who provides
it, and its parameters or loader options (the same text ``docs/reference`` is generated from)."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import Any

from xai_core.contracts.model import ModelEntry
from xai_core.contracts.params import BOUNDS
from xai_core.dev.docgen import field_docs
from xai_core.errors import UnknownNameError
from xai_core.models.loading import check_model_name
from xai_core.plugins.manager import get_registries
from xai_core.plugins.registration import Registries
from xai_core.plugins.registry import QUALIFIER, Entry

__all__ = ["cmd_describe"]


def _lookup(name: str, registries: Registries) -> list[tuple[Entry[Any], str | None]]:
    """``(entry, architecture)`` for each technique, metric or model called ``name`` or
    ``plugin:name``; the architecture is set when ``name`` is one of a model family's."""
    found: list[tuple[Entry[Any], str | None]] = []
    for registry in (registries.techniques, registries.metrics, registries.models,
                     registries.targets, registries.sinks):
        entry = registry.find(name)
        if entry is not None:
            found.append((entry, None))
    if found:
        return found
    for entry in registries.models:
        family = entry.obj
        if not family.is_family:
            continue
        for prefix in (family.prefix, f"{entry.plugin}:{family.prefix}"):
            if name.startswith(prefix) and len(name) > len(prefix):
                arch = name[len(prefix) :]
                check_model_name(family.prefix + arch)  # close matches for a misspelt one
                found.append((entry, arch))
    return found


def _annotation(params_cls: type, f: dataclasses.Field) -> str:
    try:
        hint = typing.get_type_hints(params_cls).get(f.name, f.type)
    except Exception:  # a forward reference its module cannot resolve: show it as written
        hint = f.type
    return _type_text(hint)


def _type_text(annotation: Any) -> str:
    """``int | None`` for an annotation, as written for one still a string (postponed)."""
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return repr(f.default)
    if f.default_factory is not dataclasses.MISSING:
        return repr(f.default_factory())
    return "(required)"


def _parameter_lines(params_cls: type) -> list[str]:
    fields = dataclasses.fields(params_cls)
    if not fields:
        return ["parameters: none"]
    docs = field_docs(params_cls)
    lines = ["parameters:"]
    for f in fields:
        rules = []
        choices = f.metadata.get("choices")
        if choices is not None:
            rules.append("one of " + ", ".join(repr(c) for c in choices))
        rules.extend(f"{BOUNDS[k][1]} {f.metadata[k]}" for k in BOUNDS if k in f.metadata)
        line = f"  {f.name}: {_annotation(params_cls, f)} = {_default(f)}"
        lines.append(line + (f" ({'; '.join(rules)})" if rules else ""))
        if docs.get(f.name):
            lines.append(f"      {docs[f.name]}")
    return lines


def _option(parameter: inspect.Parameter) -> str:
    if parameter.kind is inspect.Parameter.VAR_KEYWORD:
        return f"**{parameter.name}: passed on to the loader"
    text = parameter.name
    if parameter.annotation is not inspect.Parameter.empty:
        text += f": {_type_text(parameter.annotation)}"
    if parameter.default is not inspect.Parameter.empty:
        text += f" = {parameter.default!r}"
    return text


def _technique_facts(obj: Any) -> list[str]:
    """The summary, paper, channel needs and score direction lines of a technique or metric."""
    lines = []
    for label in ("summary", "paper"):
        if getattr(obj, label, ""):
            lines.append(f"  {label + ':':<15} {getattr(obj, label)}")
    if isinstance(getattr(obj, "tasks", None), tuple):  # a target kind
        lines.append(f"  {'models:':<15} {', '.join(obj.tasks)}")
    if getattr(obj, "kind", "") == "sink":
        needs = ", ".join(obj.requires) or "nothing beyond xai-core"
        missing = f" (missing: {obj.install})" if obj.missing() else ""
        lines.append(f"  {'needs:':<15} {needs}{missing}")
    if getattr(obj, "requires_rgb", ""):
        lines.append(f"  {'channels:':<15} RGB only (3): {obj.requires_rgb}")
    if isinstance(getattr(obj, "higher_is_better", None), bool):
        direction = "higher" if obj.higher_is_better else "lower"
        needs = f"; needs {', '.join(obj.requires)}" if obj.requires else ""
        lines.append(f"  scores:         {direction} is better{needs}")
    return lines


def _describe(entry: Entry[Any], arch: str | None, registries: Registries) -> list[str]:
    obj = entry.obj
    info = registries.plugins.get(entry.plugin)
    source = info.source if info is not None else "?"
    is_model = isinstance(entry.obj, ModelEntry)
    kind = ("model family" if obj.is_family else "model") if is_model else obj.kind
    implementation = obj.loader if is_model else obj
    lines = [
        f"{entry.name if arch is None else obj.prefix + arch} ({kind})",
        f"  provided by:    plugin {entry.plugin} ({source})",
        f"  defined in:     {implementation.__module__}.{implementation.__qualname__}",
    ]
    if not (is_model and obj.is_family):
        lines.insert(1, f"  qualified name: {entry.qualified}")
    if is_model:
        if obj.description:
            lines.append(f"  description:    {obj.description}")
        if obj.is_family and arch is None:
            lines.append(f"  architectures:  `xai list models '{obj.prefix}*'`")
    else:
        lines += _technique_facts(obj)
    doc = inspect.cleandoc(implementation.__doc__ or "")
    if doc and doc != getattr(obj, "summary", ""):
        lines += ["", *(f"  {line}".rstrip() for line in doc.splitlines())]
    lines.append("")
    if is_model:
        lines.append("options (keyword arguments of load_model, `model:` keys of a config):")
        options = list(inspect.signature(obj.loader).parameters.values())[obj.is_family :]
        lines += [f"  {_option(o)}" for o in options] or ["  none"]
    else:
        lines += _parameter_lines(obj.Params)
    return lines


def _describe_preset(entry: Entry[Any], registries: Registries) -> list[str]:
    preset = entry.obj
    technique = registries.techniques.get(preset.technique)
    settings = ", ".join(f"{k}={v!r}" for k, v in preset.params.items()) or "none"
    lines = [
        f"{entry.name} (preset of {preset.technique})",
        f"  qualified name: {entry.qualified}",
        f"  provided by:    plugin {entry.plugin}",
        f"  runs:           {preset.technique} with {settings}",
    ]
    if preset.description:
        lines.append(f"  description:    {preset.description}")
    lines += ["", f"{preset.technique}'s parameters (the preset's settings are defaults here):"]
    return lines + _parameter_lines(technique.Params)[1:]


def cmd_describe(name: str) -> int:
    registries = get_registries()
    preset = registries.presets.find(name)
    if preset is not None and registries.techniques.find(name) is None:
        print("\n".join(_describe_preset(preset, registries)))
        return 0
    found = _lookup(name, registries)
    if not found:
        registries_ = (
            registries.techniques, registries.presets, registries.metrics, registries.models,
            registries.targets, registries.sinks,
        )
        qualified = QUALIFIER in name
        names = [e.qualified if qualified else e.name for r in registries_ for e in r]
        note = next((n for r in registries_ if (n := r.missing_note(name))), "")
        raise UnknownNameError(
            "technique, preset, metric, model, target kind or sink", name, names, hint="", note=note
        )
    print("\n\n".join("\n".join(_describe(e, arch, registries)) for e, arch in found))
    return 0
