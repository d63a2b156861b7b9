"""Superpixels: the interpretable features of ``lime`` and ``kernel_shap``.

One function, :func:`superpixels`, segments one image in pixel space with scikit-image's SLIC
(Achanta et al. 2012) or quickshift (Vedaldi, Soatto 2008, the segmentation of the ``lime``
package's image explainer) and returns the feature mask ``[H, W]`` with labels ``0 .. K-1``: the
``feature_mask`` Captum's ``Lime`` and ``KernelShap`` take. What does not live here: sampling,
weighting and the fit (:mod:`.base`, :mod:`.fit`).
"""

from __future__ import annotations

import inspect

import torch
from torch import Tensor

__all__ = ["SEGMENTATIONS", "superpixels"]

#: The scikit-image segmentations a surrogate method can use.
SEGMENTATIONS = ("slic", "quickshift")


def superpixels(
    pixels: Tensor,
    segmentation: str = "slic",
    *,
    n_segments: int = 50,
    compactness: float = 10.0,
    sigma: float = 1.0,
    kernel_size: float = 4.0,
    max_dist: float = 200.0,
    ratio: float = 0.2,
    seed: int = 0,
) -> Tensor:
    """The superpixel labels ``[H, W]`` (long, ``0 .. K-1``, on the CPU) of one image.

    :param pixels: the image ``[C, H, W]`` in pixel space; values are clipped to ``[0, 1]``
        (the model's normalization must already be undone).
    :param segmentation: ``slic`` or ``quickshift``.
    :param n_segments: SLIC's approximate number of superpixels (it may return fewer or more).
    :param compactness: SLIC's balance of colour and space proximity (higher: squarer segments).
    :param sigma: standard deviation of the Gaussian smoothing before segmenting (both methods).
    :param kernel_size: quickshift's width of the Gaussian density kernel.
    :param max_dist: quickshift's cut-off distance between a pixel and its parent (larger:
        fewer, larger segments).
    :param ratio: quickshift's balance of colour and space proximity, in ``[0, 1]``.
    :param seed: quickshift's seed of the noise that breaks ties between equal densities.

    Labels are made consecutive, so ``K`` is the number of superpixels actually found.
    """
    # scikit-image takes ~0.5 s to import: importing the plugin does not pay for it.
    from skimage.segmentation import quickshift, slic

    image = pixels.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().double().numpy()
    if segmentation == "slic":
        labels = slic(
            image,
            n_segments=n_segments,
            compactness=compactness,
            sigma=sigma,
            start_label=0,
            channel_axis=-1,
        )
    elif segmentation == "quickshift":
        # scikit-image 0.22 renamed quickshift's ``random_seed`` to ``rng``.
        seed_name = "rng" if "rng" in inspect.signature(quickshift).parameters else "random_seed"
        labels = quickshift(
            image,
            ratio=ratio,
            kernel_size=kernel_size,
            max_dist=max_dist,
            sigma=sigma,
            channel_axis=-1,
            # Quickshift's colour distance is in CIELAB, which only an RGB image converts to.
            convert2lab=image.shape[-1] == 3,
            **{seed_name: seed},
        )
    else:
        raise ValueError(f"unknown segmentation {segmentation!r}; use one of {SEGMENTATIONS}")
    _, consecutive = torch.unique(torch.from_numpy(labels).long(), return_inverse=True)
    return consecutive.view(labels.shape)
