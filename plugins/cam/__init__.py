"""Class activation maps (plugin ``cam``): Grad-CAM, guided Grad-CAM and the CAM family, on CNNs
and transformers.

Every method here weighs the activations ``A`` of one target layer (seen as a ``[C, h, w]`` grid,
see :mod:`xai_core.nn.layers`) into a ``[h, w]`` map, optionally applies a ReLU and a min-max
normalisation, and upsamples the map to the input size:

* **Grad-CAM** (Selvaraju et al. 2017): channel weights are the spatial mean of the gradient
  ``G`` of the class score at the layer; map ``sum_c w_c A_c``.
* **Grad-CAM++** (Chattopadhay et al. 2018): weights ``sum_ij relu(G) a_ij`` with the closed-form
  ``a_ij = G^2 / (2 G^2 + sum_ij(A) G^3)`` of the paper's exponential-score derivation.
* **XGradCAM** (Fu et al. 2020): weights ``sum_ij(G A) / sum_ij(A)``.
* **HiResCAM** (Draelos, Carin 2020): no pooling of the gradient, map ``sum_c G_c * A_c``.
* **LayerCAM** (Jiang et al. 2021): map ``sum_c relu(G_c) * A_c``.
* **Score-CAM** (Wang et al. 2020): weights from the class score of the input masked by each
  upsampled, normalised activation channel (no gradients), softmax over channels.
* **Eigen-CAM** (Muhammad, Yeasin 2020): the projection of the centred activations on their first
  principal component (class-agnostic).
* **Guided Grad-CAM**: guided backpropagation times the upsampled Grad-CAM map.

With ``normalize: minmax`` the map is scaled to ``[0, 1]`` at layer resolution and again after
upsampling (interpolation does not reach the extremes exactly); with ``upsample: bilinear`` this is
pytorch-grad-cam's ``scale_cam_image`` pipeline. Captum's ``LayerGradCam`` is ``normalize: none``.

Gradients are taken with respect to the layer's output only: the layer's output is replaced by a
detached copy that requires gradients, so the backward pass stops at the layer instead of running
through the whole network (and never touches parameter gradients). Several targets of one image
share one forward pass; each target then costs one backward pass through the layers above the
target layer.


The bases (layer choice, capture, post-processing; :class:`xai_core.GradientCam` on which a
gradient CAM is one ``cam_weights`` method) live in :mod:`xai_core.families.cam`. Modules:
:mod:`.gradient_cams` (Grad-CAM, Grad-CAM++, XGradCAM, HiResCAM, LayerCAM, guided Grad-CAM),
:mod:`.score_cam`, :mod:`.eigen_cam`.
"""

from __future__ import annotations

from xai_core import hookimpl

from .eigen_cam import EigenCam
from .gradient_cams import (
    GradCam,
    GradCamPlusPlus,
    GuidedGradCam,
    HiResCam,
    LayerCamMethod,
    XGradCam,
)
from .score_cam import ScoreCam

__all__ = [
    "CAM_METHODS",
    "EigenCam",
    "GradCam",
    "GradCamPlusPlus",
    "GuidedGradCam",
    "HiResCam",
    "LayerCamMethod",
    "ScoreCam",
    "XGradCam",
]

CAM_METHODS = (
    GradCam,
    GradCamPlusPlus,
    XGradCam,
    HiResCam,
    LayerCamMethod,
    ScoreCam,
    EigenCam,
    GuidedGradCam,
)


@hookimpl
def register_attributors(register):
    for method in CAM_METHODS:
        register(method)
