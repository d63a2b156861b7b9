"""Eigen-CAM (Muhammad, Yeasin 2020, arXiv:2008.00299): the projection of the target layer's
centred activations on their first principal component. Class-agnostic and gradient-free.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from xai_core import AttributionContext, LayerCam
from xai_core.families.batches import distinct_inputs
from xai_core.families.cam import CamParams

__all__ = ["EigenCam"]


class EigenCam(LayerCam):
    """Eigen-CAM: the first principal component of the layer's activations (class-agnostic)."""

    name = "eigen_cam"
    summary = "projection of the layer activations on their first principal component"
    paper = "Muhammad, Yeasin 2020, arXiv:2008.00299"
    uses_gradients = False

    @dataclass
    class Params(CamParams):
        #: The SVD's sign is arbitrary; flip each map so that its largest magnitude is positive
        #: (Seg-Eigen-CAM, eq. 13). ``false`` keeps the sign the SVD returns.
        sign_correction: bool = True

    def layer_maps(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        k = distinct_inputs(inputs, targets, context)[1].shape[1]
        capture = self.capture(model, inputs, targets, context)
        a = capture.activations[::k].double()
        n, c, h, w = a.shape
        positions = torch.nan_to_num(a).reshape(n, c, h * w).transpose(1, 2)
        positions = positions - positions.mean(dim=1, keepdim=True)
        _, _, vh = torch.linalg.svd(positions, full_matrices=False)
        maps = (positions @ vh[:, 0, :, None]).reshape(n, h, w)
        if self.params.sign_correction:
            flat = maps.flatten(1)
            flip = flat.min(dim=1).values.abs() > flat.max(dim=1).values.abs()
            maps = torch.where(flip[:, None, None], -maps, maps)
        return maps.float().repeat_interleave(k, dim=0)
