"""DeepLIFT's rescale rule as a backward rule on a paired batch: :func:`rescale_rule` and
:func:`deeplift_gradients`.

DeepLIFT (Shrikumar, Greenside, Kundaje 2017) runs the inputs and their references through the
network together, as one batch ``cat([x, x_ref])``, and back-propagates *multipliers* instead of
gradients: every nonlinearity ``y = f(x)`` passes back ``dy/dx ~ (f(x) - f(x_ref)) / (x -
x_ref)`` (the rescale rule), falling back to the gradient where ``|x - x_ref| < eps``; linear
layers pass back their gradient. The multipliers then add up to ``f(x) - f(x_ref)`` exactly on a
network of linear layers and elementwise nonlinearities (summation-to-delta). Ancona et al. 2018
(arXiv:1711.06104) show this is a modified gradient, which is how Captum and this module compute
it.

The rule is a torch function mode (as :mod:`xai_core.nn.relu_rules`): each call of a
nonlinearity in the forward pass becomes an autograd node of its own carrying the rule, so a
module used twice in one forward pass (torchvision's ResNet blocks call one ``nn.ReLU`` twice) and
functional activations (``F.relu``, ``x.sigmoid()``) are handled like any other call. Captum puts
the rule in module hooks instead, which fail on a reused module and never see functional
activations. Forward values are the original calls', bit for bit; an ``inplace=True`` call
(``nn.ReLU(inplace=True)``) returns a new tensor and leaves its input as it was, as Captum's hooks
do, while the in-place methods called for their effect (``x.relu_()``) still write back. The
multiplier of each activation is computed in the forward pass and kept instead of its input
(half the memory of Captum's copies of input and output), so its backward pass is one product.

Two rule sets (:data:`RULE_SETS`):

* ``all``: every elementwise activation of :data:`ELEMENTWISE` (ReLU, ReLU6 and hardtanh, leaky
  ReLU, ELU, SELU, CELU, GELU, SiLU, Mish, hardswish, hardsigmoid, sigmoid, tanh, softplus,
  log-sigmoid, softsign), as module or function, and max pooling (1-3 d) with Captum's rule,
  except that where pooling windows overlap (ResNet's 3x3 stride-2 pool) a position chosen by
  several windows receives the *sum* of their contributions, which keeps summation-to-delta.
* ``captum``: Captum's ``DeepLift`` exactly: only modules whose type is one of
  :data:`CAPTUM_MODULES` follow the rule, overlapping pooling windows overwrite one another (its
  ``max_unpool``), a rule module whose input is the very output tensor of another (a ReLU then a
  max pool, as in VGG and ResNet) passes its plain gradient (Captum's hooks on the shared tensor
  run in registration order, so the first module reads its output gradient before the second
  module's rule replaces it), and everything else, ReLU6, SiLU, GELU, hardswish and all functional
  activations included, passes its plain gradient, so summation-to-delta fails on networks built
  from those (EfficientNet-Lite's ReLU6, MobileNetV3's hardswish).

Deliberate differences from Captum in both: ``nn.Softmax`` passes its plain gradient (Captum's
rule subtracts the mean of the multipliers over the whole batch, so an item's attribution would
depend on the other items); where a max pool's input equals its reference (within ``eps``) each
row falls back to its own gradient (Captum uses the first row's for all); and a nonlinearity
whose input also feeds other layers (a pre-activation residual) gets the rule on its own branch
only (Captum's input-tensor hook would replace the summed gradient of every branch).

Other nonlinear operations (products such as squeeze-and-excitation gating, softmax, layer norm,
adaptive max pooling) pass their plain gradient in both rule sets, as in Captum; the
summation-to-delta gap reported by the attributors shows how far that takes a network from the
rule.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from xai_core.nn.gradients import class_scores, model_input
from xai_core.nn.hooks import HookRecorder

__all__ = [
    "CAPTUM_MODULES",
    "ELEMENTWISE",
    "RULE_SETS",
    "deeplift_gradients",
    "rescale_rule",
]

#: ``all``: the rescale rule on every elementwise activation and max pooling; ``captum``: only on
#: Captum's modules, with Captum's pooling rule (see the module docstring).
RULE_SETS = ("all", "captum")

#: The module types Captum's ``DeepLift`` applies the rule to (``SUPPORTED_NON_LINEAR`` less
#: ``nn.Softmax``, see the module docstring).
CAPTUM_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ELU,
    nn.LeakyReLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softplus,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
)

# function -> (its out-of-place form, position of its ``inplace`` argument, or -1: always in
# place, or None: never).
_FUNCTIONS: dict[Callable[..., Any], tuple[Callable[..., Any], int | None]] = {
    F.relu: (F.relu, 1),
    torch.relu: (torch.relu, None),
    Tensor.relu: (torch.relu, None),
    torch.relu_: (torch.relu, -1),
    Tensor.relu_: (torch.relu, -1),
    F.relu6: (F.relu6, 1),
    F.hardtanh: (F.hardtanh, 3),
    F.hardtanh_: (F.hardtanh, -1),
    F.leaky_relu: (F.leaky_relu, 2),
    F.leaky_relu_: (F.leaky_relu, -1),
    F.elu: (F.elu, 2),
    F.elu_: (F.elu, -1),
    F.selu: (F.selu, 1),
    F.celu: (F.celu, 2),
    F.gelu: (F.gelu, None),
    F.silu: (F.silu, 1),
    F.mish: (F.mish, 1),
    F.hardswish: (F.hardswish, 1),
    F.hardsigmoid: (F.hardsigmoid, 1),
    F.softplus: (F.softplus, None),
    F.logsigmoid: (F.logsigmoid, None),
    F.softsign: (F.softsign, None),
    torch.sigmoid: (torch.sigmoid, None),
    Tensor.sigmoid: (torch.sigmoid, None),
    Tensor.sigmoid_: (torch.sigmoid, -1),
    torch.tanh: (torch.tanh, None),
    Tensor.tanh: (torch.tanh, None),
    Tensor.tanh_: (torch.tanh, -1),
}

#: The elementwise functions the ``all`` rule set rewrites (``nn`` activation modules call these).
ELEMENTWISE = tuple(_FUNCTIONS)

# max pooling: function -> (pooling with indices, unpooling, spatial dimensions)
_POOLS: dict[Callable[..., Any], tuple[Callable[..., Any], Callable[..., Any], int]] = {
    F.max_pool1d: (F.max_pool1d_with_indices, F.max_unpool1d, 1),
    F.max_pool2d: (F.max_pool2d_with_indices, F.max_unpool2d, 2),
    F.max_pool3d: (F.max_pool3d_with_indices, F.max_unpool3d, 3),
}
_POOL_ARGS = (
    "input",
    "kernel_size",
    "stride",
    "padding",
    "dilation",
    "ceil_mode",
    "return_indices",
)


def _halves(x: Tensor) -> tuple[Tensor, Tensor]:
    n = x.shape[0]
    if n % 2:
        raise RuntimeError(
            f"DeepLIFT: a nonlinearity saw a batch of {n} rows; the rescale rule needs inputs "
            "and references stacked in dimension 0 of every activation (models that move the "
            "batch dimension are not supported)"
        )
    return x[: n // 2], x[n // 2 :]


class _RescaleElementwise(torch.autograd.Function):
    """``f(x)`` forward; backward ``g * (f(x) - f(x_ref)) / (x - x_ref)`` on both halves of the
    batch, ``g * f'(x)`` where ``|x - x_ref| < eps``."""

    @staticmethod
    def forward(ctx, x: Tensor, fn: Callable[[Tensor], Tensor], write_back: bool, eps: float):
        out = fn(x)
        x_in, x_ref = _halves(x)
        out_in, out_ref = _halves(out)
        delta_in = x_in - x_ref
        # The multiplier is computed here, once for both halves, and kept instead of the
        # input: half the memory, and the backward pass is one product.
        multiplier = (out_in - out_ref).div_(delta_in)
        small = delta_in.abs_() < eps
        if bool(small.any()):
            # Dead channels (a filter of zeros) give many exact ties in pretrained networks.
            with torch.enable_grad():
                leaf = x_in.detach().requires_grad_(True)
                (slope,) = torch.autograd.grad(fn(leaf).sum(), leaf)
            multiplier = torch.where(small, slope, multiplier)
        ctx.save_for_backward(multiplier)
        if write_back:
            x.copy_(out)
            ctx.mark_dirty(x)
            return x
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        (multiplier,) = ctx.saved_tensors
        n = len(multiplier)
        result = torch.empty_like(grad)
        torch.mul(grad[:n], multiplier, out=result[:n])
        torch.mul(grad[n:], multiplier, out=result[n:])
        return result, None, None, None


