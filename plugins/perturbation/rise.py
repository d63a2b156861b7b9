"""RISE (Petsiuk, Das, Saenko 2018, "RISE: Randomized Input Sampling for Explanation of Black-box
Models", BMVC, arXiv:1806.07421, section 3): random low-resolution binary grids, bilinearly
upsampled and randomly shifted into soft masks; the map is the score-weighted sum of the masks
divided by ``n_masks * keep`` (the expected keep probability).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xai_core import AttributionContext, PerturbationAttributor
from xai_core.errors import InputError
from xai_core.families.perturbation import SCORES

__all__ = ["Rise", "rise_grids", "rise_masks"]


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


class Rise(PerturbationAttributor):
    """RISE: importance as the score-weighted average of random smooth masks."""

    name = "rise"
    summary = "score-weighted sum of random upsampled binary masks (black-box)"
    paper = "Petsiuk, Das, Saenko 2018, arXiv:1806.07421"

    @dataclass
    class Params(PerturbationAttributor.Params):
        #: Number of random masks (the paper uses 4000 for ResNet-50; more is smoother).
        n_masks: int = field(default=1000, metadata={"min": 1})
        #: Cells per side of the low-resolution binary grid.
        grid: int = field(default=7, metadata={"min": 1})
        #: Probability that a grid cell keeps the image.
        keep: float = field(default=0.5, metadata={"min_exclusive": 0, "max": 1})
        #: Seed of the mask generator; the same seed gives the same maps bit for bit.
        seed: int = 0
        #: The score that weights each mask (the paper uses the class probability).
        score: str = field(default="probability", metadata={"choices": SCORES})

    def check_input(self, inputs: Tensor) -> None:
        height, width = inputs.shape[2:]
        if self.params.grid > min(height, width):
            raise InputError(
                f"RISE grid {self.params.grid} has more cells than the image ({height}x{width}) "
                "has pixels per side; use a smaller grid"
            )

    def attribute_distinct(
        self, model: nn.Module, images: Tensor, image_targets: Tensor, context: AttributionContext
    ) -> Tensor:
        p = self.params
        size = (images.shape[2], images.shape[3])
        count, k = image_targets.shape
        baseline = self.baseline(images, context)
        # All random numbers are drawn up front on the CPU, so the masks depend on the seed only,
        # not on the batch size or the device.
        generator = torch.Generator().manual_seed(p.seed)
        grids, shifts = rise_grids(p.n_masks, p.grid, p.keep, size, generator)
        grids, shifts = grids.to(images.device), shifts.to(images.device)

        total = torch.zeros(count * k, size[0] * size[1], device=images.device)
        per_batch = max(1, p.batch_size // count)
        with self.scoring_pass(p.n_masks * count) as bar:
            for start in range(0, p.n_masks, per_batch):
                chosen = slice(start, start + per_batch)
                masks = rise_masks(grids[chosen], shifts[chosen], size)  # [B, H, W]
                soft = masks[:, None, None]  # [B, 1, 1, H, W] against images [M, 3, H, W]
                batch = images * soft + baseline * (1 - soft)
                rows = image_targets.repeat(len(masks), 1)
                scores = self.perturbed_scores(model, batch.flatten(0, 1), rows)  # [B * M, k]
                # One matmul weighs every mask by the score of every (input, target) pair.
                weights = scores.view(len(masks), count * k)
                total += weights.T @ masks.flatten(1)
                bar.update(len(masks) * count)
        maps = total / (p.n_masks * p.keep)
        context.metadata["forward_images"] = p.n_masks * count
        return maps.view(count * k, *size).clone()
