"""Building blocks for gradient techniques: class scores, input gradients, channel reductions.

Built-in plugins and third-party ones use these so that "the gradient of the class score" and
"max of absolute values over channels" mean the same thing everywhere.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["class_scores", "input_gradients", "reduce_channels", "REDUCTIONS"]

#: Channel reductions ``[N, C, H, W] -> [N, H, W]`` a technique can offer as its ``reduction``.
REDUCTIONS = ("max", "sum", "mean", "l2")


def class_scores(logits: Tensor, targets: Tensor) -> Tensor:
    """The unnormalized score (logit) of each item's target class, ``[N]``."""
    return logits.gather(1, targets.view(-1, 1).to(logits.device)).squeeze(1)


def input_gradients(model: nn.Module, inputs: Tensor, targets: Tensor) -> Tensor:
    """Gradient of each item's target logit with respect to its input, ``[N, 3, H, W]``.

    Items do not interact (the summed score's gradient for item ``i`` is item ``i``'s own), so
    the whole batch takes one forward and one backward pass.
    """
    x = inputs.detach().requires_grad_(True)
    scores = class_scores(model(x), targets)
    (grad,) = torch.autograd.grad(scores.sum(), x)
    return grad


def reduce_channels(maps: Tensor, reduction: str) -> Tensor:
    """Reduce ``[N, C, H, W]`` over channels with one of :data:`REDUCTIONS`.

    ``max`` keeps, per pixel, the channel value of largest magnitude *with its sign* (so on
    absolute values it is the max of absolute values, as in Simonyan et al.); ``l2`` is the norm
    over channels.
    """
    if reduction == "max":
        index = maps.abs().argmax(dim=1, keepdim=True)
        return maps.gather(1, index).squeeze(1)
    if reduction == "sum":
        return maps.sum(dim=1)
    if reduction == "mean":
        return maps.mean(dim=1)
    if reduction == "l2":
        return maps.norm(dim=1)
    raise ValueError(f"unknown reduction {reduction!r}; use one of {', '.join(REDUCTIONS)}")
