"""Gradient attributions (plugin ``gradients``): guided backprop, deconvnet, gradient x input,
integrated gradients and the SmoothGrad family (``noise_tunnel``) over any attributor.

One module per method group, all on :class:`xai_core.GradientAttributor`:

* :mod:`.backprop`: ``guided_backprop``, ``deconvnet``, ``gradient_x_input``;
* :mod:`.integrated_gradients`: ``integrated_gradients``;
* :mod:`.noise_tunnel`: ``noise_tunnel``;
* :mod:`.saliency`: ``saliency``, a plugin of its own (entry point ``saliency``).

The building blocks (class scores, input gradients, channel reductions, ReLU rules) live in
:mod:`xai_core.nn`, where other plugins find them; nothing here is imported by another plugin.
"""

from __future__ import annotations

from xai_core import hookimpl

from .backprop import Deconvnet, GradientXInput, GuidedBackprop
from .integrated_gradients import (
    IG_BASELINES,
    IG_METHODS,
    IntegratedGradients,
    quadrature,
)
from .noise_tunnel import NOISE_TYPES, NoiseTunnel

__all__ = [
    "IG_BASELINES",
    "IG_METHODS",
    "NOISE_TYPES",
    "Deconvnet",
    "GradientXInput",
    "GuidedBackprop",
    "IntegratedGradients",
    "NoiseTunnel",
    "quadrature",
]

GRADIENT_METHODS = (GuidedBackprop, Deconvnet, GradientXInput, IntegratedGradients, NoiseTunnel)


@hookimpl
def register_attributors(register):
    for technique in GRADIENT_METHODS:
        register(technique)


@hookimpl
def register_presets(register):
    # The SmoothGrad family by its usual names: noise_tunnel settings over plain gradients.
    register(
        "smoothgrad", "noise_tunnel", {"base": "saliency", "type": "smoothgrad"},
        description="SmoothGrad (Smilkov et al. 2017): saliency averaged over noisy copies",
    )
    register(
        "smoothgrad_sq", "noise_tunnel", {"base": "saliency", "type": "smoothgrad_sq"},
        description="SmoothGrad-Squared: the mean of squared saliency over noisy copies",
    )
    register(
        "vargrad", "noise_tunnel", {"base": "saliency", "type": "vargrad"},
        description="VarGrad (Adebayo et al. 2018): the variance of saliency over noisy copies",
    )