class _RescaleMaxPool(torch.autograd.Function):
    """Max pooling forward; backward: each window's output difference ``y - y_ref`` goes to the
    argmax of whichever of input and reference has the larger maximum, divided by that
    position's ``x - x_ref`` (Captum's rule); plain gradient where ``|x - x_ref| < eps``."""

    @staticmethod
    def forward(ctx, x: Tensor, pool: Callable, unpool: Callable, bound: dict, captum: bool, eps):
        out, indices = pool(
            x, bound["kernel_size"], bound["stride"], bound["padding"], bound["dilation"],
            bound["ceil_mode"], True,
        )  # fmt: skip
        ctx.unpool, ctx.bound, ctx.captum, ctx.eps = unpool, bound, captum, eps
        ctx.save_for_backward(x.detach(), out.detach(), indices)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, out, indices = ctx.saved_tensors
        x_in, x_ref = _halves(x)
        out_in, out_ref = _halves(out)
        delta_in = x_in - x_ref
        larger = torch.maximum(out_in, out_ref)
        contributions = grad * torch.cat([larger - out_ref, out_in - larger])
        scattered = _scatter(ctx, contributions, indices, x)
        n = len(x_in)
        # The same multiplier for both halves, as Captum's ``cat(2 * [...])``.
        new = ((scattered[:n] + scattered[n:]) / delta_in).expand(2, *delta_in.shape)
        small = delta_in.abs() < ctx.eps
        if bool(small.any()):
            plain = _scatter_add(grad, indices, x).unflatten(0, (2, -1))
            new = torch.where(small, plain, new)
        return new.reshape(x.shape), None, None, None, None, None


