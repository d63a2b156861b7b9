"""The docs stay true: the plugin tutorial's commands run as written, the scaffold passes its
own contract tests, every hook and built-in technique is documented and listed, every
``xai_core.*`` name the docs mention exists, and the generated reference is current."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import xai_core
from xai_core.plugins import hookspecs

ROOT = Path(__file__).resolve().parents[2]
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


@pytest.mark.slow
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
    listed = [line.split()[:2] for line in dict(outputs)["xai list attributors"].splitlines()]
    assert ["pos_grad_cam", "[my_methods]"] in listed
    assert ["blur_x_gradient", "[my_methods]"] in listed
    run = tmp_path / "outputs" / "my-methods"
    for method in ("pos_grad_cam", "grad_cam", "blur_x_gradient"):
        assert (run / "maps" / "cat" / f"{method}.npz").is_file()
    assert (run / "report.html").is_file()


def test_tutorial_methods_are_short():
    """The tutorial's promise: a new method on a family base is under 30 lines."""
    module = next(
        body
        for language, body in _blocks((DOCS / "tutorial-plugin.md").read_text())
        if language == "python" and "register_attributors" in body
    )
    lines = module.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("class ")]
    assert len(starts) == 2
    for start in starts:
        # A class ends at the next top-level line (the next class, the hook's decorator).
        end = next((j for j in range(start + 1, len(lines)) if lines[j][:1].strip()), len(lines))
        body = [line for line in lines[start:end] if line.strip()]
        assert len(body) < 30, f"{body[0]} has {len(body)} lines"


def _resolves(dotted: str) -> bool:
    """Whether ``xai_core.a.b.c`` names a module or an attribute of one."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


@pytest.mark.parametrize(
    "page",
    ["plugins.md", "tutorial-plugin.md", "architecture.md", "index.md", "getting-started.md"],
)
def test_names_the_docs_mention_exist(page):
    text = (DOCS / page).read_text()
    mentioned = set(re.findall(r"\b(xai_core(?:\.[A-Za-z_]\w*)+)", text))
    missing = sorted(name for name in mentioned if not _resolves(name))
    assert not missing, f"docs/{page} names what the code does not have: {missing}"


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
    tests = "".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
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

    generated = generate()
    committed = {p.name for p in (DOCS / "reference").glob("*.md")}
    assert committed == set(generated), (
        "docs/reference/ holds other files than docgen writes: regenerate with "
        "`python -m xai_core.dev.docgen` and remove the extra ones"
    )
    for path, text in generated.items():
        current = (DOCS / "reference" / path).read_text()
        assert current == text, (
            f"docs/reference/{path} is stale: regenerate with `python -m xai_core.dev.docgen`"
        )


def test_reference_can_cover_third_party_plugins(register_attributors):
    """``--all-plugins`` documents a plugin that is not xai-core's; the default leaves it out."""
    from dataclasses import dataclass

    from xai_core.dev.docgen import generate

    class Outside(xai_core.Attributor):
        name = "outside_method"
        summary = "a third-party technique"

        @dataclass
        class Params:
            #: A documented knob.
            knob: int = 3

        def compute(self, model, inputs, targets, context):
            return inputs.sum(dim=1)

    register_attributors("outside", Outside)
    assert "outside_method" not in generate()["techniques.md"]
    techniques = generate(all_plugins=True)["techniques.md"]
    assert "## `outside_method`" in techniques and "A documented knob." in techniques


@pytest.mark.parametrize(
    ("kit", "table"),
    [
        ("check_attributor", "ATTRIBUTOR_TABLE"),
        ("check_synthesizer", "SYNTHESIZER_TABLE"),
        ("check_metric", "METRIC_TABLE"),
        ("check_model", "MODEL_TABLE"),
    ],
)
def test_plugins_md_lists_exactly_each_kits_checks(kit, table):
    """The docs' table of a contract kit's checks is its table in xai_core.testing, in order."""
    from xai_core import testing

    text = (DOCS / "plugins.md").read_text()
    heading = f"`{kit}` (`xai_core.testing.{table}`):\n\n| check | rule |\n| --- | --- |\n"
    assert heading in text, f"docs/plugins.md has no table of {kit}'s checks"
    rows = text.split(heading, 1)[1].split("\n\n", 1)[0]
    documented = re.findall(r"^\| `(\w+)` \|", rows, flags=re.M)
    assert documented == [check.name for check in getattr(testing, table)]
