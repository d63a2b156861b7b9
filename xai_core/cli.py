"""The ``xai`` command line.

    xai list [models|attributors|synthesizers|metrics|samples|plugins] [PATTERN]
    xai run CONFIG [key=value ...]
    xai explain IMAGE... --method NAME [--model NAME] [--target T] [--out DIR]
    xai config CONFIG [key=value ...]
    xai benchmark CONFIG [key=value ...]
    xai report RUN_DIR
    xai new-plugin NAME [--dir DIR]

A problem the user can fix prints one ``error:`` line and exits with status 2 (``--debug`` shows
the traceback). A run in which some items failed exits with status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from xai_core.errors import XaiError

LIST_KINDS = ("models", "attributors", "synthesizers", "metrics", "samples", "plugins")


def _parser() -> argparse.ArgumentParser:
    from xai_core.version import __version__

    parser = argparse.ArgumentParser(
        prog="xai", description="Explain PyTorch image classifiers with pluggable techniques."
    )
    parser.add_argument("--version", action="version", version=f"xai-core {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list models, techniques, samples or plugins")
    p.add_argument("what", nargs="?", choices=LIST_KINDS, help="what to list (default: all)")
    p.add_argument("pattern", nargs="?", help="fnmatch pattern, e.g. 'timm/resnet*'")

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

    p = sub.add_parser(
        "benchmark", help="score methods with metrics on the procedural ground-truth image set"
    )
    p.add_argument("config", help="YAML config file (e.g. configs/benchmark.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")

    p = sub.add_parser("config", help="print a config resolved with overrides")
    p.add_argument("config", help="YAML config file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")

    p = sub.add_parser("report", help="(re)build report.html of a finished run")
    p.add_argument("run_dir", help="a run's output directory (holds results.json)")

    p = sub.add_parser("new-plugin", help="scaffold a plugin package that passes the contract tests")
    p.add_argument("name", help="plugin name, e.g. my-saliency")
    p.add_argument("--dir", default=None, help="where to create it (default: ./NAME)")
    return parser


def _progress(message: str) -> None:
    print(f"[xai] {message}", file=sys.stderr, flush=True)


def _cmd_list(what: str | None, pattern: str | None) -> int:
    from xai_core.plugins.factory import list_attributors, list_synthesizers
    from xai_core.plugins.manager import get_registries, loaded_plugins
    from xai_core.runner.inputs import SAMPLES

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
            for info in loaded_plugins():
                source = f"{info.distribution} {info.version}" if info.distribution else "local"
                provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in info.provides.items())
                print(f"{indent}{info.name:<16} ({source}) {provides or '(nothing)'}")
    return 0


def _match(name: str, pattern: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(name, pattern)


def _list_models(registries: Any, pattern: str | None, indent: str) -> None:
    from xai_core.models.loading import list_models

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


def _summary(result: Any) -> int:
    failed = result.failures
    total = len(result.items)
    skipped = result.results.get("summary", {}).get("skipped", 0)
    print(
        f"done: {total - len(failed)} of {total} item(s) succeeded, {len(failed)} failed"
        + (f", {skipped} already done (skipped)" if skipped else "")
    )
    for item in failed:
        print(f"  failed: {item['image']} / {item['label']}: {item['error']}")
    print(f"results: {result.output_dir / 'results.json'}")
    grid = result.output_dir / "figures" / "grid.png"
    if grid.is_file():
        print(f"figures: {result.output_dir / 'figures'} (side by side: {grid})")
    return 1 if failed else 0


def _cmd_run(
    config_path: str | None, overrides: Sequence[str], base: dict | None = None, force=False
) -> int:
    from xai_core.runner.config import load_config
    from xai_core.runner.run import run_experiment

    config = load_config(config_path if base is None else base, overrides)
    result = run_experiment(config, progress=_progress, force=force)
    if "environment" not in result.results:
        # A torchrun rank other than 0: rank 0 merges and reports for everyone.
        return 1 if result.failures else 0
    return _summary(result)


def _cmd_benchmark(config_path: str, overrides: Sequence[str]) -> int:
    from xai_core_plugins.groundtruth.benchmark import run_benchmark

    from xai_core.runner.config import load_config

    result = run_benchmark(load_config(config_path, overrides), progress=_progress)
    print(result.markdown, end="")
    print(f"table: {result.output_dir / 'benchmark.md'} and {result.output_dir / 'benchmark.json'}")
    print(f"plots: {', '.join(str(result.output_dir / p) for p in result.figures)}")
    return 0


def _cmd_config(config_path: str, overrides: Sequence[str]) -> int:
    from xai_core.runner.config import load_config, to_yaml

    print(to_yaml(load_config(config_path, overrides)), end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            return _cmd_list(args.what, args.pattern)
        if args.command == "run":
            return _cmd_run(args.config, args.overrides, force=args.force)
        if args.command == "benchmark":
            return _cmd_benchmark(args.config, args.overrides)
        if args.command == "config":
            return _cmd_config(args.config, args.overrides)
        if args.command == "report":
            from xai_core.report.html import build_report

            print(f"report: {build_report(args.run_dir)}")
            return 0
        if args.command == "new-plugin":
            from xai_core.dev.scaffold import new_plugin

            target = new_plugin(args.name, args.dir)
            print(f"created {target}; next: pip install -e '{target}[test]' && pytest {target}")
            return 0
        if args.command == "explain":
            base = {
                "model": {"name": args.model},
                "inputs": list(args.images),
                "target": args.target,
                "methods": [{"name": m} for m in args.method],
                "output_dir": args.out,
            }
            return _cmd_run(None, args.overrides, base, force=args.force)
    except XaiError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
