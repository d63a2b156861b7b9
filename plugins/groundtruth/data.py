from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from skimage.draw import polygon as draw_polygon
from torch import Tensor

from xai_core.contracts.model import Preprocessing
from xai_core.errors import XaiError

IMAGE_SIZE = 64

CLASS_NAMES = ("triangle", "square", "star", "disk")

DISTRACTOR_NAMES = ("bar", "ring")

#: Seed of the held-out images the benchmark evaluates on (training uses seeds 0 and 1).
BENCHMARK_SEED = 7

#: Preprocessing of the model: images are made at 64x64, normalized to [-1, 1].
PREPROCESSING = Preprocessing(
    input_size=(IMAGE_SIZE, IMAGE_SIZE),
    resize_size=IMAGE_SIZE,
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
)


@dataclass
class GroundTruthSet:
    """Images with exact object masks.

    :ivar images: ``[N, 3, H, W]`` pixels in ``[0, 1]``.
    :ivar masks: ``[N, H, W]`` bool, the class object's pixels.
    :ivar labels: ``[N]`` long, index into :data:`CLASS_NAMES`.
    :ivar backgrounds: ``[N, 3, H, W]``: the same images with the object left out (leakage check).
    :ivar distractors: ``[N, 2]`` long, index into :data:`DISTRACTOR_NAMES` of each distractor.
    """

    images: Tensor
    masks: Tensor
    labels: Tensor
    backgrounds: Tensor
    distractors: Tensor

    def __len__(self) -> int:
        return self.images.shape[0]


def _shape_polygon(kind: str, radius: float, angle: float) -> np.ndarray:
    """Vertices ``[K, 2]`` (x, y) of a shape centred at the origin."""
    if kind == "triangle":
        corners, radii = 3, [radius]
    elif kind == "square":
        corners, radii = 4, [radius]
    elif kind == "star":
        # Ten alternating vertices; the inner radius keeps the points clearly visible at 64x64.
        corners, radii = 10, [radius, radius * 0.45]
    elif kind == "disk":
        corners, radii = 48, [radius]
    else:
        raise ValueError(kind)
    steps = np.arange(corners)
    theta = angle + 2 * np.pi * steps / corners
    r = np.array([radii[i % len(radii)] for i in steps])
    return np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)


def _fill(points: np.ndarray, centre: tuple[float, float], size: int) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    rows, cols = draw_polygon(points[:, 1] + centre[1], points[:, 0] + centre[0], (size, size))
    mask[rows, cols] = True
    return mask


def _distractor_mask(kind: str, rng: np.random.Generator, centre, size: int) -> np.ndarray:
    if kind == "bar":
        length, width = rng.uniform(10, 16), rng.uniform(2, 3)
        angle = rng.uniform(0, np.pi)
        rect = np.array([[-length, -width], [length, -width], [length, width], [-length, width]])
        rect = rect / 2
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        return _fill(rect @ rot.T, centre, size)
    outer = rng.uniform(5, 7)
    yy, xx = np.mgrid[0:size, 0:size]
    distance = np.hypot(xx - centre[0], yy - centre[1])
    return (distance <= outer) & (distance > outer - 2)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth random field plus oriented stripes: ``[H, W, 3]`` in roughly ``[0.2, 0.8]``."""
    base = rng.uniform(0.3, 0.7, size=3)
    coarse = rng.normal(0, 0.08, size=(3, 9, 9))
    field = torch.nn.functional.interpolate(
        torch.from_numpy(coarse)[None], size=(size, size), mode="bicubic", align_corners=True
    )[0].numpy()
    yy, xx = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, np.pi)
    frequency = rng.uniform(4, 10)
    stripes = 0.06 * np.sin(2 * np.pi * frequency * (xx * np.cos(angle) + yy * np.sin(angle)))
    image = base[:, None, None] + field + stripes[None] + rng.normal(0, 0.02, size=(3, size, size))
    return np.clip(image.transpose(1, 2, 0), 0, 1)


def _colour(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """A random colour far enough from the background's mean that the shape is always visible."""
    mean = background.reshape(-1, 3).mean(axis=0)
    while True:
        colour = rng.uniform(0, 1, size=3)
        if np.linalg.norm(colour - mean) > 0.45:
            return colour


def _one(seed: int, index: int, size: int) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, list]:
    rng = np.random.default_rng([seed, index])
    label = int(rng.integers(len(CLASS_NAMES)))
    background = _background(rng, size)
    radius = rng.uniform(7, 12) * size / IMAGE_SIZE
    margin = radius + 2
    centre = (rng.uniform(margin, size - margin), rng.uniform(margin, size - margin))
    points = _shape_polygon(CLASS_NAMES[label], radius, rng.uniform(0, 2 * np.pi))
    mask = _fill(points, centre, size)
    canvas = background.copy()
    kinds = []
    placed = [(centre, radius)]
    for _ in range(2):
        kind = int(rng.integers(len(DISTRACTOR_NAMES)))
        # Rejection sampling keeps distractors off the object (and each other), so the object's
        # mask stays exact and no distractor hides part of it.
        for _attempt in range(100):
            where = (rng.uniform(4, size - 4), rng.uniform(4, size - 4))
            if all(math.dist(where, c) > r + 10 for c, r in placed):
                break
        placed.append((where, 8.0))
        shape = _distractor_mask(DISTRACTOR_NAMES[kind], rng, where, size)
        canvas[shape] = _colour(rng, background)
        kinds.append(kind)
    without = canvas.copy()
    canvas[mask] = _colour(rng, background)
    return canvas, mask, label, without, kinds


def generate(n: int, seed: int = BENCHMARK_SEED, size: int = IMAGE_SIZE) -> GroundTruthSet:
    """``n`` images of the ground-truth set ``seed`` (item ``i`` depends on ``(seed, i)`` only)."""
    if n < 1:
        raise XaiError(f"the ground-truth set needs at least one image, not {n}")
    images, masks, labels, backgrounds, distractors = [], [], [], [], []
    for i in range(n):
        image, mask, label, without, kinds = _one(seed, i, size)
        images.append(image)
        masks.append(mask)
        labels.append(label)
        backgrounds.append(without)
        distractors.append(kinds)

    def pixels(arrays: list[np.ndarray]) -> Tensor:
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().contiguous()

    return GroundTruthSet(
        images=pixels(images),
        masks=torch.from_numpy(np.stack(masks)),
        labels=torch.tensor(labels, dtype=torch.long),
        backgrounds=pixels(backgrounds),
        distractors=torch.tensor(distractors, dtype=torch.long),
    )
