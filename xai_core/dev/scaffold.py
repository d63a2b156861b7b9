"""``xai new-plugin NAME``: a plugin package that installs, registers and passes the contract
tests of :mod:`xai_core.testing` out of the box, ready to be edited."""

from __future__ import annotations

import importlib.metadata
import keyword
import re
from pathlib import Path

from xai_core.errors import XaiError
from xai_core.io import write_text
from xai_core.plugins.manager import get_registries, installed_entry_points

__all__ = ["new_plugin"]

PYPROJECT = """\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "An xai-core plugin: {technique}"
requires-python = ">=3.10"
dependencies = ["xai-core"]

[project.optional-dependencies]
test = ["pytest"]

# xai-core finds plugins through this entry-point group.
[project.entry-points.xai_core]
{module} = "{module}"

[tool.setuptools]
py-modules = ["{module}"]
"""

MODULE = '''\
"""xai-core plugin {dist}: the ``{technique}`` attribution technique.

Replace ``compute`` with your technique; keep the contract test green (``pytest``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import xai_core
from xai_core.nn.gradients import REDUCTIONS, input_gradients, reduce_channels


class {cls}(xai_core.Attributor):
    """Magnitude of the input gradient of the target class score."""

    name = "{technique}"
    summary = "magnitude of the input gradient (edit me)"
    paper = ""

    @dataclass
    class Params:
        #: How to reduce the three colour channels to one map.
        reduction: str = field(default="l2", metadata={{"choices": REDUCTIONS}})

    def compute(self, model, inputs, targets, context):
        # model: eval mode, frozen parameters; register torch hooks only via context.hooks.
        grad = input_gradients(model, inputs, targets)
        return reduce_channels(grad.abs(), self.params.reduction)


@xai_core.hookimpl
def register_attributors(register):
    register({cls})
'''

TEST = '''\
"""The contract every xai-core technique keeps: shapes, finite values, hooks removed, model
untouched, batch equals per item, determinism, several targets per input."""

import xai_core
from xai_core.testing import check_attributor


def test_registered():
    assert "{technique}" in xai_core.list_attributors()


def test_contract():
    check_attributor("{technique}")
'''

README = """\
# {dist}

An xai-core plugin providing the `{technique}` attribution technique.

```bash
pip install -e ".[test]"
pytest                       # the xai_core.testing contract tests
xai list attributors         # shows {technique} [{module}]
xai explain sample:cat --method {technique}
```
"""


def new_plugin(name: str, directory: str | Path | None = None) -> Path:
    """Create the package for plugin ``name`` in ``directory`` (default: ``./name``).

    ``name`` may use letters, digits, ``-`` and ``_``; the module, entry-point and technique
    names are its snake_case form. Refuses to overwrite an existing folder, and refuses a name an
    installed package already uses (distribution, ``xai_core`` entry point or technique): the new
    plugin would be skipped as broken, or shadowed, the moment it is installed.
    """
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name):
        raise XaiError(
            f"plugin name {name!r} must start with a letter and use only letters, digits, "
            "'-' and '_' (e.g. my-saliency)"
        )
    module = name.replace("-", "_").lower()
    if keyword.iskeyword(module) or module in ("xai_core", "xai_core_plugins", "plugins"):
        raise XaiError(f"plugin name {name!r} clashes with a Python or xai-core name; pick another")
    _check_name_is_free(name.lower(), module)
    target = Path(directory) if directory is not None else Path(name)
    if target.exists():
        raise XaiError(f"{str(target)!r} already exists; choose another name or --dir")
    cls = "".join(part.capitalize() for part in module.split("_"))
    fields = {"dist": name.lower(), "module": module, "technique": module, "cls": cls}
    write_text(target / "pyproject.toml", PYPROJECT.format(**fields))
    write_text(target / f"{module}.py", MODULE.format(**fields))
    write_text(target / "tests" / "test_contract.py", TEST.format(**fields))
    write_text(target / "README.md", README.format(**fields))
    return target


def _check_name_is_free(dist: str, module: str) -> None:
    for ep in installed_entry_points():
        if ep.name == module:
            owner = getattr(ep, "dist", None)
            source = f"{owner.metadata['Name']} {owner.version}" if owner is not None else "?"
            raise XaiError(
                f"plugin name {module!r} is taken: the entry point {ep.name} = {ep.value!r} of "
                f"{source} has it; pick another name"
            )
    registries = get_registries()
    entry = registries.techniques.find(module)
    if entry is not None:
        owner = registries.plugins[entry.plugin].source
        raise XaiError(
            f"technique name {module!r} is taken by plugin {entry.plugin!r} ({owner}); "
            "pick another name"
        )
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return
    raise XaiError(f"package {dist!r} {version} is already installed; pick another name")
