"""xai-core: plugin-based explainability for PyTorch image classifiers.

Public API::

    import xai_core
    model = xai_core.load_model("efficientnet_lite0")
    saliency = xai_core.get_attributor("saliency")
    result = saliency.attribute(model, inputs, target="predicted")   # result.maps: [N, H, W]

Techniques, models and metrics come from plugins (entry-point group ``xai_core``); see
``xai_core.hookspecs`` for the contract and ``docs/plugins.md`` for a walk-through.
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import Any

from .errors import XaiError
from .models import ModelHandle, Preprocessing, list_models, load_model
from .plugins import get_registries, hookimpl, register_plugin
from .techniques import Attribution, Attributor, Synthesis, Synthesizer, Technique

__all__ = [
    "__version__",
    "Attribution",
    "Attributor",
    "ModelHandle",
    "Preprocessing",
    "Synthesis",
    "Synthesizer",
    "Technique",
    "XaiError",
    "get_attributor",
    "get_synthesizer",
    "hookimpl",
    "list_attributors",
    "list_models",
    "list_synthesizers",
    "load_model",
    "register_plugin",
]


def _technique(kind: type, name: str) -> type:
    from .errors import UnknownNameError

    registry = get_registries().techniques
    cls = registry.get(name)
    if not issubclass(cls, kind):
        same_kind = [e.name for e in registry if issubclass(e.obj, kind)]
        raise UnknownNameError(kind.kind, name, same_kind, kind.kind + "s")
    return cls


def get_attributor(name: str, **params: Any) -> Attributor:
    """An attributor by registered name, parameters validated: ``get_attributor("saliency")``."""
    return _technique(Attributor, name)(**params)


def get_synthesizer(name: str, **params: Any) -> Synthesizer:
    """A synthesizer by registered name, with its parameters validated."""
    return _technique(Synthesizer, name)(**params)


def list_attributors() -> list[str]:
    return [e.name for e in get_registries().techniques if issubclass(e.obj, Attributor)]


def list_synthesizers() -> list[str]:
    return [e.name for e in get_registries().techniques if issubclass(e.obj, Synthesizer)]
