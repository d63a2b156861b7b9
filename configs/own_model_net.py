"""The model of example:own_model: a small CNN built by a plain function, no packaging needed.

``own_model.yaml`` names it as ``factory: own_model_net.py:tiny_cnn``; its ``args`` are the
function's keyword arguments. The weights are a seeded random initialisation: put your own
network here, or point ``factory`` at your file, and ``checkpoint`` at its trained state dict.
"""

import torch
from torch import nn


class TinyCNN(nn.Module):
    """Two convolution blocks, global average pooling and a linear classifier."""

    def __init__(self, width: int = 16, classes: int = 3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
        )
        self.classifier = nn.Linear(2 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))


def tiny_cnn(width: int = 16, classes: int = 3) -> nn.Module:
    """The example's network, the same weights every time."""
    torch.manual_seed(0)
    return TinyCNN(width, classes)
