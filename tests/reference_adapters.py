"""Our models as the reference libraries expect them (Captum, torchattacks, Lucent).

The tests compare our methods with those libraries through these adapters, and the benchmarks
(``benchmarks/_common.py`` puts this folder on ``sys.path``) time the same libraries through the
same adapters. Imported as ``reference_adapters`` (``pythonpath = ["tests"]``).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from xai_core.contracts.model import ModelHandle


class _CaptumReLU6(nn.ReLU):
    """A ReLU6 that Captum's ReLU hooks see (they look for ``nn.ReLU`` instances)."""

    def forward(self, x):
        return F.relu6(x)


def relu6_as_relu(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose ``nn.ReLU6`` layers are :class:`_CaptumReLU6`: Captum's
    ``GuidedBackprop`` and ``Deconvolution`` hook only ``nn.ReLU`` modules, and would otherwise
    return the plain gradient through them."""
    module = copy.deepcopy(module)
    for child in list(module.modules()):
        for attr, grandchild in list(child.named_children()):
            if isinstance(grandchild, nn.ReLU6):
                setattr(child, attr, _CaptumReLU6())
    return module


class PixelModel(nn.Module):
    """A handle's module as torchattacks and Lucent expect it: ``[0, 1]`` pixels in, the model's
    own normalization inside. Lucent names the module's layers ``classifier_model_*``."""

    def __init__(self, handle: ModelHandle):
        super().__init__()
        self.handle = handle
        self.classifier_model = handle.module

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.classifier_model(self.handle.normalize(pixels))