def _scatter_add(values: Tensor, indices: Tensor, like: Tensor) -> Tensor:
    """``values`` added at ``indices`` (flat per channel, as pooling returns them) into zeros
    shaped ``like``: a position chosen by several windows gets their sum."""
    flat = torch.zeros(
        *like.shape[:2], like[0, 0].numel(), dtype=values.dtype, device=values.device
    )
    flat.scatter_add_(2, indices.flatten(2), values.flatten(2))
    return flat.view(like.shape)


def _scatter(ctx: Any, values: Tensor, indices: Tensor, like: Tensor) -> Tensor:
    if not ctx.captum:
        return _scatter_add(values, indices, like)
    b = ctx.bound
    # Captum's max_unpool, on NCHW tensors: where windows overlap, one write wins.
    return ctx.unpool(
        values.contiguous(), indices.contiguous(), b["kernel_size"], b["stride"], b["padding"],
        list(like.shape),
    )  # fmt: skip


class _RescaleMode(TorchFunctionMode):
    def __init__(self, rules: str, eps: float):
        super().__init__()
        if rules not in RULE_SETS:
            raise ValueError(
                f"unknown DeepLIFT rule set {rules!r}; use one of {', '.join(RULE_SETS)}"
            )
        self.captum = rules == "captum"
        self.eps = eps
        # With ``captum``, the rule applies only inside a Captum module's call (module hooks
        # raise and lower this count), and ``produced`` holds those calls' outputs.
        self.inside = 0
        self.produced: dict[int, weakref.ref[Tensor]] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.captum and not self.inside:
            return func(*args, **kwargs)
        if func in _FUNCTIONS:
            x = args[0] if args else kwargs.get("input")
            rule = self._elementwise
        elif func in _POOLS:
            x = args[0] if args else kwargs.get("input")
            rule = self._max_pool
        else:
            return func(*args, **kwargs)
        if not (isinstance(x, Tensor) and torch.is_grad_enabled() and x.requires_grad):
            return func(*args, **kwargs)
        known = self.produced.get(id(x))
        if self.captum and known is not None and known() is x:
            # Captum reads a module's output gradient in a hook on its output tensor; when
            # that tensor is the next rule module's input (a ReLU then a max pool), the next
            # module's hook on the same tensor runs later and its rule never reaches the first.
            out = func(*args, **kwargs)
        else:
            out = rule(func, x, args, kwargs)
        if self.captum:
            self.produced[id(out)] = weakref.ref(out)
        return out

    def _elementwise(self, func: Callable, x: Tensor, args: tuple, kwargs: dict) -> Tensor:
        plain, position = _FUNCTIONS[func]
        rest = list(args[1:])
        options = {k: v for k, v in kwargs.items() if k not in ("input", "inplace")}
        if position is not None and position > 0 and len(args) > position:
            rest = rest[: position - 1] + rest[position:]

        def fn(t: Tensor) -> Tensor:
            return plain(t, *rest, **options)

        # An ``inplace=True`` call (``nn.ReLU(inplace=True)``) returns a new tensor and leaves its
        # input as it was, as Captum's hooks do; only the in-place methods (``x.relu_()``),
        # called for their effect, write back.
        return _RescaleElementwise.apply(x, fn, position == -1, self.eps)

    def _max_pool(self, func: Callable, x: Tensor, args: tuple, kwargs: dict) -> Tensor:
        given = {**dict(zip(_POOL_ARGS, args)), **kwargs}
        if given.get("return_indices"):
            return func(*args, **kwargs)
        pool, unpool, _ = _POOLS[func]
        bound = {
            "kernel_size": given["kernel_size"],
            "stride": given.get("stride") or given["kernel_size"],
            "padding": given.get("padding", 0),
            "dilation": given.get("dilation", 1),
            "ceil_mode": given.get("ceil_mode", False),
        }
        return _RescaleMaxPool.apply(x, pool, unpool, bound, self.captum, self.eps)


