"""Occlusion (Zeiler and Fergus 2013, "Visualizing and Understanding Convolutional Networks",
arXiv:1311.2901, section 4.2): a window slides over the image and is filled with a baseline; a
pixel's value is the drop of the class score, averaged over the windows that cover it.

The window positions, the cut-off last window and the averaging are those of Captum's
``Occlusion``, so the two agree to float precision. By default (``incremental``) the occluded
images' passes reuse the unoccluded image's early activations (:mod:`.incremental`): the same
numbers in a fraction of the time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from xai_core import AttributionContext, PerturbationAttributor
from xai_core.errors import InputError

from .incremental import IncrementalOcclusion

__all__ = ["Occlusion", "occlusion_corners"]


def occlusion_corners(size: int, window: int, stride: int) -> list[int]:
    """Start offsets of the windows along one image dimension of length ``size``.

    The first window starts at 0 and strides go on until the dimension is covered, so the last
    window may stick out of the image and is then cut off (as in Captum's ``Occlusion``).
    """
    return [i * stride for i in range(math.ceil((size - window) / stride) + 1)]


class Occlusion(PerturbationAttributor):
    """Sliding-window occlusion: the drop of the class score when a window is hidden."""

    name = "occlusion"
    summary = "drop of the class score when a sliding window is filled with a baseline"
    paper = "Zeiler, Fergus 2013, arXiv:1311.2901"

    @dataclass
    class Params(PerturbationAttributor.Params):
        #: Side of the square window in pixels.
        window: int = field(default=32, metadata={"min": 1})
        #: Step between windows in pixels (at most ``window``, so every pixel is covered).
        stride: int = field(default=16, metadata={"min": 1})
        #: Reuse the unoccluded image's activations up to an early layer (and a second, deeper
        #: one where that works) and recompute only the crop each window can change; checked
        #: against full passes on three windows, full passes wherever the check fails (the
        #: metadata's ``incremental_fallback`` says why).
        incremental: bool = True

        #: Values that break each rule of :meth:`check` (for the registry-wide rule test).
        violations: ClassVar[tuple[dict[str, Any], ...]] = ({"stride": 40, "window": 32},)

        def check(self) -> Iterator[tuple[str, str]]:
            if self.stride > self.window:
                yield "stride", (
                    f"{self.stride} is larger than window {self.window}, which would leave "
                    "pixels that no window covers; use a stride of at most the window"
                )

    def check_input(self, inputs: Tensor) -> None:
        height, width = inputs.shape[2:]
        if self.params.window > min(height, width):
            raise InputError(
                f"occlusion window {self.params.window} is larger than the image "
                f"({height}x{width}); use a window of at most the image size"
            )

    def attribute_distinct(
        self, model: nn.Module, images: Tensor, image_targets: Tensor, context: AttributionContext
    ) -> Tensor:
        p = self.params
        height, width = images.shape[2:]
        count, k = image_targets.shape
        baseline = self.baseline(images, context).expand_as(images)
        corners = [
            (top, left)
            for top in occlusion_corners(height, p.window, p.stride)
            for left in occlusion_corners(width, p.window, p.stride)
        ]
        jobs = [(i, top, left) for i in range(count) for top, left in corners]
        w = p.window
        coverage = torch.zeros(height, width, device=images.device)
        for top, left in corners:
            coverage[top : top + w, left : left + w] += 1
        total = torch.zeros(count, k, height, width, device=images.device)
        reuse = IncrementalOcclusion(model, w, self.class_outputs, p.incremental)
        with self.scoring_pass(len(jobs)) as bar:
            outputs = reuse.clean_outputs(images)
            original = outputs.gather(1, image_targets)
            # Reuse must give the full passes' outputs on three windows: the first, the middle
            # and the last (top-left and bottom-right corners).
            probe = [jobs[0], jobs[len(jobs) // 2], jobs[-1]]
            scale = max(1.0, float(outputs.abs().max()))
            reuse.choose(self._occluded(images, baseline, probe), probe, scale)
            with reuse:
                for start in range(0, len(jobs), p.batch_size):
                    chunk = jobs[start : start + p.batch_size]
                    owner = torch.tensor([i for i, _, _ in chunk], device=images.device)
                    outputs = reuse.outputs(self._occluded(images, baseline, chunk), chunk)
                    drop = original[owner] - outputs.gather(1, image_targets[owner])
                    for row, (i, top, left) in enumerate(chunk):
                        total[i, :, top : top + w, left : left + w] += drop[row, :, None, None]
                    bar.update(len(chunk))
            maps = total / coverage
        context.metadata["windows"] = len(corners)
        context.metadata["forward_images"] = len(jobs) + count
        context.metadata.update(reuse.metadata())
        return maps.reshape(count * k, height, width).clone()

    def _occluded(self, images: Tensor, baseline: Tensor, jobs: list) -> Tensor:
        """The images of ``jobs`` (``(image, top, left)``) with their window filled."""
        w = self.params.window
        # Copy each image once and overwrite only its window: far cheaper than blending whole
        # images with full-size masks.
        batch = images[torch.tensor([i for i, _, _ in jobs], device=images.device)]
        for row, (i, top, left) in enumerate(jobs):
            batch[row, :, top : top + w, left : left + w] = baseline[
                i, :, top : top + w, left : left + w
            ]
        return batch
