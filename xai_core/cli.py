"""The ``xai`` command line.

    xai list [models|attributors|synthesizers|metrics|samples|plugins] [PATTERN]
    xai describe NAME
    xai run CONFIG [key=value ...]
    xai explain IMAGE... --method NAME [--model NAME] [--target T] [--out DIR]
    xai config CONFIG [key=value ...]
    xai report RUN_DIR
    xai verify RUN_DIR
    xai new-plugin NAME [--dir DIR]

Plugins add commands with the ``register_commands`` hook (``xai benchmark`` comes from the
ground-truth plugin); this module never imports a plugin. A problem the user can fix prints one
``error:`` line and exits with status 2 (``--debug`` shows the traceback), whichever command
raised it. A run in which some items failed exits with status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import inspect
import sys
import typing
from collections.abc import Iterable, Sequence
from typing import Any

from xai_core.contracts.model import ModelEntry
from xai_core.contracts.params import BOUNDS
from xai_core.dev.docgen import field_docs
from xai_core.dev.scaffold import new_plugin
from xai_core.errors import UnknownNameError, XaiError
from xai_core.models.loading import check_model_name, list_models
from xai_core.plugins.factory import list_attributors, list_synthesizers
from xai_core.plugins.manager import get_registries, loaded_plugins
from xai_core.plugins.registration import Command, Registries
from xai_core.plugins.registry import QUALIFIER, Entry
from xai_core.runner.config import load_config, to_yaml
from xai_core.runner.inputs import SAMPLES
from xai_core.runner.state import print_progress
from xai_core.version import __version__

LIST_KINDS = ("models", "attributors", "synthesizers", "metrics", "samples", "plugins")


def _parser(commands: Iterable[Command]) -> argparse.ArgumentParser:
    """The parser of the built-in commands (:data:`BUILTIN_COMMANDS`) and of ``commands``, the
    ones plugins registered."""
    parser = argparse.ArgumentParser(
        prog="xai", description="Explain PyTorch image classifiers with pluggable techniques."
    )
    parser.add_argument("--version", action="version", version=f"xai-core {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list models, techniques, samples or plugins")
    p.add_argument("what", nargs="?", choices=LIST_KINDS, help="what to list (default: all)")
    p.add_argument("pattern", nargs="?", help="fnmatch pattern, e.g. 'timm/resnet*'")

    p = sub.add_parser(
        "describe", help="what a technique, metric or model is, who provides it, its parameters"
    )
    p.add_argument("name", help="a name from `xai list`, or plugin:name (e.g. saliency:saliency)")

    p = sub.add_parser("run", help="run an experiment config")
    p.add_argument("config", help="YAML config file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.add_argument("--force", action="store_true", help="recompute items a previous run finished")

    p = sub.add_parser("explain", help="explain images with one or more methods")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="files, folders, globs, sample:NAME")
    p.add_argument(
        "--method", "-m", action="append", required=True, help="technique name (repeatable)"
    )
    p.add_argument("--model", default="efficientnet_lite0", help="model name (xai list models)")
    p.add_argument("--target", default="predicted", help="class index or name (default: predicted)")
    p.add_argument("--out", default="outputs/explain", help="output directory")
    p.add_argument("--force", action="store_true", help="recompute items a previous run finished")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="key=value",
        help="any other config override, e.g. --set device=cuda",
    )

    p = sub.add_parser("config", help="print a config resolved with overrides")
    p.add_argument("config", help="YAML config file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")

    p = sub.add_parser("report", help="(re)build report.html of a finished run")
    p.add_argument("run_dir", help="a run's output directory (holds results.json)")

    p = sub.add_parser(
        "verify", help="check a finished run: every output present, with its recorded sha256"
    )
    p.add_argument("run_dir", help="a run's output directory (holds results.json)")

    p = sub.add_parser(
        "new-plugin", help="scaffold a plugin package that passes the contract tests"
    )
    p.add_argument("name", help="plugin name, e.g. my-saliency")
    p.add_argument("--dir", default=None, help="where to create it (default: ./NAME)")

    for command in commands:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        if command.configure is not None:
            command.configure(p)
        p.set_defaults(plugin_command=command)
    return parser


def _cmd_list(what: str | None, pattern: str | None) -> int:
    registries = get_registries()
    kinds = [what] if what else list(LIST_KINDS)
    for kind in kinds:
        if len(kinds) > 1:
            print(f"{kind}:")
        indent = "  " if len(kinds) > 1 else ""
        if kind == "models":
            _list_models(registries, pattern, indent)
        elif kind in ("attributors", "synthesizers"):
            names = list_attributors() if kind == "attributors" else list_synthesizers()
            for name in names:
                if pattern and not _match(name, pattern):
                    continue
                entry = registries.techniques.entry(name)
                summary = getattr(entry.obj, "summary", "")
                print(f"{indent}{name:<24} [{entry.plugin}] {summary}")
        elif kind == "metrics":
            for entry in registries.metrics:
                if pattern and not _match(entry.name, pattern):
                    continue
                cls = entry.obj
                needs = f" (needs {', '.join(cls.requires)})" if cls.requires else ""
                print(f"{indent}{entry.name:<24} [{entry.plugin}] {cls.summary}{needs}")
        elif kind == "samples":
            for name, (filename, description) in SAMPLES.items():
                print(f"{indent}sample:{name:<22} {description} (skimage/data/{filename})")
        elif kind == "plugins":
            for info in loaded_plugins(include_broken=True):
                if not info.ok:
                    print(f"{indent}{info.name:<16} ({info.source}) BROKEN: {info.reason}")
                    continue
                provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in info.provides.items())
                print(f"{indent}{info.name:<16} ({info.source}) {provides or '(nothing)'}")
    return 0


def _match(name: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(name, pattern)


def _list_models(registries: Registries, pattern: str | None, indent: str) -> None:
    if pattern:
        for name in list_models(pattern):
            print(f"{indent}{name}")
        return
    for entry in registries.models:
        model = entry.obj
        if model.is_family:
            count = len(model.lister()) if model.lister else 0
            print(f"{indent}{model.name:<24} [{entry.plugin}] {model.description} ({count})")
        else:
            print(f"{indent}{model.name:<24} [{entry.plugin}] {model.description}")
    print(f"{indent}(`xai list models 'timm/resnet*'` lists a family's architectures)")


def _summary(result: Any, debug: bool = False) -> int:
    failed = result.failures
    total = len(result.items)
    skipped = result.results.get("summary", {}).get("skipped", 0)
    wall = result.results.get("wall_seconds") or 0.0
    compute = result.results.get("compute_seconds") or 0.0
    print(
        f"done: {total - len(failed)} of {total} item(s) succeeded, {len(failed)} failed"
        + (f", {skipped} already done (skipped)" if skipped else "")
        + f"; wall time {wall:.1f} s, compute {compute:.1f} s (all items)"
    )
    for item in failed:
        print(f"  failed: {item['image']} / {item['label']}: {item['error']}")
        if debug:
            # Each failed item keeps its traceback in results.json; --debug shows it here.
            text = item.get("traceback") or "(no traceback recorded)\n"
            print("    " + text.rstrip("\n").replace("\n", "\n    "))
    print(f"results: {result.output_dir / 'results.json'}")
    grid = result.output_dir / "figures" / "grid.png"
    if grid.is_file():
        print(f"figures: {result.output_dir / 'figures'} (side by side: {grid})")
    return 1 if failed else 0


def _cmd_run(
    config_path: str | None,
    overrides: Sequence[str],
    base: dict | None = None,
    force: bool = False,
    debug: bool = False,
) -> int:
    # The runner pulls in matplotlib and the report code: imported when a run starts, so that
    # `xai list` and `xai --help` do not wait for them.
    from xai_core.runner.run import run_experiment

    config = load_config(config_path if base is None else base, overrides)
    result = run_experiment(config, progress=print_progress, force=force)
    if "environment" not in result.results:
        # A torchrun rank other than 0: rank 0 merges and reports for everyone.
        return 1 if result.failures else 0
    return _summary(result, debug)


def _cmd_config(config_path: str, overrides: Sequence[str]) -> int:
    print(to_yaml(load_config(config_path, overrides)), end="")
    return 0


def _lookup(name: str, registries: Registries) -> list[tuple[Entry[Any], str | None]]:
    """``(entry, architecture)`` for each technique, metric or model called ``name`` or
    ``plugin:name``; the architecture is set when ``name`` is one of a model family's."""
    found: list[tuple[Entry[Any], str | None]] = []
    for registry in (registries.techniques, registries.metrics, registries.models):
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
        for label in ("summary", "paper"):
            if getattr(obj, label, ""):
                lines.append(f"  {label + ':':<15} {getattr(obj, label)}")
        if isinstance(getattr(obj, "higher_is_better", None), bool):
            direction = "higher" if obj.higher_is_better else "lower"
            needs = f"; needs {', '.join(obj.requires)}" if obj.requires else ""
            lines.append(f"  scores:         {direction} is better{needs}")
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


