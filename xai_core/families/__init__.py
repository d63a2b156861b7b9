"""Family bases: what a method of one family shares with its siblings, public for plugins.

* :class:`GradientAttributor` (:mod:`~xai_core.families.gradient`): per-channel input
  attributions, then ``abs`` and a channel ``reduction``; a new method is
  ``input_attributions``.
* :class:`LayerCam` and :class:`GradientCam` (:mod:`~xai_core.families.cam`): a target layer's
  activations and gradients, ReLU, normalisation and upsampling; a new gradient CAM is
  ``cam_weights``.
* :class:`PerturbationAttributor` (:mod:`~xai_core.families.perturbation`): forward passes on
  perturbed copies, shared parameters, batch-norm folding; a new method is
  ``attribute_distinct``.
* :func:`distinct_inputs` (:mod:`~xai_core.families.batches`): the distinct inputs of a batch
  with several targets per input.

The bases build on the contract (:mod:`xai_core.contracts`) and the torch blocks
(:mod:`xai_core.nn`); the built-in methods on them live in plugins (``xai_core_plugins``).
"""

from __future__ import annotations

from xai_core.families.batches import distinct_inputs
from xai_core.families.cam import GradientCam, LayerCam, LayerCapture, capture_layer
from xai_core.families.gradient import GradientAttributor
from xai_core.families.perturbation import PerturbationAttributor

__all__ = [
    "GradientAttributor",
    "GradientCam",
    "LayerCam",
    "LayerCapture",
    "PerturbationAttributor",
    "capture_layer",
    "distinct_inputs",
]
