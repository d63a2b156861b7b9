"""Image operations techniques and metrics share: the one Gaussian blur and the one vocabulary of
baselines (what a removed region is filled with).

Everything works on normalized batches ``[N, C, H, W]``; normalization is a per-channel affine
map, so blurring normalized inputs equals normalizing blurred pixels.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor


class Normalizer(Protocol):
    """Anything with the model's normalization (a :class:`~xai_core.ModelHandle` or its
    :class:`~xai_core.Preprocessing`)."""

    def normalize(self, pixels: Tensor) -> Tensor: ...

#: What an occluded region (occlusion) or a masked-out region (RISE) is filled with:
#: ``zeros`` in normalized space (the dataset mean colour), ``black`` pixels, a Gaussian ``blur``
#: of the image, or the image's own per-channel ``mean``.
BASELINES = ("zeros", "black", "blur", "mean")


def baseline_inputs(kind: str, inputs: Tensor, handle: Normalizer, blur_sigma: float) -> Tensor:
    """The baseline for a normalized batch ``[N, 3, H, W]``, broadcastable to it.

    :param kind: one of :data:`BASELINES`.
    :param handle: gives the normalization, so that ``black`` is black in pixel space.
    :param blur_sigma: standard deviation in pixels of the ``blur`` baseline.
    """
    if kind == "zeros":
        return torch.zeros_like(inputs[:, :, :1, :1])
    if kind == "black":
        return handle.normalize(torch.zeros_like(inputs[:, :, :1, :1]))
    if kind == "mean":
        return inputs.mean(dim=(2, 3), keepdim=True)
    if kind == "blur":
        return gaussian_blur(inputs, blur_sigma)
    raise ValueError(f"unknown baseline {kind!r}; use one of {', '.join(BASELINES)}")


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of ``[N, C, H, W]`` with edge replication (3 sigma radius).

    Normalization is per-channel affine, so blurring normalized inputs equals normalizing blurred
    pixels.
    """
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    padded = F.pad(images, (radius, radius, radius, radius), mode="replicate")
    rows = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    cols = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    return F.conv2d(F.conv2d(padded, rows, groups=channels), cols, groups=channels)
