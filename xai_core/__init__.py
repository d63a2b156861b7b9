"""xai-core: plugin-based explainability for PyTorch image classifiers.

Public API::

    import xai_core
    model = xai_core.load_model("efficientnet_lite0")
    saliency = xai_core.get_attributor("saliency")
    result = saliency.attribute(model, inputs, target="predicted")   # result.maps: [N, H, W]

Techniques, models and metrics come from plugins (entry-point group ``xai_core``); see
``xai_core.plugins.hookspecs`` for the contract and ``docs/plugins.md`` for a walk-through. A new
technique of a known family builds on its public base (``xai_core.families``):
:class:`GradientAttributor`, :class:`LayerCam` / :class:`GradientCam`,
:class:`PerturbationAttributor`.
"""

from __future__ import annotations

from xai_core.contracts.attributor import Attribution, Attributor
from xai_core.contracts.metric import Metric, MetricContext, MetricResult
from xai_core.contracts.model import ModelHandle, Preprocessing
from xai_core.contracts.synthesizer import (
    Synthesis,
    SynthesisContext,
    SynthesisRecord,
    Synthesizer,
)
from xai_core.contracts.technique import AttributionContext, Technique
from xai_core.errors import XaiError
from xai_core.families.cam import GradientCam, LayerCam
from xai_core.families.gradient import GradientAttributor
from xai_core.families.perturbation import PerturbationAttributor
from xai_core.models.loading import list_models, load_model
from xai_core.plugins.factory import (
    get_attributor,
    get_metric,
    get_synthesizer,
    list_attributors,
    list_metrics,
    list_presets,
    list_synthesizers,
)
from xai_core.plugins.manager import hookimpl, register_plugin
from xai_core.version import __version__

__all__ = [
    "__version__",
    "Attribution",
    "AttributionContext",
    "Attributor",
    "GradientAttributor",
    "GradientCam",
    "LayerCam",
    "Metric",
    "MetricContext",
    "MetricResult",
    "ModelHandle",
    "PerturbationAttributor",
    "Preprocessing",
    "Synthesis",
    "SynthesisContext",
    "SynthesisRecord",
    "Synthesizer",
    "Technique",
    "XaiError",
    "get_attributor",
    "get_metric",
    "get_synthesizer",
    "hookimpl",
    "list_attributors",
    "list_metrics",
    "list_presets",
    "list_models",
    "list_synthesizers",
    "load_model",
    "register_plugin",
]
