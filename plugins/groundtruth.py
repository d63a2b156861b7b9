"""The ground-truth benchmark: a procedural image set whose decisive pixels are known exactly, and
the small CNN trained on it (registered as the model ``groundtruth_cnn``).

Every 64x64 image holds one *class object* (a triangle, square, star or disk) with random position,
rotation, size and colour, on a textured background, plus two *distractors* (bars and rings) drawn
with the same colour distribution and equally frequent in every class. The class is decided by the
object alone, and the object's mask is exact: it is the set of pixels the object was painted on,
and distractors never overlap it. Each image is also rendered without its object (the same
background and distractors), which the leakage check uses: a classifier that has learned the object
and nothing else falls to chance on those.

Images are generated from ``(seed, index)``, so item ``i`` of a set is the same whatever the set's
size, and the training set (seeds 0 and 1 in ``scripts/train_groundtruth.py``) never overlaps the
benchmark set (:data:`BENCHMARK_SEED`).

What does not live here: the metrics (``plugins/metrics.py``) and the benchmark runner
(:mod:`xai_core.benchmark`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from skimage.draw import polygon as draw_polygon
from torch import Tensor, nn

from xai_core import hookimpl
from xai_core.errors import XaiError
from xai_core.models import ModelHandle, Preprocessing, load_checkpoint

__all__ = [
    "CLASS_NAMES",
    "DISTRACTOR_NAMES",
    "IMAGE_SIZE",
    "BENCHMARK_SEED",
    "GroundTruthSet",
    "GroundTruthCNN",
    "generate",
    "weights_path",
    "load_groundtruth_cnn",
]

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


class GroundTruthCNN(nn.Module):
    """Four 3x3 conv layers (batch norm, ReLU, max-pooling), global average pooling, a linear head.

    ReLUs are separate, non-inplace modules so that module-hook techniques (guided backprop,
    Grad-CAM) see each of them; the last conv block keeps an 8x8 map at 64x64 input.
    """

    def __init__(self, num_classes: int = len(CLASS_NAMES)):
        super().__init__()
        self.num_classes = num_classes
        # Narrow early layers keep training to minutes on a CPU; the last block is the widest.
        widths = (3, 8, 16, 32, 64)
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
            # Batch norm makes the shapes learnable in a few CPU minutes; randomising it in the
            # sanity check resets it to the identity, as at the start of training.
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]
            if i < len(widths) - 2:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(widths[-1], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


def weights_path() -> Path:
    """The committed weights of ``groundtruth_cnn`` (made by ``scripts/train_groundtruth.py``)."""
    return Path(__file__).parent / "data" / "groundtruth_cnn.pt"


def load_groundtruth_cnn(
    pretrained: bool = True, checkpoint: str | None = None, **_options: Any
) -> ModelHandle:
    """The ground-truth CNN with its committed weights (``pretrained=false``: random weights)."""
    module = GroundTruthCNN()
    source = "random"
    if checkpoint is not None:
        load_checkpoint(module, checkpoint)
        source = "checkpoint"
    elif pretrained:
        path = weights_path()
        if not path.is_file():
            raise XaiError(
                f"the weights of groundtruth_cnn ({path}) are missing; train them with "
                "`python scripts/train_groundtruth.py`"
            )
        load_checkpoint(module, path)
        source = "committed"
    return ModelHandle(
        name="groundtruth_cnn",
        module=module.eval(),
        preprocessing=PREPROCESSING,
        class_names=list(CLASS_NAMES),
        info={"weights": source, "checkpoint": checkpoint, "architecture": "GroundTruthCNN"},
    )


@hookimpl
def register_models(register):
    register(
        "groundtruth_cnn",
        load_groundtruth_cnn,
        description="small CNN for the procedural ground-truth benchmark (64x64, 4 shapes)",
    )