def rescale_rule(
    model: nn.Module, hooks: HookRecorder, rules: str = "all", eps: float = 1e-10
) -> contextlib.AbstractContextManager:
    """A context manager (reusable): inside it, forward passes of ``model`` on a batch
    ``cat([x, x_ref])`` build a graph whose backward pass gives DeepLIFT multipliers (rescale
    rule, rule set ``rules`` of :data:`RULE_SETS`) instead of gradients. Only the forward pass
    has to run inside; nothing on the model changes.

    :param hooks: with ``rules="captum"``, the forward hooks that mark Captum's modules are
        registered here (an attributor's ``context.hooks``) and go away with it.
    :param eps: where ``|x - x_ref|`` is below this, the plain gradient is used (Captum's
        default, 1e-10).
    """
    mode = _RescaleMode(rules, eps)
    if mode.captum:

        def enter(*_: Any) -> None:
            mode.inside += 1

        def leave(*_: Any) -> None:
            mode.inside -= 1

        for module in model.modules():
            if type(module) in CAPTUM_MODULES:
                hooks.forward_pre(module, enter)
                # always_call: the count comes down even when the forward pass raises.
                hooks.forward(module, leave, always_call=True)
    return mode


def deeplift_gradients(
    model: nn.Module,
    inputs: Tensor,
    baselines: Tensor,
    targets: Tensor,
    rule: contextlib.AbstractContextManager,
    channels_last: bool = True,
) -> tuple[Tensor, Tensor]:
    """DeepLIFT multipliers of each item's target score with respect to its input,
    ``[N, C, H, W]``, and the score differences ``F(x) - F(x_ref)``, ``[N]``: one forward pass
    of ``cat([inputs, baselines])`` under ``rule`` (from :func:`rescale_rule`) and one backward
    pass. Captum's ``DeepLift`` is this times ``inputs - baselines``.

    As in Captum, both halves' target scores are back-propagated: the max pooling rule mixes the
    two halves' multipliers.
    """
    n = len(inputs)
    x = model_input(torch.cat([inputs, baselines.to(inputs)]), channels_last)
    with rule:
        scores = class_scores(model(x), targets.repeat(2))
    (grad,) = torch.autograd.grad(scores.sum(), x)
    return grad[:n].contiguous(), (scores[:n] - scores[n:]).detach()
