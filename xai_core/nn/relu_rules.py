"""ReLU backward rules for input gradients: guided backpropagation and deconvnet.

A rule changes only how gradients pass back through ReLUs (and clipped ReLUs such as ReLU6); the
forward pass is the original call, bit for bit. The rule is a torch function mode, so no module of
the model is replaced or flagged, and it sees functional ReLUs (``F.relu``, ``torch.relu``) that
Captum's module hooks miss. Public API:

* :data:`RELU_RULES`: the rule names, ``guided`` and ``deconvnet``.
* :func:`guided_relu(rule="guided", relu6=True) <guided_relu>`: a context manager; every ReLU that
  runs inside it with gradients follows ``rule`` in the backward pass.
* :func:`guided_relu_hooks(model, hooks, rule="guided", relu6=True) <guided_relu_hooks>`: the
  same for every forward pass of ``model`` while an attributor's ``context.hooks`` is open.
* :func:`relu_rule_gradients(model, inputs, targets, rule="guided", relu6=True,
  channels_last=True) <relu_rule_gradients>` ``-> [N, C, H, W]``: the input gradient of each
  item's target logit under ``rule``, one forward and one backward pass.

Built-in users: the ``guided_backprop`` and ``deconvnet`` attributors and guided Grad-CAM, which
import it from here rather than from each other. What does not live here: plain input gradients
and channel reductions (:mod:`xai_core.nn.gradients`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from xai_core.nn.gradients import class_scores, model_input
from xai_core.nn.hooks import HookRecorder

#: Backward rules for ReLUs: ``guided`` (Springenberg et al. 2015) passes a gradient only where it
#: is positive *and* the forward input was positive; ``deconvnet`` (Zeiler and Fergus 2014) passes
#: it where it is positive, whatever the forward input was.
RELU_RULES = ("guided", "deconvnet")


class _RuleRelu(torch.autograd.Function):
    """A ReLU (or clipped ReLU such as ReLU6) whose forward is the original call, bit for bit, and
    whose backward applies one of :data:`RELU_RULES`."""

    @staticmethod
    def forward(
        ctx, x: Tensor, call: Callable[[], Tensor], upper: float | None, inplace: bool, rule: str
    ) -> Tensor:
        out = call()
        if inplace:
            ctx.mark_dirty(x)
        ctx.rule, ctx.upper = rule, upper
        if rule == "guided":
            ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        if ctx.rule == "guided":
            (out,) = ctx.saved_tensors
            # The output is positive (and below the clip) exactly where the input was, so the
            # native backward kernels give the forward mask; they return a new tensor, which
            # is then clamped in place.
            if ctx.upper is None:
                grad = torch.ops.aten.threshold_backward(grad, out, 0)
            else:
                grad = torch.ops.aten.hardtanh_backward(grad, out, 0.0, ctx.upper)
            return grad.clamp_(min=0), None, None, None, None
        return grad.clamp(min=0), None, None, None, None


def _relu_call(func: Any, args: tuple, kwargs: dict, relu6: bool):
    """``(input, upper, inplace)`` when ``func(*args, **kwargs)`` is a (clipped) ReLU, else None."""
    if func in (F.relu, torch.relu, torch.Tensor.relu):
        inplace = kwargs.get("inplace", args[1] if len(args) > 1 else False)
        return args[0], None, bool(inplace)
    if func in (torch.relu_, torch.Tensor.relu_):
        return args[0], None, True
    if not relu6:
        return None
    if func is F.relu6:
        inplace = kwargs.get("inplace", args[1] if len(args) > 1 else False)
        return args[0], 6.0, bool(inplace)
    if func in (F.hardtanh, F.hardtanh_):
        names = ("input", "min_val", "max_val", "inplace")
        defaults = {"min_val": -1.0, "max_val": 1.0, "inplace": func is F.hardtanh_}
        bound = {**defaults, **dict(zip(names, args)), **kwargs}
        if bound["min_val"] == 0 and bound["max_val"] > 0:
            return bound["input"], float(bound["max_val"]), bool(bound["inplace"])
    return None


class _ReluRuleMode(TorchFunctionMode):
    def __init__(self, rule: str, relu6: bool):
        super().__init__()
        if rule not in RELU_RULES:
            raise ValueError(f"unknown ReLU rule {rule!r}; use one of {', '.join(RELU_RULES)}")
        self.rule, self.relu6 = rule, relu6

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        found = _relu_call(func, args, kwargs, self.relu6)
        if found is None or not (torch.is_grad_enabled() and found[0].requires_grad):
            return func(*args, **kwargs)
        x, upper, inplace = found
        return _RuleRelu.apply(x, lambda: func(*args, **kwargs), upper, inplace, self.rule)


def guided_relu(rule: str = "guided", relu6: bool = True) -> contextlib.AbstractContextManager:
    """Context manager: inside it, every ReLU that runs with gradients gets ``rule``'s backward.

    Covers ``nn.ReLU`` modules (in-place or not, also one module used several times, as in
    torchvision's ResNet), ``torch.nn.functional.relu``/``relu_``, ``torch.relu`` and
    ``Tensor.relu`` (torchvision's DenseNet and Inception call these directly), and with
    ``relu6=True`` also clipped ReLUs: ``nn.ReLU6``, ``F.relu6`` and ``F.hardtanh`` with a lower
    bound of 0 (EfficientNet-Lite, MobileNetV2). Captum's ``GuidedBackprop`` only sees
    ``nn.ReLU`` modules; ``relu6=False`` restricts the rule to ReLUs proper.

    Nothing on the model changes: the rule is a torch function mode, so forward values are
    bit-identical to a plain pass, the graph built inside the block carries the rule, and no hook
    or flag remains afterwards. Only the *forward* pass has to run inside the block; ``backward``
    may be called after it.

    :param rule: one of :data:`RELU_RULES`.
    :param relu6: treat clipped ReLUs as ReLUs too.
    """
    return _ReluRuleMode(rule, relu6)


def guided_relu_hooks(
    model: nn.Module, hooks: HookRecorder, rule: str = "guided", relu6: bool = True
) -> None:
    """Apply :func:`guided_relu` to every forward pass of ``model`` while ``hooks`` is open.

    For techniques that receive a :class:`~xai_core.nn.hooks.HookRecorder` (an attributor's
    ``context.hooks``): after this call, any ``model(x)`` builds a graph whose ReLUs follow
    ``rule``; the hooks go away with ``hooks``, leaving the model as it was. Guided Grad-CAM::

        guided_relu_hooks(model, context.hooks)
        grads = input_gradients(model, inputs, targets)   # guided backprop gradients
    """
    hooks.during_forward(model, guided_relu(rule, relu6))


def relu_rule_gradients(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    rule: str = "guided",
    relu6: bool = True,
    channels_last: bool = True,
) -> Tensor:
    """Gradient of each item's target logit w.r.t. its input, ReLUs following ``rule``:
    ``[N, C, H, W]``. One forward and one backward pass for the whole batch
    (``channels_last``: see :func:`xai_core.nn.gradients.model_input`)."""
    x = model_input(inputs, channels_last)
    with guided_relu(rule, relu6):
        scores = class_scores(model(x), targets)
    (grad,) = torch.autograd.grad(scores.sum(), x)
    return grad.contiguous()
