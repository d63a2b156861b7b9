"""What ``lime`` and ``kernel_shap`` share: :class:`SurrogateAttributor`, the loop from an image to
its map.

For each distinct image (every target of an image shares all of this):

1. one segmentation into superpixels in pixel space (:func:`.segmentation.superpixels`, the
   model's normalization undone through the handle's preprocessing);
2. ``n_samples`` binary vectors over the superpixels from the method's sampler (1 keeps a
   superpixel, 0 fills it with the ``baseline``), drawn from ``seed`` for each image alone, so an
   image gets the same samples alone or in a batch;
3. the scores of all targets on the perturbed images, the images of a batch sharing forward
   passes of ``batch_size`` perturbed images;
4. the method's sample weights and its weighted linear fit (:mod:`.fit`), all targets at once;
5. the map: each pixel gets its superpixel's coefficient (signed).

A subclass supplies the sampler (:meth:`~SurrogateAttributor.samples`), the weights
(:meth:`~SurrogateAttributor.sample_weights`) and the fit (:meth:`~SurrogateAttributor.fit`).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from xai_core import AttributionContext, PerturbationAttributor
from xai_core.errors import InputError

from .segmentation import SEGMENTATIONS, superpixels

__all__ = ["SuperpixelImage", "SurrogateAttributor", "segment_image"]


@dataclass
class SuperpixelImage:
    """One image's part of a call: its superpixels and what the weights need."""

    #: Normalized image ``[C, H, W]``.
    image: Tensor
    #: Its fill, broadcastable to ``image``.
    fill: Tensor
    #: Superpixel labels ``[H, W]`` (long, ``0 .. features-1``, on the image's device).
    labels: Tensor
    #: Number of superpixels.
    features: int
    #: Binary samples ``[n_samples, features]`` (float, on the image's device).
    samples: Tensor


def segment_image(pixels: Tensor, params: SurrogateAttributor.Params) -> Tensor:
    """The superpixels ``[H, W]`` of one image ``[C, H, W]`` in pixel space under ``params``
    (the feature mask the method uses, and the one to give Captum to compare)."""
    return superpixels(
        pixels,
        params.segmentation,
        n_segments=params.n_segments,
        compactness=params.compactness,
        sigma=params.sigma,
        kernel_size=params.kernel_size,
        max_dist=params.max_dist,
        ratio=params.ratio,
        seed=params.seed,
    )


class SurrogateAttributor(PerturbationAttributor):
    """Base of the superpixel surrogate methods: see the module documentation."""

    @dataclass
    class Params(PerturbationAttributor.Params):
        #: The scikit-image segmentation into superpixels, computed on the image in pixel space.
        segmentation: str = field(default="slic", metadata={"choices": SEGMENTATIONS})
        #: SLIC: the approximate number of superpixels (SLIC may find fewer or more).
        n_segments: int = field(default=50, metadata={"min": 2})
        #: SLIC: colour against space proximity; higher gives squarer superpixels.
        compactness: float = field(default=10.0, metadata={"min_exclusive": 0})
        #: Standard deviation in pixels of the Gaussian smoothing before segmenting (0: none).
        sigma: float = field(default=1.0, metadata={"min": 0})
        #: Quickshift: width of the Gaussian density kernel (the ``lime`` package uses 4).
        kernel_size: float = field(default=4.0, metadata={"min_exclusive": 0})
        #: Quickshift: cut-off distance between a pixel and its parent; larger gives fewer,
        #: larger superpixels (the ``lime`` package uses 200).
        max_dist: float = field(default=200.0, metadata={"min_exclusive": 0})
        #: Quickshift: colour against space proximity (the ``lime`` package uses 0.2).
        ratio: float = field(default=0.2, metadata={"min": 0, "max": 1})
        #: Perturbed images whose scores the surrogate is fitted to, per image.
        n_samples: int = field(default=500, metadata={"min": 2})
        #: Seed of the samples (and of quickshift's tie-breaking); the same seed gives the same
        #: maps bit for bit.
        seed: int = 0

    def attribute_distinct(
        self, model: nn.Module, images: Tensor, image_targets: Tensor, context: AttributionContext
    ) -> Tensor:
        p = self.params
        count, k = image_targets.shape
        height, width = images.shape[2:]
        fills = self.baseline(images, context)
        pixels = context.handle.denormalize(images)
        parts = []
        for i in range(count):
            labels = segment_image(pixels[i], p).to(images.device)
            features = int(labels.max()) + 1
            if features < 2:
                raise InputError(
                    f"{self.name}: the {p.segmentation} segmentation of image {i} found a single "
                    "superpixel, which leaves nothing to compare; use more segments "
                    "(n_segments for slic, a smaller max_dist for quickshift)"
                )
            generator = torch.Generator().manual_seed(p.seed)
            samples = self.samples(p.n_samples, features, generator).to(images.device)
            parts.append(SuperpixelImage(images[i], fills[i], labels, features, samples))

        scores = self._scores(model, parts, image_targets)
        maps = []
        for part, part_scores in zip(parts, scores):
            weights = self.sample_weights(part)
            coef = self.fit(part.samples, part_scores, weights)  # [features, k]
            maps.append(coef.float().T[:, part.labels])  # [k, H, W]
        context.metadata["superpixels"] = [part.features for part in parts]
        context.metadata["forward_images"] = p.n_samples * count
        return torch.cat(maps).view(count * k, height, width)

    def _scores(
        self, model: nn.Module, parts: list[SuperpixelImage], image_targets: Tensor
    ) -> list[Tensor]:
        """Scores ``[n_samples, k]`` of each image's perturbed copies; the images of the call
        share each forward pass."""
        p = self.params
        count = len(parts)
        per_batch = max(1, p.batch_size // count)
        outputs: list[list[Tensor]] = [[] for _ in parts]
        with self.scoring_pass(p.n_samples * count) as bar:
            for start in range(0, p.n_samples, per_batch):
                chosen = slice(start, start + per_batch)
                batch = torch.cat([self.perturbed(part, part.samples[chosen]) for part in parts])
                rows = len(batch) // count
                targets = image_targets.repeat_interleave(rows, dim=0)
                scores = self.perturbed_scores(model, batch, targets)
                for i, part_scores in enumerate(scores.split(rows)):
                    outputs[i].append(part_scores)
                bar.update(len(batch))
        return [torch.cat(chunks) for chunks in outputs]

    @staticmethod
    def perturbed(part: SuperpixelImage, samples: Tensor) -> Tensor:
        """The images ``[B, C, H, W]`` of ``samples`` ``[B, features]``: kept superpixels from
        the image, the others from its fill."""
        keep = samples.bool()[:, part.labels][:, None]  # [B, 1, H, W]
        return torch.where(keep, part.image, part.fill)

    @abc.abstractmethod
    def samples(self, count: int, features: int, generator: torch.Generator) -> Tensor:
        """``count`` binary samples ``[count, features]`` (float, CPU) drawn from
        ``generator``."""

    @abc.abstractmethod
    def sample_weights(self, part: SuperpixelImage) -> Tensor:
        """The weights ``[n_samples]`` of ``part``'s samples in the fit."""

    @abc.abstractmethod
    def fit(self, samples: Tensor, scores: Tensor, weights: Tensor) -> Tensor:
        """The surrogate's coefficients ``[features, k]``."""
