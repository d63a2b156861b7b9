"""The docs stay true: the plugin tutorial's commands run as written, the scaffold passes its
own contract tests, and every hook and built-in technique is documented and listed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import xai_core
from xai_core.plugins import hookspecs

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BIN = Path(sys.executable).parent


def _blocks(markdown: str) -> list[tuple[str, str]]:
    return re.findall(r"```(\w+)\n(.*?)```", markdown, flags=re.S)


def _isolated_env(site: Path) -> dict[str, str]:
    """pip installs into ``site`` (on PYTHONPATH), never into the test environment itself."""
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(site),
        "PIP_TARGET": str(site),
        "PIP_NO_DEPS": "1",
        "PIP_NO_BUILD_ISOLATION": "0",
        "XAI_CORE_DISABLE_PLUGIN_AUTOLOAD": "0",
    }


def test_plugin_tutorial_runs_as_written(tmp_path):
    text = (DOCS / "tutorial-plugin.md").read_text()
    env = _isolated_env(tmp_path / "site")
    outputs = []
    for language, body in _blocks(text):
        if language == "python":
            first, _, code = body.partition("\n")
            match = re.fullmatch(r"# file: (\S+)", first.strip())
            assert match, "python blocks in the tutorial start with '# file: PATH'"
            (tmp_path / match.group(1)).write_text(first + "\n" + code)
        elif language == "bash":
            for command in body.strip().splitlines():
                result = subprocess.run(
                    command,
                    shell=True,
                    cwd=tmp_path,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
                outputs.append((command, result.stdout))
    listed = dict(outputs)["xai list attributors"]
    assert any(line.split()[:2] == ["my_edges", "[my_edges]"] for line in listed.splitlines())
    run = tmp_path / "outputs" / "my-edges"
    assert (run / "maps" / "cat" / "my_edges.npy").is_file()
    assert (run / "report.html").is_file()


def test_scaffold_refuses_bad_names_and_existing_folders(tmp_path):
    from xai_core.dev.scaffold import new_plugin
    from xai_core.errors import XaiError

    with pytest.raises(XaiError, match="must start with a letter"):
        new_plugin("1bad", tmp_path / "x")
    new_plugin("fine", tmp_path / "fine")
    with pytest.raises(XaiError, match="already exists"):
        new_plugin("fine", tmp_path / "fine")


def test_every_hook_spec_is_documented_and_tested():
    plugin_docs = (DOCS / "plugins.md").read_text()
    reference = (DOCS / "reference" / "hooks.md").read_text()
    tests = "".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    for name in hookspecs.HOOK_NAMES:
        assert f"`{name}`" in plugin_docs or name in plugin_docs, f"{name} missing from plugins.md"
        assert f"## `{name}" in reference, f"{name} missing from reference/hooks.md"
        assert f"def {name}(" in tests, f"no test implements the hook {name}"


def test_every_builtin_technique_is_documented_and_listed(capsys):
    from xai_core.cli import main

    reference = (DOCS / "reference" / "techniques.md").read_text()
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    names = xai_core.list_attributors() + xai_core.list_synthesizers()
    assert names
    for name in names:
        assert f"## `{name}`" in reference, f"{name} missing from docs/reference/techniques.md"
        assert re.search(rf"^\s*{re.escape(name)}\s", listing, flags=re.M), f"{name} not listed"


def test_generated_reference_is_up_to_date():
    from xai_core.dev.docgen import generate

    for path, text in generate().items():
        current = (DOCS / "reference" / path).read_text()
        assert current == text, (
            f"docs/reference/{path} is stale: regenerate with `python -m xai_core.dev.docgen`"
        )