def _cmd_describe(name: str) -> int:
    registries = get_registries()
    found = _lookup(name, registries)
    if not found:
        registries_ = (registries.techniques, registries.metrics, registries.models)
        qualified = QUALIFIER in name
        names = [e.qualified if qualified else e.name for r in registries_ for e in r]
        raise UnknownNameError("technique, metric or model", name, names, hint="")
    print("\n\n".join("\n".join(_describe(e, arch, registries)) for e, arch in found))
    return 0


def _cmd_report(run_dir: str) -> int:
    from xai_core.report.html import build_report  # matplotlib: see _cmd_run

    print(f"report: {build_report(run_dir)}")
    return 0


def _cmd_verify(run_dir: str) -> int:
    from xai_core.runner.verify import verify_run  # the runner: see _cmd_run

    found = verify_run(run_dir)
    if found.ok:
        print(f"ok: {found.items} item(s), {found.files} file(s) match their recorded sha256")
        return 0
    for problem in found.problems:
        print(f"mismatch: {problem}")
    print(
        f"{len(found.problems)} problem(s) in {run_dir}; rerun the same config to recompute "
        "what does not match"
    )
    return 1


def _cmd_new_plugin(name: str, directory: str | None) -> int:
    target = new_plugin(name, directory)
    print(f"created {target}; next: pip install -e '{target}[test]' && pytest {target}")
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    base = {
        "model": {"name": args.model},
        "inputs": list(args.images),
        "target": args.target,
        "methods": [{"name": m} for m in args.method],
        "output_dir": args.out,
    }
    return _cmd_run(None, args.overrides, base, force=args.force, debug=args.debug)


def _dispatch(args: argparse.Namespace) -> int:
    command: Command | None = getattr(args, "plugin_command", None)
    if command is not None:
        status = command.handler(args)
        return 0 if status is None else int(status)
    if args.command == "list":
        return _cmd_list(args.what, args.pattern)
    if args.command == "describe":
        return _cmd_describe(args.name)
    if args.command == "run":
        return _cmd_run(args.config, args.overrides, force=args.force, debug=args.debug)
    if args.command == "explain":
        return _cmd_explain(args)
    if args.command == "config":
        return _cmd_config(args.config, args.overrides)
    if args.command == "report":
        return _cmd_report(args.run_dir)
    if args.command == "verify":
        return _cmd_verify(args.run_dir)
    if args.command == "new-plugin":
        return _cmd_new_plugin(args.name, args.dir)
    raise AssertionError(f"command {args.command!r} has a parser but no handler")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Before parsing, the parser itself needs the plugins' commands; a broken built-in plugin
    # fails there, and `--debug` must already count.
    debug = "--debug" in argv
    try:
        args = _parser([entry.obj for entry in get_registries().commands]).parse_args(argv)
        debug = args.debug
        return _dispatch(args)
    except XaiError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
