"""Image operations techniques and metrics share: the one Gaussian blur (:func:`gaussian_blur`) and
the one vocabulary of baselines (:data:`BASELINES`, :func:`baseline_inputs`), what a removed,
occluded or masked-out region is filled with and where an integrated-gradients path starts.

Each technique offers the subset of :data:`BASELINES` that makes sense for it, as the ``choices`` of
its ``baseline`` parameter, and builds the tensor here: ``zeros`` means the same thing to occlusion,
RISE, integrated gradients and the deletion metric.

Everything works on normalized batches ``[N, C, H, W]``; normalization is a per-channel affine
map, so blurring normalized inputs equals normalizing blurred pixels. What does not live here:
masks and windows of single techniques (RISE's grids, occlusion's windows stay with them).
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "BASELINES",
    "RENAMED_BASELINES",
    "Normalizer",
    "baseline_inputs",
    "check_baseline",
    "gaussian_blur",
]


class Normalizer(Protocol):
    """Anything with the model's normalization (a :class:`~xai_core.ModelHandle` or its
    :class:`~xai_core.Preprocessing`)."""

    def normalize(self, pixels: Tensor) -> Tensor: ...


#: Every baseline a technique may offer:
#:
#: * ``zeros``: zeros in normalized space, i.e. the dataset's mean colour;
#: * ``black``: black pixels (0 before normalization);
#: * ``blur``: the image under :func:`gaussian_blur` of ``blur_sigma`` pixels;
#: * ``mean``: each image's own per-channel mean colour;
#: * ``uniform``: one image of uniform noise pixels drawn from ``seed``, the same for every item.
BASELINES = ("zeros", "black", "blur", "mean", "uniform")

#: Names that earlier versions used, and what they are called now.
RENAMED_BASELINES = {"zero": "zeros"}


def check_baseline(value: str, key: str = "baseline") -> None:
    """Raise ``ValueError`` naming the current name when ``value`` is a renamed baseline.

    Meant for a ``Params.__post_init__``: the config layer turns it into a ``ConfigError``.
    """
    if value in RENAMED_BASELINES:
        raise ValueError(f"{key}: {value!r} is now called {RENAMED_BASELINES[value]!r}")


def baseline_inputs(
    kind: str,
    inputs: Tensor,
    normalizer: Normalizer,
    *,
    blur_sigma: float = 10.0,
    blur_radius: int | None = None,
    seed: int = 0,
) -> Tensor:
    """The baseline ``kind`` for a normalized batch ``[N, 3, H, W]``, broadcastable to it
    (``zeros``, ``black`` and ``mean`` are ``[N, 3, 1, 1]``; use ``expand_as`` for a full batch).

    :param kind: one of :data:`BASELINES`.
    :param normalizer: gives the normalization, so that ``black`` and ``uniform`` are what they
        say in pixel space.
    :param blur_sigma: standard deviation in pixels of the ``blur`` baseline.
    :param blur_radius: kernel radius of the ``blur`` baseline (see :func:`gaussian_blur`).
    :param seed: seed of the ``uniform`` noise image, drawn on the CPU so that it depends on the
        seed only (not on the batch or the device).
    """
    if kind == "zeros":
        return torch.zeros_like(inputs[:, :, :1, :1])
    if kind == "black":
        return normalizer.normalize(torch.zeros_like(inputs[:, :, :1, :1]))
    if kind == "mean":
        return inputs.mean(dim=(2, 3), keepdim=True)
    if kind == "blur":
        return gaussian_blur(inputs, blur_sigma, blur_radius)
    if kind == "uniform":
        pixels = torch.rand(inputs.shape[1:], generator=torch.Generator().manual_seed(seed))
        return normalizer.normalize(pixels.to(inputs)).expand_as(inputs)
    check_baseline(kind)
    raise ValueError(f"unknown baseline {kind!r}; use one of {', '.join(BASELINES)}")


def gaussian_blur(images: Tensor, sigma: float, radius: int | None = None) -> Tensor:
    """Separable Gaussian blur of ``[N, C, H, W]`` with reflect padding.

    :param sigma: standard deviation in pixels.
    :param radius: taps each side of the centre; by default ``ceil(3 sigma)``, which keeps all
        but 0.3% of the Gaussian's weight. The deletion metric passes the paper's 11-tap kernel
        (radius 5). The radius is capped at ``size - 1``, what reflect padding can mirror.

    Reflect padding (``d c b | a b c d``; scipy's ``mirror``, torchvision's ``gaussian_blur``)
    keeps the border's texture statistics. Edge replication, the other common choice, smears the
    outermost row over the whole radius (30 pixels at ``sigma`` 10), so a blurred border is a
    constant band that no blur of a real photo looks like; zero padding darkens the border.
    """
    radius = max(1, math.ceil(3 * sigma)) if radius is None else radius
    radius = max(0, min(radius, images.shape[-2] - 1, images.shape[-1] - 1))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    padded = F.pad(images, (radius, radius, radius, radius), mode="reflect") if radius else images
    rows = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    cols = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    return F.conv2d(F.conv2d(padded, rows, groups=channels), cols, groups=channels)
