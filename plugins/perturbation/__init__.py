"""Perturbation attributions (plugin ``perturbation``): occlusion and RISE. Forward passes only,
no gradients.

* :mod:`.occlusion`: sliding-window occlusion, Captum's windows and averaging;
* :mod:`.incremental` and :mod:`.reach`: occlusion's reuse of the unoccluded image's early
  activations, one object with an explicit undo that says why it fell back to full passes;
* :mod:`.rise`: RISE's random soft masks.

Both build on :class:`xai_core.PerturbationAttributor`, which gives them the shared parameters,
the distinct inputs (several targets of one input share the perturbed passes), batch-norm folding
for the call (the same function to float rounding, about a third fewer seconds per pass on
EfficientNet-Lite0) and the baselines of :mod:`xai_core.nn.images`.

What does not live here: gradient methods (``saliency``, ``gradients``) and CAM methods (``cam``).
"""

from __future__ import annotations

from xai_core import hookimpl

from .occlusion import Occlusion, occlusion_corners
from .reach import LocalLayer, local_layers
from .rise import Rise, rise_grids, rise_masks

__all__ = [
    "LocalLayer",
    "Occlusion",
    "Rise",
    "local_layers",
    "occlusion_corners",
    "rise_grids",
    "rise_masks",
]


@hookimpl
def register_attributors(register):
    register(Occlusion)
    register(Rise)
