"""Inference-only rewrites of a model that compute the same function in fewer operations.

:func:`folded_batch_norm` folds each eval-mode batch norm into the convolution that feeds it, as
inference engines do (ONNX Runtime, TensorRT, ``torch.jit.freeze``): a batch norm in eval mode is
a per-channel affine map, ``y = s * (conv(x) - mean) + beta`` with ``s = gamma / sqrt(var + eps)``,
which is the convolution with weights ``s * W`` and bias ``s * (b - mean) + beta``. The batch-norm
pass over the map goes away; on CPU that makes a forward pass of a convolutional network
markedly cheaper (EfficientNet-Lite0 at 224 px: about a third).

The folded model computes the same function up to float rounding (the products ``s * W`` round
differently), not bit for bit. Methods that only need forward passes (occlusion, RISE) use it;
gradient methods do not (the folded parameters are new tensors that do not require gradients).

What does not live here: hooks and the model's mode (:mod:`xai_core.nn.hooks`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from xai_core.nn.gradients import channels_last_layout
from xai_core.nn.hooks import HookRecorder

__all__ = ["folded_batch_norm", "foldable_pairs", "folded_when"]


def _plain_forward(module: nn.Module, base: type) -> bool:
    return getattr(type(module), "forward", None) is getattr(base, "forward", None)


def _conv_folds(conv: nn.Module) -> bool:
    """Whether ``conv`` computes ``conv2d(x, self.weight, self.bias)`` (so scaling its weight and
    setting its bias folds an affine map into it): ``nn.Conv2d`` itself or timm's ``Conv2dSame``
    ("SAME" padding), not subclasses that transform their weight (weight standardization)."""
    if not isinstance(conv, nn.Conv2d):
        return False
    if _plain_forward(conv, nn.Conv2d):
        return True
    try:
        from timm.layers import Conv2dSame  # timm takes ~2 s to import: only when folding
    except ImportError:  # pragma: no cover - timm is a dependency
        return False
    return _plain_forward(conv, Conv2dSame)


def _norm_replacement(norm: nn.Module) -> nn.Module | None:
    """What ``norm`` becomes once folded: ``nn.Identity`` for a plain ``BatchNorm2d``, the
    activation for timm's ``BatchNormAct2d`` (batch norm, dropout, activation); ``None`` for a
    module that does not fold (training mode, no running statistics, an unknown subclass)."""
    if not isinstance(norm, nn.BatchNorm2d) or norm.training or norm.running_mean is None:
        return None
    if _plain_forward(norm, nn.BatchNorm2d):
        return nn.Identity()
    try:
        from timm.layers import BatchNormAct2d
    except ImportError:  # pragma: no cover
        return None
    if _plain_forward(norm, BatchNormAct2d):
        return nn.Sequential(norm.drop, norm.act)  # dropout is the identity in eval mode
    return None


def foldable_pairs(model: nn.Module, example: Tensor) -> tuple[list[tuple[str, str]], Tensor]:
    """The ``(convolution, batch norm)`` module names whose batch norm takes exactly the
    convolution's output, found in one forward pass of ``example``, and that pass's output.

    Each module of a pair must run once per pass (a shared module cannot fold for one of its
    uses only). That the convolution's output feeds nothing else cannot be seen from hooks:
    :func:`folded_batch_norm` checks the folded model's output against the model's.
    """
    calls: dict[str, int] = {}
    last_conv: list[tuple[str, Tensor]] = []
    pairs: list[tuple[str, str]] = []

    def record(name: str, module: nn.Module) -> Any:
        def hook(_module: nn.Module, args: tuple, output: Any) -> None:
            calls[name] = calls.get(name, 0) + 1
            if isinstance(module, nn.Conv2d):
                last_conv[:] = [(name, output)]
            elif last_conv and args and args[0] is last_conv[0][1]:
                pairs.append((last_conv[0][0], name))

        return hook

    with HookRecorder() as hooks:
        for name, module in model.named_modules():
            if isinstance(module, (nn.Conv2d, nn.BatchNorm2d)):
                hooks.forward(module, record(name, module))
        output = model(example)
    modules = dict(model.named_modules())
    pairs = [
        (conv, norm)
        for conv, norm in pairs
        if calls[conv] == 1
        and calls[norm] == 1
        and _conv_folds(modules[conv])
        and _norm_replacement(modules[norm]) is not None
    ]
    return pairs, output


@contextlib.contextmanager
def folded_batch_norm(model: nn.Module, example: Tensor, rtol: float = 1e-5) -> Iterator[bool]:
    """Fold ``model``'s eval-mode batch norms into their convolutions for the ``with`` block;
    yields whether it did.

    Nothing is folded (``False``) when a module is in training mode, no pair folds or the
    folded model's output on ``example`` differs from the model's by more than ``rtol`` of the
    output's largest magnitude (at least ``rtol``). On exit, also after an exception, the model
    has its own modules and parameter tensors back, as :func:`xai_core.nn.hooks.model_state`
    restores mode and flags: folding in place costs no copy of the model. The folded parameters
    are computed in float64 (where the device has it) and rounded once; they do not require
    gradients.
    """
    modules = list(model.modules())
    if any(m.training for m in modules) or not any(isinstance(m, nn.BatchNorm2d) for m in modules):
        # Without a forward pass: training mode would update running statistics.
        yield False
        return
    with torch.no_grad():
        pairs, expected = foldable_pairs(model, example)
    undo: list[Callable[[], None]] = []
    try:
        folded = False
        if pairs and isinstance(expected, Tensor):
            with torch.no_grad():
                try:
                    for conv_name, norm_name in pairs:
                        undo.append(_fold(model, conv_name, norm_name))
                    output = model(example)
                except Exception:  # e.g. a module that relied on what was replaced
                    output = None
            limit = rtol * max(1.0, float(expected.abs().max()))
            folded = (
                isinstance(output, Tensor)
                and output.shape == expected.shape
                and bool((output - expected).abs().max() <= limit)
            )
            if not folded:
                _undo(undo)
        yield folded
    finally:
        _undo(undo)


@contextlib.contextmanager
def folded_when(
    enabled: bool,
    model: nn.Module,
    images: Tensor,
    channels_last: bool,
    metadata: dict[str, Any],
) -> Iterator[bool]:
    """:func:`folded_batch_norm` checked on ``images`` (in the layout the passes use) when
    ``enabled`` (a technique's ``fold_batch_norm`` parameter), recording whether it folded in
    ``metadata["folded_batch_norm"]``; nothing at all otherwise."""
    if not enabled:
        yield False
        return
    with folded_batch_norm(model, channels_last_layout(images, channels_last)) as folded:
        metadata["folded_batch_norm"] = folded
        yield folded


def _fold(model: nn.Module, conv_name: str, norm_name: str) -> Callable[[], None]:
    """Fold batch norm ``norm_name`` into convolution ``conv_name``; returns what undoes it."""
    conv, norm = model.get_submodule(conv_name), model.get_submodule(norm_name)
    weight, bias = conv.weight, conv.bias
    # Float64 where the device has it (not Apple's MPS), then rounded once.
    wide = torch.float64 if weight.device.type in ("cpu", "cuda") else torch.float32
    scale = norm.weight.to(wide) if norm.weight is not None else 1.0
    scale = scale / torch.sqrt(norm.running_var.to(wide) + norm.eps)
    shift = norm.bias.to(wide) if norm.bias is not None else 0.0
    new_bias = (bias.to(wide) if bias is not None else 0.0) - norm.running_mean.to(wide)
    new_weight = nn.Parameter(
        (weight.to(wide) * scale.view(-1, 1, 1, 1)).to(weight.dtype), requires_grad=False
    )
    new_bias = nn.Parameter((new_bias * scale + shift).to(weight.dtype), requires_grad=False)
    parent_name, _, child = norm_name.rpartition(".")
    parent, replacement = model.get_submodule(parent_name), _norm_replacement(norm)
    # Everything that can fail is done: change the model only now.
    conv.weight, conv.bias = new_weight, new_bias
    setattr(parent, child, replacement)

    def undo() -> None:
        conv.weight, conv.bias = weight, bias
        setattr(parent, child, norm)

    return undo


def _undo(undo: list[Callable[[], None]]) -> None:
    while undo:
        undo.pop()()
