"""Building blocks for gradient techniques: class scores, input gradients, channel reductions.

Built-in plugins and third-party ones use these so that "the gradient of the class score" and
"max of absolute values over channels" mean the same thing everywhere.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = [
    "channels_last_layout",
    "class_scores",
    "gradients_at",
    "input_gradients",
    "model_input",
    "reduce_channels",
    "REDUCTIONS",
]

#: Channel reductions ``[N, C, H, W] -> [N, H, W]`` a technique can offer as its ``reduction``.
REDUCTIONS = ("max", "sum", "mean", "l2")


def class_scores(logits: Tensor, targets: Tensor) -> Tensor:
    """The unnormalized score (logit) of each item's target class, ``[N]``."""
    return logits.gather(1, targets.view(-1, 1).to(logits.device)).squeeze(1)


def channels_last_layout(inputs: Tensor, channels_last: bool = True) -> Tensor:
    """``inputs`` laid out NHWC when ``channels_last`` and it is a 4-d batch, else as it is.

    Convolutions then take oneDNN's (and cuDNN's) channels-last kernels: a quarter less time per
    forward and backward pass on this project's CPUs than NCHW for the same values (weights may
    stay NCHW); values do not depend on the layout beyond rounding.
    """
    if channels_last and inputs.ndim == 4:
        return inputs.contiguous(memory_format=torch.channels_last)
    return inputs


def model_input(inputs: Tensor, channels_last: bool = True) -> Tensor:
    """A detached copy-or-view of ``inputs`` that requires grad, as the leaf of a gradient pass,
    in the layout of :func:`channels_last_layout`. The gradient with respect to the leaf has
    the leaf's layout."""
    return channels_last_layout(inputs.detach(), channels_last).requires_grad_(True)


def input_gradients(
    model: nn.Module, inputs: Tensor, targets: Tensor, channels_last: bool = True
) -> Tensor:
    """Gradient of each item's target logit with respect to its input, ``[N, C, H, W]``.

    Items do not interact (the summed score's gradient for item ``i`` is item ``i``'s own), so
    the whole batch takes one forward and one backward pass; ``channels_last``: see
    :func:`model_input`.
    """
    x = model_input(inputs, channels_last)
    scores = class_scores(model(x), targets)
    (grad,) = torch.autograd.grad(scores.sum(), x)
    return grad.contiguous()


def gradients_at(logits: Tensor, leaf: Tensor, targets: Tensor) -> Tensor:
    """Gradients at ``leaf`` of the target scores of a pass already made: ``logits``
    ``[M, classes]`` computed from ``leaf`` ``[M, ...]``, ``targets`` ``[M * k]`` (``k`` per row of
    ``leaf``, row-major, as an attributor's rows with several targets per input) ->
    ``[M * k, ...]``. One backward pass per target of a row; the graph is kept between them."""
    m = logits.shape[0]
    per_row = targets.to(logits.device).view(m, -1)
    k = per_row.shape[1]
    grads = []
    for j in range(k):
        scores = class_scores(logits, per_row[:, j])
        (grad,) = torch.autograd.grad(scores.sum(), leaf, retain_graph=j < k - 1)
        grads.append(grad)
    return torch.stack(grads, dim=1).flatten(0, 1).contiguous()


def reduce_channels(maps: Tensor, reduction: str) -> Tensor:
    """Reduce ``[N, C, H, W]`` over channels with one of :data:`REDUCTIONS`.

    ``max`` keeps, per pixel, the channel value of largest magnitude *with its sign* (so on
    absolute values it is the max of absolute values, as in Simonyan et al.); ``l2`` is the norm
    over channels.
    """
    if reduction == "max":
        # ``max(dim)``'s indices, not ``argmax``: the same first index of the largest (NaN
        # first), but argmax over a short strided channel dimension of an NCHW batch is about
        # 15x slower on CPU (140 ms against 8 ms for [16, 3, 224, 224], measured).
        index = maps.abs().max(dim=1, keepdim=True).indices
        return maps.gather(1, index).squeeze(1)
    if reduction == "sum":
        return maps.sum(dim=1)
    if reduction == "mean":
        return maps.mean(dim=1)
    if reduction == "l2":
        return maps.norm(dim=1)
    raise ValueError(f"unknown reduction {reduction!r}; use one of {', '.join(REDUCTIONS)}")
