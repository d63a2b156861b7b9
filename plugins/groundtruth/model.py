from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor, nn

from xai_core.contracts.model import ModelHandle, load_checkpoint
from xai_core.errors import XaiError

from .data import CLASS_NAMES, PREPROCESSING


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
    return Path(__file__).parent / "groundtruth_cnn.pt"


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
