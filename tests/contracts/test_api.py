"""The public API is one list (``xai_core.__all__``): every name imports, the type checkers'
imports mirror it, the reference lists exactly it, and docstring examples run."""

from __future__ import annotations

import ast
import doctest
import importlib
import importlib.util
import pkgutil
import re
from pathlib import Path

import pytest

import xai_core

ROOT = Path(__file__).resolve().parents[1]
while not (ROOT / "pyproject.toml").is_file():  # wherever this file sits under tests/
    ROOT = ROOT.parent


def test_every_public_name_imports():
    for name in xai_core.__all__:
        assert getattr(xai_core, name) is not None, name
    assert set(xai_core.__all__) - {"__version__"} == set(xai_core._EXPORTS)


def test_the_type_checkers_imports_are_the_public_api():
    tree = ast.parse((ROOT / "xai_core" / "__init__.py").read_text())
    block = next(node for node in tree.body
                 if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING")
    imported = {
        alias.name: node.module
        for node in ast.walk(block) if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert imported == xai_core._EXPORTS


def test_the_reference_lists_exactly_the_public_api():
    text = (ROOT / "docs" / "reference" / "api.md").read_text()
    listed = re.findall(r"^- `(?:class )?(\w+)`", text, re.M)
    assert listed == list(xai_core.__all__)


def _modules():
    import xai_core_plugins

    for package in (xai_core, xai_core_plugins):
        yield package.__name__
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            yield info.name


def _with_examples() -> list[str]:
    found = []
    for name in _modules():
        path = importlib.util.find_spec(name).origin
        if path and path.endswith(".py") and ">>>" in Path(path).read_text():
            found.append(name)
    return found


def test_docstring_examples_are_found():
    # The package's own example and the family bases' ones at least: a doctest test that finds
    # nothing would pass for ever.
    assert {"xai_core", "xai_core.families.gradient"} <= set(_with_examples())


@pytest.mark.parametrize("name", _with_examples())
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0, result
