"""Torch-side bookkeeping that techniques share: hooks that always go away, and a model that is
always left as it was found (mode, parameter ``requires_grad`` flags, grad mode).

These are *torch module hooks*; plugin hooks (pluggy) live in :mod:`xai_core.plugins.hookspecs`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from xai_core.errors import UnknownNameError

__all__ = ["HookRecorder", "model_state", "model_device", "get_module"]


class HookRecorder:
    """Registers torch hooks and removes every one of them on exit, also after an exception.

    Use as a context manager; ``forward``, ``forward_pre``, ``full_backward`` and ``tensor``
    register the corresponding hook and remember its handle.
    """

    def __init__(self) -> None:
        self._handles: list[RemovableHandle] = []

    def add(self, handle: RemovableHandle) -> RemovableHandle:
        self._handles.append(handle)
        return handle

    def forward(self, module: nn.Module, fn: Callable[..., Any], **kwargs: Any) -> RemovableHandle:
        return self.add(module.register_forward_hook(fn, **kwargs))

    def forward_pre(
        self, module: nn.Module, fn: Callable[..., Any], **kwargs: Any
    ) -> RemovableHandle:
        return self.add(module.register_forward_pre_hook(fn, **kwargs))

    def full_backward(
        self, module: nn.Module, fn: Callable[..., Any], **kwargs: Any
    ) -> RemovableHandle:
        return self.add(module.register_full_backward_hook(fn, **kwargs))

    def during_forward(
        self, module: nn.Module, manager: contextlib.AbstractContextManager[Any]
    ) -> None:
        """Enter ``manager`` before every forward pass of ``module`` and exit it afterwards, also
        when the pass raises (``always_call``); the two hooks go away with this recorder. For a
        torch function mode that must be active exactly while the model runs (the ReLU rules of
        :mod:`xai_core.nn.relu_rules`, LRP's residual sums)."""

        def enter(*_: Any) -> None:
            manager.__enter__()

        def leave(*_: Any) -> None:
            manager.__exit__(None, None, None)

        self.forward_pre(module, enter)
        self.forward(module, leave, always_call=True)

    def tensor(self, tensor: torch.Tensor, fn: Callable[..., Any]) -> RemovableHandle:
        return self.add(tensor.register_hook(fn))

    def remove_all(self) -> None:
        while self._handles:
            self._handles.pop().remove()

    def __enter__(self) -> HookRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove_all()


def model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def model_state(model: nn.Module) -> Iterator[torch.device]:
    """Eval mode, frozen parameters and gradients enabled for the block; all restored afterwards.

    Freezing the parameters means a backward pass computes input gradients only, which is what
    every technique here needs. Yields the device the model lives on.
    """
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        with torch.enable_grad():
            yield model_device(model)
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        for m, training in modes:
            m.training = training


def get_module(model: nn.Module, path: str) -> nn.Module:
    """The submodule at ``path`` (``"layer4.1"``, ``"blocks.6"``), with a clear error if absent."""

    if path in ("", "."):
        return model
    names = dict(model.named_modules())
    if path not in names:
        raise UnknownNameError("layer", path, [n for n in names if n])
    return names[path]
