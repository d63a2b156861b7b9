"""Canonization: the model read as a chain of layers that LRP rules apply to, without changing
it (zennit's ``SequentialMergeBatchNorm`` and ``ResNetCanonizer``, done with hooks only).

* **Batch-norm merging.** An eval-mode batch norm right after a convolution or linear layer is
  one affine map with it: ``W' = s W``, ``b' = s (b - mean) + beta`` with ``s = gamma /
  sqrt(var + eps)``. The rule of the convolution then sees ``W'`` and ``b'``
  (:func:`merged_parameters`) and takes the relevance of the batch norm's *output*. Pairs are
  found as zennit finds them, a batch norm following a linear layer among the model's leaf
  modules in registration order (:func:`batch_norm_pairs`), and checked in the forward pass: the
  batch norm must take exactly that layer's output. Unlike zennit, the model's parameters are
  never rewritten: the merged weights exist only inside the call, and the forward pass is the
  model's own, bit for bit.
* **Residual sums.** A sum of two activations (``out += identity`` in torchvision's ResNet
  blocks, ``x + shortcut`` elsewhere) shares its relevance in proportion to the two summands,
  zennit's ``Norm`` rule on its ``Sum`` module. zennit swaps the blocks' ``forward`` for one with
  a ``Sum`` module; here a torch function mode, active during the model's forward pass only,
  sees the addition itself (:class:`ResidualSums`), so any architecture's residual sums are
  covered and no module is touched.

What does not live here: the rules (:mod:`.rules`) and the hooks that apply them
(:mod:`.propagation`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from .rules import stabilize

__all__ = ["ResidualSums", "batch_norm_pairs", "merged_parameters"]

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
_AFFINE = (nn.Conv2d, nn.Linear)


def batch_norm_pairs(model: nn.Module) -> dict[str, str]:
    """``{batch norm path: path of the convolution or linear layer it follows}`` for every batch
    norm right after such a layer among ``model``'s leaf modules, in registration order."""
    pairs: dict[str, str] = {}
    previous: tuple[str, nn.Module] | None = None
    for name, module in model.named_modules():
        if next(module.children(), None) is not None:
            continue
        if isinstance(module, _BATCH_NORMS) and previous and isinstance(previous[1], _AFFINE):
            pairs[name] = previous[0]
        previous = (name, module)
    return pairs


def merged_parameters(layer: nn.Module, norm: nn.Module) -> tuple[Tensor, Tensor]:
    """Weight and bias of ``norm(layer(x))`` as one affine layer (``norm`` in eval mode)."""
    if norm.running_mean is None or norm.running_var is None:
        raise ValueError(f"batch norm {norm} keeps no running statistics and cannot be merged")
    # zennit's order of operations, so the merged parameters round as its do.
    denominator = (norm.running_var + norm.eps) ** 0.5
    scale = 1.0 / denominator if norm.weight is None else norm.weight / denominator
    bias = -norm.running_mean if layer.bias is None else layer.bias - norm.running_mean
    bias = bias * scale
    if norm.bias is not None:
        bias = bias + norm.bias
    shape = (-1,) + (1,) * (layer.weight.ndim - 1)
    return layer.weight * scale.view(shape), bias


class _SumRelevance(torch.autograd.Function):
    """``a + b`` whose backward shares the relevance of the sum in proportion to ``a`` and
    ``b``; ``inplace`` adds into ``a`` (``out += identity``), as the model asked."""

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, stabilizer: float, inplace: bool) -> Tensor:
        if inplace:
            before = a.clone()
            out = a.add_(b)
            ctx.mark_dirty(a)
        else:
            before, out = a, a + b
        ctx.save_for_backward(before, b)
        ctx.stabilizer = stabilizer
        return out

    @staticmethod
    def backward(ctx, relevance: Tensor) -> tuple[Tensor | None, ...]:
        a, b = ctx.saved_tensors
        # The sum again rather than kept: a ReLU after it usually overwrites it in place.
        share = relevance / stabilize(a + b, ctx.stabilizer)
        return a * share, b * share, None, None


_ADDS = {
    Tensor.__add__: False, Tensor.__radd__: False, Tensor.add: False, torch.add: False,
    Tensor.__iadd__: True, Tensor.add_: True,
}


class ResidualSums(TorchFunctionMode):
    """While active, every sum of two tensors that carry relevance (both require gradients, same
    shape) passes relevance back in proportion to its summands (zennit's ``Norm`` rule).

    Sums with constants or parameters (which require no gradient here) keep their gradient.
    """

    def __init__(self, stabilizer: float):
        super().__init__()
        self.stabilizer = stabilizer

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inplace = _ADDS.get(func)
        if inplace is not None and len(args) == 2 and not kwargs and torch.is_grad_enabled():
            a, b = args
            if (
                isinstance(a, Tensor)
                and isinstance(b, Tensor)
                and a.requires_grad
                and b.requires_grad
                and a.shape == b.shape
            ):
                return _SumRelevance.apply(a, b, self.stabilizer, inplace)
        return func(*args, **kwargs)


def residual_sum_hooks(model: nn.Module, hooks: Any, stabilizer: float) -> None:
    """Activate :class:`ResidualSums` for every forward pass of ``model`` while ``hooks`` (a
    :class:`~xai_core.nn.hooks.HookRecorder`) is open."""
    hooks.during_forward(model, ResidualSums(stabilizer))
