"""Public names imported on first use (PEP 562): what keeps ``import xai_core`` and
``import xai_core.plugins`` light, so that ``xai --help`` and ``xai list`` do not wait for torch."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_getattr"]


def lazy_getattr(namespace: dict[str, Any], exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for the package whose globals are ``namespace``: a name of
    ``exports`` (name -> the module it lives in) is imported on first use and then kept in
    ``namespace``; any other name is an :class:`AttributeError`."""
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
