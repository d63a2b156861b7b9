"""``docs/architecture.md`` keeps up with the code: it names every module of ``xai_core``, every
hook, and every ``xai`` subcommand, the ones plugins register included."""

from __future__ import annotations

import argparse
import pkgutil
from pathlib import Path

import xai_core
from xai_core.plugins import hookspecs

ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def _text() -> str:
    return ARCHITECTURE.read_text()


def _modules() -> list[str]:
    found = ["xai_core"]
    found += [m.name for m in pkgutil.walk_packages(xai_core.__path__, prefix="xai_core.")]
    return found


def _commands() -> list[str]:
    from xai_core.cli import _parser
    from xai_core.plugins.manager import get_registries

    parser = _parser([entry.obj for entry in get_registries().commands])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(sub.choices)


def test_every_module_is_documented():
    text = _text()
    missing = [name for name in _modules() if f"`{name}`" not in text]
    assert not missing, f"docs/architecture.md does not mention {missing}"


def test_every_hook_is_documented():
    text = _text()
    missing = [name for name in hookspecs.HOOK_NAMES if f"`{name}`" not in text]
    assert not missing, f"docs/architecture.md does not mention the hooks {missing}"


def test_every_cli_command_is_documented():
    commands = _commands()
    assert {"list", "run", "explain", "benchmark"} <= set(commands)
    text = _text()
    missing = [name for name in commands if f"`xai {name}" not in text]
    assert not missing, f"docs/architecture.md does not mention the commands {missing}"


def test_a_plugin_command_counts_too():
    """A command a plugin registers is a CLI command like the others: the test sees it."""
    import types

    plugin = types.ModuleType("extra_command")

    @xai_core.hookimpl
    def register_commands(register):
        register("frobnicate", lambda args: 0, help="an extra command")

    plugin.register_commands = register_commands
    xai_core.register_plugin(plugin, name="extra_command")
    assert "frobnicate" in _commands()
