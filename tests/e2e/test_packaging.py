"""What a plain (non-editable) `pip install xai-core` gets: the example configs in the wheel,
usable as `xai config --example NAME` and `xai run example:NAME` away from the source tree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from xai_core.store import load_items

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ("benchmark", "compare-backbones", "dataset", "demo", "localisation", "own_model")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """xai-core built as a wheel and installed (no dependencies) into a folder of its own."""
    work = tmp_path_factory.mktemp("wheel")
    # A copy of the sources, so that no `build/` folder of an earlier build leaks into the wheel.
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "dist", "outputs", "*.egg-info", "__pycache__", ".*cache"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(work / "dist"), str(source)],
        capture_output=True, text=True, timeout=600,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((work / "dist").glob("xai_core-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {f"xai_core/examples/{name}.yaml" for name in EXAMPLES} <= names
    assert {"xai_core/examples/masks/cat.png", "xai_core/examples/masks/coffee.png"} <= names
    assert "xai_core/examples/own_model_net.py" in names  # the factory file of example:own_model
    # every package of the source tree is in the wheel (pyproject lists them one by one)
    for init in (ROOT / "xai_core").rglob("__init__.py"):
        assert str(init.relative_to(ROOT)) in names, init
    target = work / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return target


def _xai(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "xai_core.cli", *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=600,
    )


@pytest.mark.slow
def test_examples_ship_in_the_wheel_and_run_outside_the_checkout(installed, tmp_path):
    where = _xai(installed, tmp_path, "list", "examples")
    assert where.returncode == 0, where.stderr
    assert all(f"example:{name}" in where.stdout for name in EXAMPLES)
    for name in EXAMPLES:
        shown = _xai(installed, tmp_path, "config", "--example", name)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout == (ROOT / "configs" / f"{name}.yaml").read_text()
    probe = subprocess.run(
        [sys.executable, "-c", "import xai_core.runner.examples as e; print(e.examples_dir())"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(installed)},
        cwd=tmp_path,
    )
    assert probe.stdout.strip().startswith(str(installed)), probe.stdout + probe.stderr
    ran = _xai(
        installed, tmp_path, "run", "example:demo", "inputs=[sample:cat]", "methods=[saliency]",
        "model.name=timm/resnet10t", "model.pretrained=false", "metrics=[]", "workers=0",
        f"output_dir={tmp_path / 'out'}",
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["complete"] and load_items(tmp_path / "out", results)[0]["error"] is None


@pytest.mark.slow
def test_example_masks_are_found_from_the_wheel(installed, tmp_path):
    """``example:masks`` in example:localisation names the masks installed with the wheel."""
    ran = _xai(
        installed, tmp_path, "run", "example:localisation", "methods=[grad_cam]",
        "model.name=timm/resnet10t", "model.pretrained=false", "model.input_size=64",
        "metrics=[pointing_game]", "workers=0", "figures=false", f"output_dir={tmp_path / 'out'}",
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    items = load_items(tmp_path / "out", results)
    assert [item["key"] for item in items] == ["cat", "coffee"]
    for item in items:
        assert item["error"] is None and item["metrics"]["pointing_game"] is not None, item
