"""Surrogate models on superpixels (plugin ``surrogate``): ``lime`` and ``kernel_shap``. Forward
passes only, no gradients.

* :mod:`.segmentation`: the superpixels (scikit-image's SLIC or quickshift, in pixel space);
* :mod:`.base`: the shared loop (one segmentation per image for all its targets, seeded samples,
  batched scoring, the map from the coefficients);
* :mod:`.lime`: LIME's samples, similarity kernel and lasso (Captum's ``Lime``);
* :mod:`.kernel_shap`: Kernel SHAP's coalitions and regression (Captum's ``KernelShap``);
* :mod:`.fit`: the weighted linear fits (least squares, ridge, lasso) in torch.

Both build on :class:`xai_core.PerturbationAttributor`: its shared parameters (``baseline`` is
what a hidden superpixel is filled with), batch-norm folding and scoring passes. Their public
samplers and weights (:func:`.lime.lime_samples`, :func:`.kernel_shap.kernel_shap_samples`,
:func:`.base.segment_image`) are what a comparison with Captum feeds its ``feature_mask`` and
``perturb_func``.

What does not live here: occlusion and RISE (``perturbation``), gradient SHAP (``gradients``).
"""

from __future__ import annotations

from xai_core import hookimpl

from .base import SuperpixelImage, SurrogateAttributor, segment_image
from .fit import SURROGATES, fit_surrogate
from .kernel_shap import KernelShap, kernel_shap_samples, kernel_shap_weights
from .lime import Lime, lime_samples, lime_weights
from .segmentation import SEGMENTATIONS, superpixels

__all__ = [
    "SEGMENTATIONS",
    "SURROGATES",
    "KernelShap",
    "Lime",
    "SuperpixelImage",
    "SurrogateAttributor",
    "fit_surrogate",
    "kernel_shap_samples",
    "kernel_shap_weights",
    "lime_samples",
    "lime_weights",
    "segment_image",
    "superpixels",
]


@hookimpl
def register_attributors(register):
    register(Lime)
    register(KernelShap)
