"""LRP as a modified gradient: forward hooks put each layer's rule into the autograd graph, so
that one ordinary backward pass from the target logit propagates relevance (zennit's approach;
Montavon et al. 2019, section 10.2.3).

A layer's forward hook replaces its output with an equal tensor whose backward is the layer's
rule: it receives the relevance of the output and returns the relevance of the input, so the
"gradient" reaching the model's input is the input's relevance. The model's forward pass runs
unchanged; the hooks go away with the attributor's ``context.hooks`` and the merged batch-norm
weights exist only in the autograd graph of the call, so the model is left exactly as found.

What does not live here: the rules (:mod:`.rules`), which layer gets which (:mod:`.composites`),
batch-norm merging and residual sums (:mod:`.canonize`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from xai_core.errors import InputError
from xai_core.nn.hooks import HookRecorder

from .canonize import merged_parameters, residual_sum_hooks
from .composites import LayerPlan
from .rules import AFFINE_RULES, AffineLayer, RuleSettings, stabilize

__all__ = ["attach_rules"]

Backward = Callable[[Tensor, Tensor, Tensor], Tensor]


class _LayerRelevance(torch.autograd.Function):
    """The layer's output ``out`` (a copy), with ``rule(x, out, relevance)`` as its backward to
    the layer's input ``x``."""

    @staticmethod
    def forward(ctx, x: Tensor, out: Tensor, rule: Backward) -> Tensor:
        ctx.save_for_backward(x, out)
        ctx.rule = rule
        # A copy: the next layer may be an in-place ReLU, which must not overwrite ``out``.
        return out.clone()

    @staticmethod
    def backward(ctx, relevance: Tensor) -> tuple[Tensor | None, ...]:
        x, out = ctx.saved_tensors
        return ctx.rule(x, out, relevance), None, None


def _with_rule(x: Any, out: Any, rule: Backward) -> Tensor | None:
    """``out`` carrying ``rule``, or ``None`` (keep the output) where no relevance flows."""
    if not (isinstance(x, Tensor) and isinstance(out, Tensor) and x.requires_grad):
        return None
    return _LayerRelevance.apply(x, out.detach(), rule)


def _affine_rule(layer: AffineLayer, name: str, settings: RuleSettings) -> Backward:
    rule = AFFINE_RULES[name]

    def backward(x: Tensor, out: Tensor, relevance: Tensor) -> Tensor:
        return rule(layer, x, out, relevance, settings)

    return backward


def _pass(x: Tensor, out: Tensor, relevance: Tensor) -> Tensor:
    return relevance


def _norm_rule(module: nn.Module, stabilizer: float) -> Backward:
    """zennit's ``Norm``: each output's relevance shared in proportion to its inputs."""

    def backward(x: Tensor, out: Tensor, relevance: Tensor) -> Tensor:
        with torch.enable_grad():
            probe = x.detach().requires_grad_(True)
            # ``forward``, not ``__call__``: the module's own hooks must not run again.
            pooled = module.forward(probe)
            (grad,) = torch.autograd.grad(pooled, probe, relevance / stabilize(out, stabilizer))
        return x * grad

    return backward


def _check_same_shape(name: str, x: Tensor, out: Tensor) -> None:
    if x.shape != out.shape:
        raise InputError(
            f"lrp: layer {name!r} has the rule 'pass', but its output {tuple(out.shape)} is not "
            f"shaped like its input {tuple(x.shape)}; give it a rule for its layer type or "
            "remove it from layer_rules"
        )


def attach_rules(
    model: nn.Module, plan: LayerPlan, settings: RuleSettings, hooks: HookRecorder
) -> None:
    """Register the hooks that make a backward pass through ``model`` propagate relevance by
    ``plan``; they are removed with ``hooks``."""
    modules = dict(model.named_modules())
    merged_into = {layer: norm for norm, layer in plan.merged.items()}
    # The input and output of each layer whose batch norm is still to come, by layer path.
    pending: dict[str, tuple[Tensor, Tensor]] = {}

    for name, rule in plan.rules.items():
        module = modules[name]
        if rule in AFFINE_RULES and name in merged_into:
            hooks.forward(module, _remember(name, pending))
        elif rule in AFFINE_RULES:
            layer = AffineLayer(module, module.weight, module.bias)
            hooks.forward(module, _apply(_affine_rule(layer, rule, settings)))
        elif rule == "pass":
            _attach_pass(name, module, hooks)
        else:
            hooks.forward(module, _apply(_norm_rule(module, settings.stabilizer)))

    for norm_name, layer_name in plan.merged.items():
        norm, layer = modules[norm_name], modules[layer_name]
        weight, bias = merged_parameters(layer, norm)
        merged = AffineLayer(layer, weight, bias)
        backward = _affine_rule(merged, plan.rules[layer_name], settings)
        hooks.forward(norm, _merged(norm_name, layer_name, pending, backward))

    residual_sum_hooks(model, hooks, settings.stabilizer)


def _apply(rule: Backward) -> Callable[..., Tensor | None]:
    def hook(_module: nn.Module, args: tuple, out: Any) -> Tensor | None:
        return _with_rule(args[0] if args else None, out, rule)

    return hook


def _remember(name: str, pending: dict[str, tuple[Tensor, Tensor]]) -> Callable[..., None]:
    def hook(_module: nn.Module, args: tuple, out: Any) -> None:
        if args and isinstance(args[0], Tensor):
            pending[name] = (args[0], out)

    return hook


def _merged(
    norm_name: str, layer_name: str, pending: dict[str, tuple[Tensor, Tensor]], rule: Backward
) -> Callable[..., Tensor | None]:
    def hook(_module: nn.Module, args: tuple, out: Any) -> Tensor | None:
        x, layer_out = pending.pop(layer_name, (None, None))
        if layer_out is None or not args or args[0] is not layer_out:
            raise InputError(
                f"lrp: batch norm {norm_name!r} follows {layer_name!r} among the model's modules "
                f"but does not take its output in the forward pass, so the two cannot be merged; "
                f"set layer_rules: {{{norm_name!r}: pass}} to pass relevance through it instead"
            )
        return _with_rule(x, out, rule)

    return hook


def _attach_pass(name: str, module: nn.Module, hooks: HookRecorder) -> None:
    """Relevance passes the layer unchanged. An in-place layer (ReLU(inplace=True)) gets a copy
    of its input to work on, so that the input it passes relevance to stays intact."""
    inputs: list[Tensor] = []

    def before(_module: nn.Module, args: tuple) -> tuple | None:
        if not (args and isinstance(args[0], Tensor) and args[0].requires_grad):
            inputs.append(None)
            return None
        inputs.append(args[0])
        if getattr(module, "inplace", False):
            return (args[0].clone(), *args[1:])
        return None

    def after(_module: nn.Module, args: tuple, out: Any) -> Tensor | None:
        x = inputs.pop()
        if x is None or not isinstance(out, Tensor):
            return None
        _check_same_shape(name, x, out)
        return _with_rule(x, out, _pass)

    hooks.forward_pre(module, before)
    hooks.forward(module, after)
