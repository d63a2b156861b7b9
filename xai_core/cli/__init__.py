"""The ``xai`` command line.

    xai list [models|attributors|synthesizers|presets|metrics|targets|sinks|samples|plugins|
              examples] [PATTERN]
    xai list classes [MODEL] [PATTERN]
    xai list layers MODEL
    xai describe NAME
    xai run CONFIG|example:NAME [key=value ...] [--force]
    xai explain IMAGE... --method NAME [--model NAME]... [--target T]... [--param M.K=V]...
    xai config CONFIG [key=value ...] | xai config --example NAME
    xai report RUN_DIR
    xai verify RUN_DIR
    xai table RUN_DIR [--format markdown|csv|parquet] [--output FILE]
    xai new-plugin NAME [--dir DIR]

Plugins add commands with the ``register_commands`` hook (``xai benchmark`` comes from the
ground-truth plugin); this package never imports a plugin. A problem the user can fix prints one
``error:`` line and exits with status 2 (``--debug`` shows the traceback), whichever command
raised it. A run in which some items failed exits with status 1.

Start-up time: ``xai --help`` and the listings read the plugin catalog
(:mod:`xai_core.plugins.catalog`) and import neither torch nor any plugin; each command imports
what it needs when it runs (:mod:`.commands`, :mod:`.listing`, :mod:`.describe`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from xai_core.errors import XaiError
from xai_core.plugins import cache as plugin_cache
from xai_core.plugins.catalog import catalog
from xai_core.plugins.hookspecs import BUILTIN_COMMANDS
from xai_core.version import __version__

__all__ = ["main", "LIST_KINDS"]

LIST_KINDS = (
    "models", "attributors", "synthesizers", "presets", "metrics", "targets", "sinks", "samples",
    "plugins", "examples", "classes", "layers",
)


@dataclass(frozen=True)
class _Listed:
    """A plugin command as the catalog knows it: enough for ``xai --help``."""

    name: str
    help: str


class _CommandParser(argparse.ArgumentParser):
    """A subcommand's parser: flags may stand anywhere among its positionals, so ``xai run
    cfg.yaml seed=1 --force output_dir=x`` keeps both overrides (argparse alone stops taking
    positionals at the first flag). A plugin command whose arguments cannot be parsed that way
    (a sub-subcommand, ``nargs=REMAINDER``) is parsed as argparse does."""

    _parsing = False

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        if self._parsing:  # called back by parse_known_intermixed_args
            return super().parse_known_args(args, namespace)
        self._parsing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        except TypeError:
            return super().parse_known_args(args, namespace)
        finally:
            self._parsing = False


def _global_flags(suppress: bool) -> argparse.ArgumentParser:
    """``--version`` and ``--debug``, before the command or (``suppress``: no default, so the
    value given before the command stands) after it."""
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--version", action="version", version=f"xai-core {__version__}")
    flags.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS if suppress else False,
        help="show tracebacks on errors, and broken plugins' warnings in full",
    )
    return flags


def _parser(commands: Iterable[Any]) -> argparse.ArgumentParser:
    """The parser of the built-in commands (:data:`BUILTIN_COMMANDS`) and of ``commands``, the
    ones plugins registered (:class:`~xai_core.plugins.registration.Command`, or for help only,
    anything with ``name`` and ``help``). The global flags may also follow the command, and a
    command's flags may stand anywhere among its arguments."""
    parser = argparse.ArgumentParser(
        prog="xai", description="Explain PyTorch image classifiers with pluggable techniques.",
        parents=[_global_flags(suppress=False)],
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_CommandParser
    )
    flags = _global_flags(suppress=True)

    def add(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[flags], **kwargs)

    p = add(
        "list", help="list models, techniques, presets, metrics, sinks, samples, plugins, "
        "examples, a model's classes or layers",
        description="xai list [KIND] [PATTERN]; xai list classes [MODEL] [PATTERN]; "
        "xai list layers MODEL",
    )
    p.add_argument("what", nargs="?", choices=LIST_KINDS, help="what to list (default: all)")
    p.add_argument(
        "pattern", nargs="*",
        help="fnmatch pattern, e.g. 'timm/resnet*'; for classes: [MODEL] [PATTERN]; for "
        "layers: MODEL",
    )

    p = add(
        "describe", help="what a technique, metric or model is, who provides it, its parameters"
    )
    p.add_argument("name", help="a name from `xai list`, or plugin:name (e.g. saliency:saliency)")

    p = add("run", help="run an experiment config")
    p.add_argument("config", help="YAML config file or example:NAME (xai list examples)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.add_argument("--force", action="store_true", help="recompute items a previous run finished")

    p = add("explain", help="explain images with one or more methods and models")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="files, folders, globs, sample:NAME")
    p.add_argument(
        "--method", "-m", action="append", required=True,
        help="technique or preset name (repeatable)",
    )
    p.add_argument(
        "--model", action="append", default=None,
        help="model name (xai list models); repeat it to compare models (default: "
        "efficientnet_lite0)",
    )
    p.add_argument(
        "--target", action="append", default=None,
        help="predicted (default), top-K, a class index, name or WordNet id; repeat it for "
        "several targets per image; or a target kind, KIND:key=value,... "
        "(logit_difference:a=tabby,b=tiger_cat; xai list targets)",
    )
    p.add_argument(
        "--param", "-p", dest="params", action="append", default=[],
        metavar="METHOD.KEY=VALUE", help="a method's parameter, e.g. grad_cam.layer=layer4",
    )
    p.add_argument("--out", default="outputs/explain", help="output directory")
    p.add_argument("--force", action="store_true", help="recompute items a previous run finished")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="key=value",
        help="any other config override, e.g. --set device=cuda",
    )

    p = add(
        "config", help="print a config resolved with overrides, or an example config"
    )
    p.add_argument("config", nargs="?", help="YAML config file or example:NAME")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.add_argument(
        "--example", metavar="NAME", nargs="?", const="", default=None,
        help="print the example config NAME as shipped (no NAME: list them)",
    )
    p.add_argument(
        "--check", action="store_true",
        help="only check the config (every error at once, each with its key path; nothing is "
             "loaded or written): exit 0 and one line when it is valid, 2 otherwise",
    )

    p = add(
        "report",
        help="(re)build report.html of a finished run; with figure.KEY=VALUE (or figures=true) "
             "overrides, redraw its figures from the saved maps first (nothing is recomputed)",
    )
    p.add_argument("run_dir", help="a run's output directory (holds results.json)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="figure settings: figure.cmap=magma, figure={sign: absolute}, figures=true")

    p = add(
        "verify", help="check a finished run: every output present, with its recorded sha256"
    )
    p.add_argument("run_dir", help="a run's output directory (holds results.json)")

    p = add(
        "table", help="a run's tidy table: one row per model, image, method and target, with "
        "its prediction, target score, metrics, timing and files"
    )
    p.add_argument("run_dir", help="a run's output directory (holds results.json)")
    p.add_argument("--format", choices=("markdown", "csv", "parquet"), default="markdown",
                   help="markdown (default) or csv to stdout or --output; parquet to --output")
    p.add_argument("--output", "-o", default=None, metavar="FILE", help="write it to FILE")

    p = add(
        "new-plugin", help="scaffold a plugin package that passes the contract tests"
    )
    p.add_argument("name", help="plugin name, e.g. my-saliency")
    p.add_argument("--dir", default=None, help="where to create it (default: ./NAME)")

    for command in commands:
        p = add(command.name, help=command.help, description=command.help)
        if getattr(command, "configure", None) is not None:
            command.configure(p)
        p.set_defaults(plugin_command=command)
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    command = getattr(args, "plugin_command", None)
    if command is not None:
        status = command.handler(args)
        return 0 if status is None else int(status)
    if args.command == "list":
        from xai_core.cli.listing import cmd_list

        return cmd_list(args.what, args.pattern)
    if args.command == "describe":
        from xai_core.cli.describe import cmd_describe

        return cmd_describe(args.name)
    from xai_core.cli import commands

    handler = {
        "run": commands.cmd_run_args,
        "explain": commands.cmd_explain,
        "config": commands.cmd_config,
        "report": commands.cmd_report,
        "verify": commands.cmd_verify,
        "table": commands.cmd_table,
        "new-plugin": commands.cmd_new_plugin,
    }.get(args.command)
    if handler is None:
        raise AssertionError(f"command {args.command!r} has a parser but no handler")
    return handler(args)


def _command_word(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def _commands(argv: Sequence[str]) -> list[Any]:
    """Plugin commands for the parser: the real ones when one of them runs, else the catalog's
    names and help lines (no plugin imported)."""
    word = _command_word(argv)
    if word is not None and word not in BUILTIN_COMMANDS:
        from xai_core.plugins.manager import get_registries

        return [entry.obj for entry in get_registries().commands]
    return [_Listed(c["name"], c["help"]) for c in catalog()["commands"]]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Before parsing, the parser itself needs the plugins' commands; a broken built-in plugin
    # fails there, and `--debug` must already count.
    debug = "--debug" in argv
    plugin_cache.debug_warnings = debug  # broken plugins' warnings in full
    try:
        args = _parser(_commands(argv)).parse_args(argv)
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
    except BrokenPipeError:  # `xai list models | head`: the reader has what it wanted
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
