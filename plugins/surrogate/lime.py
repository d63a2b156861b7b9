"""LIME on superpixels (Ribeiro, Singh, Guestrin 2016, "Why Should I Trust You?", KDD,
arXiv:1602.04938, section 3): a sparse linear model fitted to the class score of images with
random superpixels hidden, each sample weighted by its similarity to the image.

The defaults are those of Captum's ``Lime``: superpixels kept independently with probability 1/2,
the exponential kernel ``exp(-d^2 / (2 kernel_width^2))`` on the cosine distance ``d`` between
the image and the perturbed image (the model's inputs), and a lasso with ``alpha = 0.01``
(Captum's ``SkLearnLasso``; here solved in torch, :func:`.fit.lasso`). ``similarity_space:
interpretable`` with ``kernel_width: 0.25`` is the ``lime`` package's image explainer instead:
the same kernel on the cosine distance between the binary sample and the all-ones vector.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from xai_core.errors import InputError

from .base import SuperpixelImage, SurrogateAttributor
from .fit import SURROGATES, fit_surrogate

__all__ = ["SIMILARITY_SPACES", "Lime", "lime_samples", "lime_weights"]

#: Where LIME measures the distance of a sample to the image: between the model ``input``s
#: (Captum's default) or between the ``interpretable`` binary vectors (the ``lime`` package's).
SIMILARITY_SPACES = ("input", "interpretable")


def lime_samples(count: int, features: int, generator: torch.Generator) -> Tensor:
    """``count`` samples ``[count, features]``: each superpixel kept with probability 1/2,
    independently (Captum's ``default_perturb_func``)."""
    return (torch.rand(count, features, generator=generator) < 0.5).float()


def lime_weights(part: SuperpixelImage, kernel_width: float, space: str = "input") -> Tensor:
    """The exponential kernel ``exp(-d^2 / (2 kernel_width^2))`` of each sample ``[n]``, with
    ``d`` one minus the cosine similarity of the image and the sample in ``space``.

    In the input space the similarity needs no perturbed image: the superpixels are disjoint, so
    the dot product and the squared norm of a perturbed image are sums over superpixels of the
    image's (``x.x``, kept) or the fill's (``x.b``, ``b.b``, hidden) per-superpixel sums.
    """
    z = part.samples.double()
    if space == "interpretable":
        kept = z.sum(1)
        # cos(z, 1) = |z| / (sqrt(|z|) sqrt(M)); 0 for the empty sample, as torch's cosine.
        cosine = (kept / part.features).sqrt()
    elif space == "input":
        image = part.image.double()
        fill = part.fill.double().expand_as(image)
        labels = part.labels.flatten()

        def per_superpixel(values: Tensor) -> Tensor:
            sums = torch.zeros(part.features, dtype=values.dtype, device=values.device)
            return sums.index_add_(0, labels, values.sum(0).flatten())

        image_image = per_superpixel(image * image)
        image_fill = per_superpixel(image * fill)
        fill_fill = per_superpixel(fill * fill)
        dot = z @ image_image + (1 - z) @ image_fill
        squared_norm = z @ image_image + (1 - z) @ fill_fill
        # torch's CosineSimilarity: x.y / sqrt(max(|x|^2 |y|^2, eps^2)), eps = 1e-8.
        cosine = dot / (image_image.sum() * squared_norm).clamp_min(1e-16).sqrt()
    else:
        raise ValueError(f"unknown similarity space {space!r}; use one of {SIMILARITY_SPACES}")
    distance = 1 - cosine
    return torch.exp(-(distance**2) / (2 * kernel_width**2))


class Lime(SurrogateAttributor):
    """LIME: a weighted sparse linear model of the class score over superpixels."""

    name = "lime"
    summary = "weighted lasso of the class score on randomly hidden superpixels (black-box)"
    paper = "Ribeiro, Singh, Guestrin 2016, arXiv:1602.04938"

    @dataclass
    class Params(SurrogateAttributor.Params):
        #: The interpretable model fitted to the weighted samples (see :mod:`.fit`): ``lasso``
        #: (Captum's default), ``ridge`` or ``linear`` (least squares).
        surrogate: str = field(default="lasso", metadata={"choices": SURROGATES})
        #: Penalty of ``lasso`` (on ``|b|_1``, scikit-learn's scaling) and ``ridge`` (on
        #: ``|b|_2^2``); unused by ``linear``.
        alpha: float = field(default=0.01, metadata={"min": 0})
        #: Width of the exponential similarity kernel (Captum's default is 1 with ``input``,
        #: the ``lime`` package's 0.25 with ``interpretable``).
        kernel_width: float = field(default=1.0, metadata={"min_exclusive": 0})
        #: Where the distance of a sample to the image is measured: the model's ``input``
        #: (Captum) or the ``interpretable`` binary vectors (the ``lime`` package).
        similarity_space: str = field(default="input", metadata={"choices": SIMILARITY_SPACES})

    def samples(self, count: int, features: int, generator: torch.Generator) -> Tensor:
        return lime_samples(count, features, generator)

    def sample_weights(self, part: SuperpixelImage) -> Tensor:
        p = self.params
        weights = lime_weights(part, p.kernel_width, p.similarity_space)
        if not weights.gt(0).any():
            raise InputError(
                f"lime: every sample's similarity underflows to 0 with kernel_width "
                f"{p.kernel_width}; use a larger kernel_width"
            )
        return weights

    def fit(self, samples: Tensor, scores: Tensor, weights: Tensor) -> Tensor:
        return fit_surrogate(samples, scores, weights, self.params.surrogate, self.params.alpha)
