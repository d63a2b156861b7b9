"""The example plugin package in ``docs/examples/`` installs with pip and works as documented:
``xai list`` shows its attributor, synthesizer, metric and model, and its own tests (the four
``xai_core.testing`` checks) pass against the installed copy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
#: What the example provides, by `xai list` section.
PROVIDES = {
    "attributors": "sobel_edges",
    "synthesizers": "edge_push",
    "metrics": "edge_similarity",
    "models": "edge_cnn",
}


def _env(site: Path) -> dict[str, str]:
    env = dict(os.environ)
    if "XAI_CORE_PLUGINS" in env:
        # An allow-list in the caller's environment still has to let the example in.
        env["XAI_CORE_PLUGINS"] += ",sobel"
    return {
        **env,
        "PATH": f"{BIN}{os.pathsep}{env['PATH']}",
        "PYTHONPATH": str(site),
        "XAI_CORE_DISABLE_PLUGIN_AUTOLOAD": "0",
        "OMP_NUM_THREADS": "1",
    }


def test_weights_ship_in_the_package_and_stay_small(installed_example):
    site, _ = installed_example
    weights = site / "xai_sobel_plugin" / "edge_cnn.pt"
    assert weights.is_file()
    assert weights.stat().st_size < 50 * 1024


@pytest.mark.slow
def test_xai_list_shows_all_four_things(installed_example, tmp_path):
    site, _ = installed_example
    listed = subprocess.run(
        ["xai", "list"], cwd=tmp_path, env=_env(site), capture_output=True, text=True, timeout=300
    )
    assert listed.returncode == 0, listed.stderr
    sections: dict[str, list[list[str]]] = {}
    for line in listed.stdout.splitlines():
        if not line.startswith(" "):
            current = sections.setdefault(line.rstrip(":"), [])
        else:
            current.append(line.split()[:2])
    for section, name in PROVIDES.items():
        assert [name, "[sobel]"] in sections.get(section, []), (
            f"{name} not under {section} in `xai list`:\n{listed.stdout}"
        )


@pytest.mark.slow
def test_the_examples_own_contract_tests_pass(installed_example, tmp_path):
    site, source = installed_example
    # cwd is not the source tree, so the tests import the installed copy.
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(source / "tests")],
        cwd=tmp_path,
        env=_env(site),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "6 passed" in ran.stdout, ran.stdout
