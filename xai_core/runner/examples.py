"""Example configs that ship with xai-core: ``configs/*.yaml`` in a source checkout, installed as
``xai_core/examples/*.yaml`` (pyproject's ``package-dir``), so they work after a plain
``pip install``. ``xai config --example NAME`` prints one; ``example:NAME`` is accepted wherever a
config file is (``xai run example:demo``). Files the examples use ship beside them
(``configs/masks/``): ``example:masks/cat.png`` names one (:func:`example_file`)."""

from __future__ import annotations

from pathlib import Path

from xai_core.errors import UnknownNameError

__all__ = ["EXAMPLE_PREFIX", "examples_dir", "list_examples", "example_path", "example_file"]

#: ``example:demo`` names the packaged example config ``demo``.
EXAMPLE_PREFIX = "example:"

_PACKAGE = Path(__file__).resolve().parents[1]


def examples_dir() -> Path:
    """Where the example configs are: in the installed package, else the checkout's
    ``configs/`` (an editable install maps only Python packages)."""
    installed = _PACKAGE / "examples"
    if installed.is_dir():
        return installed
    return _PACKAGE.parent / "configs"


def list_examples() -> list[str]:
    """Names of the example configs, sorted."""
    folder = examples_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def example_path(name: str) -> Path:
    """The file of example ``name`` (with or without the ``example:`` prefix)."""
    if name.startswith(EXAMPLE_PREFIX):
        name = name[len(EXAMPLE_PREFIX):]
    path = examples_dir() / f"{name}.yaml"
    if not name or "/" in name or not path.is_file():
        raise UnknownNameError("example config", name, list_examples(), "examples")
    return path


def example_file(path: str) -> Path:
    """The file or folder behind ``example:RELATIVE/PATH``, shipped beside the example configs
    (``example:masks`` is ``configs/masks/``); any other path comes back unchanged."""
    if not path.startswith(EXAMPLE_PREFIX):
        return Path(path).expanduser()
    return examples_dir() / path[len(EXAMPLE_PREFIX):]
