"""DeepLIFT and the gradient SHAP family (plugin ``deeplift``), all on
:class:`xai_core.GradientAttributor`:

* :mod:`.deeplift`: ``deeplift`` (rescale rule) and ``deeplift_shap`` (DeepLIFT averaged over a
  set of references);
* :mod:`.gradient_shap`: ``gradient_shap`` (expected gradients over a set of references, with
  input noise);
* :mod:`.rescale`: the rescale rule itself, a torch function mode that turns the backward pass
  of a paired batch ``cat([x, x_ref])`` into DeepLIFT multipliers.

Baselines, single and sets, come from :mod:`xai_core.nn.images` (:class:`~xai_core.nn.images.
Baseline`, :func:`~xai_core.nn.images.baseline_set`), the vocabulary integrated gradients uses;
nothing here is imported by another plugin.
"""

from __future__ import annotations

from xai_core import hookimpl

from .deeplift import DeepLift, DeepLiftShap
from .gradient_shap import GradientShap
from .rescale import CAPTUM_MODULES, RULE_SETS, deeplift_gradients, rescale_rule

__all__ = [
    "CAPTUM_MODULES",
    "RULE_SETS",
    "DeepLift",
    "DeepLiftShap",
    "GradientShap",
    "deeplift_gradients",
    "rescale_rule",
]


@hookimpl
def register_attributors(register):
    for technique in (DeepLift, DeepLiftShap, GradientShap):
        register(technique)
