"""Perturbation attributions: occlusion and RISE. Forward passes only, no gradients.

- **Occlusion** (Zeiler and Fergus 2013, "Visualizing and Understanding Convolutional Networks",
  arXiv:1311.2901, section 4.2): a window slides over the image and is filled with a baseline; a
  pixel's value is the drop of the class score, averaged over the windows that cover it. The window
  positions, the cut-off last window and the averaging are those of Captum's ``Occlusion``, so the
  two agree to float precision.
- **RISE** (Petsiuk, Das, Saenko 2018, "RISE: Randomized Input Sampling for Explanation of
  Black-box Models", BMVC, arXiv:1806.07421, section 3): random low-resolution binary grids,
  bilinearly upsampled and randomly shifted into soft masks; the map is the score-weighted sum of
  the masks divided by ``n_masks * keep`` (the expected keep probability).

Both work on the distinct inputs only: with several targets per input the base class repeats each
input, and these methods explain all of its targets from the same perturbed forward passes. The
perturbed inputs of all images are batched together up to ``batch_size`` items per forward pass.

What does not live here: gradient methods (``saliency``, ``gradients``) and CAM methods (``cam``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xai_core import Attributor, hookimpl
from xai_core.errors import ConfigError, InputError
from xai_core.models import ModelHandle
from xai_core.techniques import AttributionContext

__all__ = [
    "BASELINES",
    "SCORES",
    "Occlusion",
    "Rise",
    "baseline_inputs",
    "occlusion_corners",
    "rise_grids",
    "rise_masks",
]

#: What an occluded region (occlusion) or a masked-out region (RISE) is filled with:
#: ``zeros`` in normalized space (the dataset mean colour), ``black`` pixels, a Gaussian ``blur``
#: of the image, or the image's own per-channel ``mean``.
BASELINES = ("zeros", "black", "blur", "mean")

#: Which number a perturbation changes: the target's ``logit`` or its softmax ``probability``.
SCORES = ("logit", "probability")


def baseline_inputs(kind: str, inputs: Tensor, handle: ModelHandle, blur_sigma: float) -> Tensor:
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


def occlusion_corners(size: int, window: int, stride: int) -> list[int]:
    """Start offsets of the windows along one image dimension of length ``size``.

    The first window starts at 0 and strides go on until the dimension is covered, so the last
    window may stick out of the image and is then cut off (as in Captum's ``Occlusion``).
    """
    return [i * stride for i in range(math.ceil((size - window) / stride) + 1)]


def rise_grids(
    count: int, grid: int, keep: float, size: tuple[int, int], generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """The random part of ``count`` RISE masks: binary grids and shifts.

    :return: ``grids`` ``[count, 1, grid, grid]`` (1 keeps a cell, with probability ``keep``)
        and ``shifts`` ``[count, 2]``, each mask's (row, column) crop offset within one cell.
    """
    cell_h, cell_w = (math.ceil(s / grid) for s in size)
    grids = (torch.rand(count, 1, grid, grid, generator=generator) < keep).float()
    shifts = torch.stack(
        [
            torch.randint(0, cell_h, (count,), generator=generator),
            torch.randint(0, cell_w, (count,), generator=generator),
        ],
        dim=1,
    )
    return grids, shifts


def rise_masks(grids: Tensor, shifts: Tensor, size: tuple[int, int]) -> Tensor:
    """Soft masks ``[count, H, W]`` from :func:`rise_grids`.

    Each grid is bilinearly upsampled to ``(grid + 1)`` cells of ``ceil(size / grid)`` pixels,
    one cell more than the image needs, and an ``H x W`` window is cropped at the mask's shift:
    the random shift is what keeps the cell borders from lining up across masks.
    """
    grid = grids.shape[-1]
    height, width = size
    cell_h, cell_w = math.ceil(height / grid), math.ceil(width / grid)
    up = F.interpolate(
        grids, size=((grid + 1) * cell_h, (grid + 1) * cell_w), mode="bilinear", align_corners=False
    )[:, 0]
    rows = shifts[:, :1] + torch.arange(height, device=shifts.device)  # [count, H]
    cols = shifts[:, 1:] + torch.arange(width, device=shifts.device)  # [count, W]
    index = torch.arange(len(up), device=shifts.device)[:, None, None]
    return up[index, rows[:, :, None], cols[:, None, :]]


def _progress(total: int, desc: str, enabled: bool) -> Any:
    """A ``tqdm`` bar over forward passes; it appears only after a second and only on a terminal."""
    from tqdm.auto import tqdm

    # ``disable=None`` lets tqdm switch itself off when stderr is not a terminal.
    disable = None if enabled else True
    return tqdm(total=total, desc=desc, unit="img", leave=False, delay=1.0, disable=disable)


def _distinct(
    inputs: Tensor, targets: Tensor, context: AttributionContext
) -> tuple[Tensor, Tensor]:
    """The distinct inputs ``[M, 3, H, W]`` and their targets ``[M, k]``.

    The base class repeats each input ``k`` times, input-major, for ``k`` targets per input.
    """
    k = context.targets_per_input
    return inputs[::k], targets.view(-1, k)


class _PerturbationAttributor(Attributor):
    """What occlusion and RISE share: the scoring forward pass and parameter checks."""

    def __init__(self, params: Any = None, **overrides: Any):
        super().__init__(params, **overrides)
        for key in self._positive:
            if getattr(self.params, key) < 1:
                raise ConfigError(
                    f"bad config value at '{self.name}.{key}': must be at least 1, "
                    f"got {getattr(self.params, key)}"
                )
        if self.params.blur_sigma <= 0:
            raise ConfigError(
                f"bad config value at '{self.name}.blur_sigma': must be positive, "
                f"got {self.params.blur_sigma}"
            )

    #: Integer parameters that must be at least 1.
    _positive: tuple[str, ...] = ("batch_size",)

    def _scores(self, model: nn.Module, batch: Tensor, targets: Tensor) -> Tensor:
        """Scores ``[B, k]`` of each row's ``k`` targets; call under ``torch.inference_mode``."""
        if self.params.channels_last:
            # oneDNN's NHWC convolutions are markedly faster on CPU; the weights stay as they are.
            batch = batch.contiguous(memory_format=torch.channels_last)
        logits = model(batch)
        if self.params.score == "probability":
            logits = logits.softmax(dim=1)
        return logits.float().gather(1, targets)


class Occlusion(_PerturbationAttributor):
    """Sliding-window occlusion: the drop of the class score when a window is hidden."""

    name = "occlusion"
    summary = "drop of the class score when a sliding window is filled with a baseline"
    paper = "Zeiler, Fergus 2013, arXiv:1311.2901"

    @dataclass
    class Params:
        #: Side of the square window in pixels.
        window: int = 32
        #: Step between windows in pixels (at most ``window``, so every pixel is covered).
        stride: int = 16
        #: What the window is filled with (see ``BASELINES``).
        baseline: str = field(default="zeros", metadata={"choices": BASELINES})
        #: Standard deviation in pixels of the ``blur`` baseline.
        blur_sigma: float = 10.0
        #: The score whose drop is measured.
        score: str = field(default="logit", metadata={"choices": SCORES})
        #: Perturbed images per forward pass (bounds memory; all inputs' windows share batches).
        batch_size: int = 16
        #: Run forward passes in NHWC memory layout (faster on CPU with oneDNN).
        channels_last: bool = True
        #: Show a progress bar on long runs (only on a terminal).
        progress: bool = True

    _positive = ("window", "stride", "batch_size")

    def __init__(self, params: Any = None, **overrides: Any):
        super().__init__(params, **overrides)
        if self.params.stride > self.params.window:
            raise ConfigError(
                f"bad config value at 'occlusion.stride': {self.params.stride} is larger than the "
                f"window ({self.params.window}), which would leave pixels that no window covers"
            )

    def compute(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        p = self.params
        height, width = inputs.shape[2:]
        if p.window > min(height, width):
            raise InputError(
                f"occlusion window {p.window} is larger than the image ({height}x{width}); "
                "use a window of at most the image size"
            )
        images, image_targets = _distinct(inputs, targets, context)
        count, k = image_targets.shape
        baseline = baseline_inputs(p.baseline, images, context.handle, p.blur_sigma)
        baseline = baseline.expand_as(images)
        corners = [
            (top, left)
            for top in occlusion_corners(height, p.window, p.stride)
            for left in occlusion_corners(width, p.window, p.stride)
        ]
        jobs = [(i, top, left) for i in range(count) for top, left in corners]
        w = p.window

        coverage = torch.zeros(height, width, device=inputs.device)
        for top, left in corners:
            coverage[top : top + w, left : left + w] += 1
        total = torch.zeros(count, k, height, width, device=inputs.device)
        with torch.inference_mode(), _progress(len(jobs), self.name, p.progress) as bar:
            original = self._scores(model, images, image_targets)
            for start in range(0, len(jobs), p.batch_size):
                chunk = jobs[start : start + p.batch_size]
                owner = torch.tensor([i for i, _, _ in chunk], device=inputs.device)
                # Copy each image once and overwrite only its window: far cheaper than blending
                # whole images with full-size masks.
                batch = images[owner]
                for row, (i, top, left) in enumerate(chunk):
                    batch[row, :, top : top + w, left : left + w] = baseline[
                        i, :, top : top + w, left : left + w
                    ]
                drop = original[owner] - self._scores(model, batch, image_targets[owner])
                for row, (i, top, left) in enumerate(chunk):
                    total[i, :, top : top + w, left : left + w] += drop[row, :, None, None]
                bar.update(len(chunk))
            maps = total / coverage
        context.metadata["windows"] = len(corners)
        context.metadata["forward_images"] = len(jobs) + count
        return maps.reshape(count * k, height, width).clone()


class Rise(_PerturbationAttributor):
    """RISE: importance as the score-weighted average of random smooth masks."""

    name = "rise"
    summary = "score-weighted sum of random upsampled binary masks (black-box)"
    paper = "Petsiuk, Das, Saenko 2018, arXiv:1806.07421"

    @dataclass
    class Params:
        #: Number of random masks (the paper uses 4000 for ResNet-50; more is smoother).
        n_masks: int = 1000
        #: Cells per side of the low-resolution binary grid.
        grid: int = 7
        #: Probability that a grid cell keeps the image.
        keep: float = 0.5
        #: Seed of the mask generator; the same seed gives the same maps bit for bit.
        seed: int = 0
        #: What masked-out regions are filled with (``zeros`` multiplies the normalized input by
        #: the mask, as the paper does).
        baseline: str = field(default="zeros", metadata={"choices": BASELINES})
        #: Standard deviation in pixels of the ``blur`` baseline.
        blur_sigma: float = 10.0
        #: The score that weights each mask (the paper uses the class probability).
        score: str = field(default="probability", metadata={"choices": SCORES})
        #: Masked images per forward pass (bounds memory; all inputs share batches).
        batch_size: int = 16
        #: Run forward passes in NHWC memory layout (faster on CPU with oneDNN).
        channels_last: bool = True
        #: Show a progress bar on long runs (only on a terminal).
        progress: bool = True

    _positive = ("n_masks", "grid", "batch_size")

    def __init__(self, params: Any = None, **overrides: Any):
        super().__init__(params, **overrides)
        if not 0.0 < self.params.keep <= 1.0:
            raise ConfigError(
                f"bad config value at 'rise.keep': {self.params.keep} is not a probability "
                "in (0, 1]"
            )

    def compute(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        p = self.params
        size = (inputs.shape[2], inputs.shape[3])
        if p.grid > min(size):
            raise InputError(
                f"RISE grid {p.grid} has more cells than the image ({size[0]}x{size[1]}) has "
                "pixels per side; use a smaller grid"
            )
        images, image_targets = _distinct(inputs, targets, context)
        count, k = image_targets.shape
        baseline = baseline_inputs(p.baseline, images, context.handle, p.blur_sigma)
        # All random numbers are drawn up front on the CPU, so the masks depend on the seed only,
        # not on the batch size or the device.
        generator = torch.Generator().manual_seed(p.seed)
        grids, shifts = rise_grids(p.n_masks, p.grid, p.keep, size, generator)
        grids, shifts = grids.to(inputs.device), shifts.to(inputs.device)

        total = torch.zeros(count * k, size[0] * size[1], device=inputs.device)
        per_batch = max(1, p.batch_size // count)
        with torch.inference_mode(), _progress(p.n_masks * count, self.name, p.progress) as bar:
            for start in _chunks(p.n_masks, per_batch):
                masks = rise_masks(grids[start], shifts[start], size)  # [B, H, W]
                soft = masks[:, None, None]  # [B, 1, 1, H, W] against images [M, 3, H, W]
                batch = images * soft + baseline * (1 - soft)
                rows = image_targets.repeat(len(masks), 1)
                scores = self._scores(model, batch.flatten(0, 1), rows)  # [B * M, k]
                # One matmul weighs every mask by the score of every (input, target) pair.
                weights = scores.view(len(masks), count * k)
                total += weights.T @ masks.flatten(1)
                bar.update(len(masks) * count)
        maps = total / (p.n_masks * p.keep)
        context.metadata["forward_images"] = p.n_masks * count
        return maps.view(count * k, *size).clone()


def _chunks(total: int, size: int) -> Iterator[slice]:
    for start in range(0, total, size):
        yield slice(start, min(start + size, total))


@hookimpl
def register_attributors(register):
    register(Occlusion)
    register(Rise)
