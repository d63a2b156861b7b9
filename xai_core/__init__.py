"""xai-core: plugin-based explainability for PyTorch image classifiers.

Public API (``__all__``, listed in ``docs/reference/api.md``):

>>> import torch, xai_core
>>> model = xai_core.load_model("timm/resnet10t", pretrained=False)  # or "efficientnet_lite0"
>>> inputs = torch.randn(2, 3, 64, 64)                               # a normalized batch
>>> result = xai_core.get_attributor("saliency").attribute(model, inputs, target="predicted")
>>> result.maps.shape
torch.Size([2, 64, 64])

One call runs what ``xai run`` runs and returns the run as objects (``xai_core.open_run`` opens
a finished run's folder the same way)::

    ex = xai_core.explain("efficientnet_lite0", ["sample:cat"], methods=["saliency", "grad_cam"])
    ex.plot(); ex.frame()

Techniques, models and metrics come from plugins (entry-point group ``xai_core``); see
``xai_core.plugins.hookspecs`` for the contract and ``docs/plugins.md`` for a walk-through. A new
technique of a known family builds on its public base (``xai_core.families``):
:class:`GradientAttributor`, :class:`LayerCam` / :class:`GradientCam`,
:class:`PerturbationAttributor`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from xai_core.lazy import lazy_getattr
from xai_core.version import __version__

# The public names are imported on first use (PEP 562): `import xai_core` alone stays light, so
# `xai --help` and `xai list` do not wait for torch (about 2-4 s). Type checkers see the imports.
if TYPE_CHECKING:
    from xai_core.contracts.attributor import Attribution, Attributor
    from xai_core.contracts.metric import Metric, MetricContext, MetricResult
    from xai_core.contracts.model import ModelHandle, Preprocessing
    from xai_core.contracts.params import setting
    from xai_core.contracts.sink import Sink, SinkRun
    from xai_core.contracts.synthesizer import (
        Synthesis,
        SynthesisContext,
        SynthesisRecord,
        Synthesizer,
    )
    from xai_core.contracts.target_kinds import BoundTarget, ScoreFunction, TargetCall, TargetKind
    from xai_core.contracts.technique import AttributionContext, ForwardPass, Technique
    from xai_core.errors import XaiError
    from xai_core.families.cam import GradientCam, LayerCam
    from xai_core.families.gradient import GradientAttributor
    from xai_core.families.perturbation import PerturbationAttributor
    from xai_core.models.loading import list_models, load_model
    from xai_core.plugins.factory import (
        get_attributor,
        get_metric,
        get_sink,
        get_synthesizer,
        get_target,
        list_attributors,
        list_metrics,
        list_presets,
        list_sinks,
        list_synthesizers,
        list_targets,
    )
    from xai_core.plugins.manager import hookimpl, register_plugin
    from xai_core.report.explanations import Explanations, open_run
    from xai_core.runner.explain import explain

#: Each public name and the module it lives in: the one list of the public API.
_EXPORTS: dict[str, str] = {
    "Attribution": "xai_core.contracts.attributor",
    "Attributor": "xai_core.contracts.attributor",
    "Metric": "xai_core.contracts.metric",
    "MetricContext": "xai_core.contracts.metric",
    "MetricResult": "xai_core.contracts.metric",
    "ModelHandle": "xai_core.contracts.model",
    "Preprocessing": "xai_core.contracts.model",
    "setting": "xai_core.contracts.params",
    "Sink": "xai_core.contracts.sink",
    "SinkRun": "xai_core.contracts.sink",
    "Synthesis": "xai_core.contracts.synthesizer",
    "SynthesisContext": "xai_core.contracts.synthesizer",
    "SynthesisRecord": "xai_core.contracts.synthesizer",
    "Synthesizer": "xai_core.contracts.synthesizer",
    "BoundTarget": "xai_core.contracts.target_kinds",
    "ScoreFunction": "xai_core.contracts.target_kinds",
    "TargetCall": "xai_core.contracts.target_kinds",
    "TargetKind": "xai_core.contracts.target_kinds",
    "AttributionContext": "xai_core.contracts.technique",
    "ForwardPass": "xai_core.contracts.technique",
    "Technique": "xai_core.contracts.technique",
    "XaiError": "xai_core.errors",
    "GradientCam": "xai_core.families.cam",
    "LayerCam": "xai_core.families.cam",
    "GradientAttributor": "xai_core.families.gradient",
    "PerturbationAttributor": "xai_core.families.perturbation",
    "list_models": "xai_core.models.loading",
    "load_model": "xai_core.models.loading",
    "get_attributor": "xai_core.plugins.factory",
    "get_metric": "xai_core.plugins.factory",
    "get_synthesizer": "xai_core.plugins.factory",
    "get_sink": "xai_core.plugins.factory",
    "get_target": "xai_core.plugins.factory",
    "list_attributors": "xai_core.plugins.factory",
    "list_metrics": "xai_core.plugins.factory",
    "list_presets": "xai_core.plugins.factory",
    "list_sinks": "xai_core.plugins.factory",
    "list_synthesizers": "xai_core.plugins.factory",
    "list_targets": "xai_core.plugins.factory",
    "hookimpl": "xai_core.plugins.manager",
    "register_plugin": "xai_core.plugins.manager",
    "Explanations": "xai_core.report.explanations",
    "open_run": "xai_core.report.explanations",
    "explain": "xai_core.runner.explain",
}


#: Subpackages reachable as attributes (``xai_core.contracts.model``) after ``import xai_core``.
_SUBMODULES = frozenset((
    "cli", "contracts", "dev", "errors", "families", "io", "lazy", "models", "nn", "plugins",
    "report", "runner", "testing", "version",
))


_exported = lazy_getattr(globals(), _EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        # What `import xai_core` used to import, so that `xai_core.contracts.model` resolves.
        for module_name in set(_EXPORTS.values()):
            importlib.import_module(module_name)
        return importlib.import_module(f"xai_core.{name}")
    return _exported(name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


#: The public API: every name above, one list (the ``TYPE_CHECKING`` imports mirror it for type
#: checkers; a test keeps them equal, and ``docs/reference/api.md`` lists exactly it).
__all__ = ["__version__", *_EXPORTS]
