"""The ``edge_cnn`` model: a tiny CNN that tells vertical from horizontal stripes, with weights
shipped in the package (``edge_cnn.pt``), so it loads with no network.

Its weights are not trained but written down: the first layer is four Sobel filters on the grey
image (rising and falling edges, across and along), the head adds up the across-edges for
"vertical stripes" and the along-edges for "horizontal stripes". :func:`edge_cnn_state` builds
them, :func:`write_weights` writes the file, and the package's tests check that the file holds
exactly those weights.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

import xai_core
from xai_core.contracts.model import load_checkpoint

from .edges import SOBEL_X

CLASS_NAMES = ("vertical stripes", "horizontal stripes")
#: 64x64 inputs, mean and std 0.5: pixels in [0, 1] become [-1, 1].
PREPROCESSING = xai_core.Preprocessing(
    input_size=(64, 64), resize_size=64, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)
)


class EdgeCNN(nn.Module):
    """Conv 3->4 (3x3), ReLU, global average pooling, linear 4->2."""

    def __init__(self, num_classes: int = len(CLASS_NAMES)):
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(4, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


def weights_path() -> Path:
    """The shipped weights, next to this module (package data in ``pyproject.toml``)."""
    return Path(__file__).with_name("edge_cnn.pt")


def edge_cnn_state() -> dict[str, Tensor]:
    """The weights of ``edge_cnn``, derived from the Sobel kernel (no randomness, no training)."""
    grey = SOBEL_X / 3  # the same kernel on each colour channel: the grey image's edges
    filters = torch.stack([grey, -grey, grey.T, -grey.T])  # across+, across-, along+, along-
    head = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    return {
        "features.0.weight": filters[:, None].expand(4, 3, 3, 3).contiguous(),
        "features.0.bias": torch.zeros(4),
        "head.weight": head,
        "head.bias": torch.zeros(2),
    }


def load_edge_cnn(pretrained: bool = True, checkpoint: str | None = None) -> xai_core.ModelHandle:
    """Every loader receives ``pretrained`` and ``checkpoint`` (the config's ``model`` section):
    a checkpoint wins, else the shipped weights, else (``pretrained: false``) random ones."""
    module = EdgeCNN()
    if checkpoint is not None:
        load_checkpoint(module, checkpoint)
        source = "checkpoint"
    elif pretrained:
        load_checkpoint(module, weights_path())
        source = "shipped"
    else:
        source = "random"
    return xai_core.ModelHandle(
        name="edge_cnn",
        module=module.eval(),
        preprocessing=PREPROCESSING,
        class_names=list(CLASS_NAMES),
        info={"weights": source, "checkpoint": checkpoint, "architecture": "EdgeCNN"},
    )


def write_weights(path: str | Path | None = None) -> Path:
    """Write :func:`edge_cnn_state` to ``path`` (default: the shipped file) and return it."""
    target = Path(path) if path is not None else weights_path()
    torch.save(edge_cnn_state(), target)
    return target
