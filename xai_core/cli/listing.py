"""``xai list``: what the plugins registered (from the plugin catalog, no plugin imported), the
sample photos and example configs, and a model's classes or layers (these load the model's
architecture)."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any

from xai_core.errors import XaiError
from xai_core.plugins.catalog import catalog

__all__ = ["cmd_list"]

#: What ``xai list`` with no kind shows.
OVERVIEW = (
    "models", "attributors", "synthesizers", "presets", "metrics", "targets", "sinks", "samples",
    "plugins", "examples",
)
#: The model ``xai list classes`` shows when none is given (ImageNet-1k names).
DEFAULT_MODEL = "efficientnet_lite0"


def _match(name: str, pattern: str | None) -> bool:
    return pattern is None or fnmatch.fnmatchcase(name, pattern)


def cmd_list(what: str | None, args: Sequence[str]) -> int:
    args = list(args)
    if what == "classes":
        return _list_classes(args)
    if what == "layers":
        return _list_layers(args)
    if len(args) > 1:
        raise XaiError(f"xai list {what or ''} takes one PATTERN, got {len(args)}: {args}")
    pattern = args[0] if args else None
    summary = catalog()
    kinds = [what] if what else list(OVERVIEW)
    for kind in kinds:
        indent = "  " if len(kinds) > 1 else ""
        if len(kinds) > 1:
            print(f"{kind}:")
        for line in _lines(kind, summary, pattern):
            print(indent + line)
    return 0


def _lines(kind: str, summary: dict[str, Any], pattern: str | None) -> list[str]:
    if kind in _LISTERS:
        return _LISTERS[kind](summary, pattern)
    if kind in ("attributors", "synthesizers"):
        return [
            f"{t['name']:<24} [{t['plugin']}] {t['summary']}"
            for t in summary["techniques"]
            if t["kind"] == kind[:-1] and _match(t["name"], pattern)
        ]
    if kind == "presets":
        return [
            f"{p['name']:<24} [{p['plugin']}] {p['technique']}: {p['description']}"
            for p in summary["presets"] if _match(p["name"], pattern)
        ]
    if kind == "metrics":
        return [
            f"{m['name']:<24} [{m['plugin']}] {m['summary']}"
            + (f" (needs {', '.join(m['requires'])})" if m["requires"] else "")
            for m in summary["metrics"] if _match(m["name"], pattern)
        ]
    if kind == "plugins":
        return [
            line for info in summary["plugins"] if _match(info["name"], pattern)
            for line in _plugin_lines(info)
        ]
    raise AssertionError(kind)


def _sample_lines(summary: dict[str, Any], pattern: str | None) -> list[str]:
    del summary
    from xai_core.runner.inputs import SAMPLES

    return [
        f"sample:{name:<22} {description} (skimage/data/{filename})"
        for name, (filename, description) in SAMPLES.items()
        if _match(name, pattern)
    ]


def _example_lines(summary: dict[str, Any], pattern: str | None) -> list[str]:
    del summary
    from xai_core.runner.examples import example_path, list_examples

    lines = []
    for name in list_examples():
        if _match(name, pattern):
            first = example_path(name).read_text().splitlines()[:1]
            about = first[0].lstrip("# ").strip() if first and first[0].startswith("#") else ""
            lines.append(f"example:{name:<21} {about}")
    return lines + ["(`xai config --example NAME` prints one; `xai run example:NAME` runs it)"]


def _target_lines(summary: dict[str, Any], pattern: str | None) -> list[str]:
    """The target kinds: ``class`` (a plain ``target:`` value), then the registered ones."""
    lines = [
        f"{'class':<24} [core] a class of the logits: predicted, top-k, an index or a name "
        "(the plain `target:` value)"
    ] if _match("class", pattern) else []
    return lines + [
        f"{t['name']:<24} [{t['plugin']}] {t['summary']} ({', '.join(t['tasks'])} models)"
        for t in summary["targets"] if _match(t["name"], pattern)
    ]


def _sink_lines(summary: dict[str, Any], pattern: str | None) -> list[str]:
    """The sinks, with the package to install for one whose library is missing."""
    return [
        f"{s['name']:<24} [{s['plugin']}] {s['summary']}"
        + (f" (not installed: {s['install'] or 'pip install ' + ' '.join(s['missing'])})"
           if s["missing"] else "")
        for s in summary.get("sinks", []) if _match(s["name"], pattern)
    ]


def _plugin_lines(info: dict[str, Any]) -> list[str]:
    """What a plugin provides; for a broken one, why, the fix and the names it holds back."""
    if info["ok"]:
        provides = _provides(info["provides"])
        return [f"{info['name']:<16} ({info['source']}) {provides or '(nothing)'}"]
    lines = [f"{info['name']:<16} ({info['source']}) BROKEN: {info['reason']}",
             f"{'':<16} {info['fix']}"]
    if info["withheld"]:
        lines.append(f"{'':<16} not registered: {_provides(info['withheld'])}")
    return lines


def _provides(names: dict[str, list[str]]) -> str:
    return "; ".join(f"{kind}: {', '.join(found)}" for kind, found in names.items())


def _model_lines(summary: dict[str, Any], pattern: str | None) -> list[str]:
    if pattern:
        names = []
        for model in summary["models"]:
            if model["family"]:
                names += [model["prefix"] + m for m in model["members"]]
            else:
                names.append(model["name"])
        return sorted(n for n in names if _match(n, pattern))
    lines = []
    for model in summary["models"]:
        count = f" ({len(model['members'])})" if model["family"] else ""
        lines.append(f"{model['name']:<24} [{model['plugin']}] {model['description']}{count}")
    return lines + ["(`xai list models 'timm/resnet*'` lists a family's architectures)"]


def _architecture(name: str) -> Any:
    """The model's architecture with random weights: names, classes and shapes do not depend on
    the weights, and nothing is downloaded."""
    from xai_core.models.loading import load_model

    return load_model(name, pretrained=False)


def _list_classes(args: list[str]) -> int:
    from xai_core.contracts.targets import list_classes
    from xai_core.models.loading import check_model_name
    from xai_core.plugins.manager import get_registries

    if len(args) > 2:
        raise XaiError(f"xai list classes takes [MODEL] [PATTERN], got {args}")
    model, pattern = DEFAULT_MODEL, None
    if args:
        registries = get_registries()
        first = args[0]
        is_model = registries.models.find(first) is not None or "/" in first
        if is_model:
            check_model_name(first)
            model = first
            pattern = args[1] if len(args) > 1 else None
        elif len(args) == 1:
            pattern = first
        else:
            check_model_name(first)  # names close matches for a misspelt model
    handle = _architecture(model)
    if handle.class_names is None:
        print(f"{model} has no class names; targets are class indices 0..{handle.num_classes - 1}")
        return 0
    rows = list_classes(handle.class_names, pattern)
    for row in rows:
        wnid = f"{row.wnid}  " if row.wnid else ""
        print(f"{row.index:>4}  {wnid}{', '.join(row.synonyms)}")
    if not rows:
        print(f"no class of {model} matches {pattern!r}")
    return 0


def _list_layers(args: list[str]) -> int:
    from xai_core.nn.layers import list_layers

    if len(args) != 1:
        raise XaiError("xai list layers takes one MODEL, e.g. `xai list layers timm/resnet18`")
    handle = _architecture(args[0])
    size = tuple(handle.preprocessing.input_size)
    rows = list_layers(handle.module, size, handle.in_chans)
    print(f"{args[0]}: {len(rows)} modules, output shapes for one {size[0]}x{size[1]} image")
    width = max((len(r.path) for r in rows), default=10)
    for row in rows:
        shape = "x".join(str(d) for d in row.output_shape) if row.output_shape else "-"
        mark = "   <- layer: auto" if row.auto else ""
        print(f"{row.path:<{width}}  {row.type:<24} {shape}{mark}")
    return 0


#: The kinds listed by a function of their own.
_LISTERS = {
    "models": _model_lines,
    "targets": _target_lines,
    "sinks": _sink_lines,
    "samples": _sample_lines,
    "examples": _example_lines,
}
