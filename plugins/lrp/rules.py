"""The LRP rules: how one affine layer (a convolution or linear layer, with a batch norm merged
into it or not) hands the relevance of its outputs back to its inputs.

Each rule is a function ``rule(layer, x, z, relevance, params) -> input relevance``, where ``x``
is the layer's input, ``z`` its output in the forward pass and ``relevance`` the relevance of
``z`` (the same shape). The formulas are those of zennit's ``zennit.rules`` (Montavon et al.
2019, "Layer-wise relevance propagation: an overview"), so that attributions agree with it:

* ``epsilon``: ``x * W^T (R / (z + eps sign z))`` (LRP-0 for ``epsilon = 0``);
* ``zplus``: positive weights on positive inputs (and negative on negative), positive biases;
* ``alpha_beta``: ``alpha`` times the positive contributions minus ``beta`` times the negative;
* ``gamma``: positive (negative) contributions raised by ``gamma`` for positive (negative)
  outputs (the generalised rule of Andeol et al. 2021, as in zennit);
* ``flat``: every input of a window gets an equal share, whatever its value or weight;
* ``zbox``: the first layer's rule for inputs bounded by ``low <= x <= high`` (pixel bounds);
* ``pass``: the relevance passes unchanged (shape-preserving layers only).

Where zennit runs a modified copy of the layer forward and backward for each term (two to five
of them), a rule here reuses the forward pass's output ``z`` and, when every input is
non-negative (every layer after a ReLU), drops the terms of negative inputs, which are exactly
zero, and stacks the remaining weights into one convolution and one transposed convolution.
The results are the same to float rounding; that is where most of the speed comes from.

What does not live here: which layer gets which rule (:mod:`.composites`), batch-norm merging
and residual sums (:mod:`.canonize`), the autograd plumbing (:mod:`.propagation`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "AFFINE_RULES",
    "RULES",
    "AffineLayer",
    "RuleSettings",
    "stabilize",
]


def stabilize(z: Tensor, eps: float) -> Tensor:
    """``z`` moved away from zero by ``eps`` (``+eps`` for ``z >= 0``, ``-eps`` below), the
    denominator of every rule; zennit's ``stabilize`` with its defaults."""
    return z + torch.where(z >= 0, eps, -eps)


@dataclass(frozen=True)
class RuleSettings:
    """The numbers the rules take, from the attributor's parameters."""

    epsilon: float = 1e-6
    stabilizer: float = 1e-6
    gamma: float = 0.25
    alpha: float = 2.0
    beta: float = 1.0
    #: Lowest and highest input values (``[1, C, 1, 1]``) for ``zbox``.
    low: Tensor | None = None
    high: Tensor | None = None


@dataclass
class AffineLayer:
    """An affine map ``z = W x + b`` as the rules see it: a ``Conv2d`` or ``Linear`` module's
    geometry with its weight and bias, which are merged with a following batch norm or not."""

    module: nn.Module
    weight: Tensor
    bias: Tensor | None

    def forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """The layer's map with other weights: ``weight x + bias``."""
        m = self.module
        if isinstance(m, nn.Conv2d):
            return F.conv2d(x, weight, bias, m.stride, m.padding, m.dilation, m.groups)
        return F.linear(x, weight, bias)

    def transposed(self, x: Tensor, weight: Tensor, grad: Tensor) -> Tensor:
        """``weight^T grad``: the gradient of ``<grad, weight x>`` with respect to ``x`` (the
        transposed convolution for a ``Conv2d``), without a forward pass where it can."""
        m = self.module
        if not isinstance(m, nn.Conv2d):
            return grad.matmul(weight)
        if isinstance(m.padding, str):  # "same"/"valid": let autograd work out the padding
            with torch.enable_grad():
                probe = torch.zeros_like(x).requires_grad_(True)
                out = F.conv2d(probe, weight, None, m.stride, m.padding, m.dilation, m.groups)
                return torch.autograd.grad(out, probe, grad)[0]
        return torch.ops.aten.convolution_backward(
            grad, x, weight, None, m.stride, m.padding, m.dilation, False, [0, 0], m.groups,
            [True, False, False],
        )[0]

    def pair(
        self, build: Callable[[Tensor, Any, Tensor | None], Tensor], weights: tuple[Any, Any]
    ) -> WeightPair:
        """Two modified weights, ``build(w, arg, buffer)`` for each of the two ``weights``
        arguments, written side by side into one
        tensor so that they run as one layer with twice the outputs (not for grouped
        convolutions, whose groups would mix)."""
        w = self.weight
        if isinstance(self.module, nn.Conv2d) and self.module.groups != 1:
            return WeightPair(self, None, tuple(build(w, arg, None) for arg in weights))
        both = w.new_empty((2 * w.shape[0], *w.shape[1:]))
        halves = both.chunk(2)
        for half, arg in zip(halves, weights):
            build(w, arg, half)
        return WeightPair(self, both, halves)


@dataclass
class WeightPair:
    """Two weights of one layer, stacked along the outputs where the layer allows it."""

    layer: AffineLayer
    stacked: Tensor | None
    weights: tuple[Tensor, ...]

    def forward(self, x: Tensor, biases: tuple[Tensor | None, Tensor | None]) -> tuple[Tensor, ...]:
        """``(w0 x + b0, w1 x + b1)``, as one pass when stacked."""
        if self.stacked is None:
            return tuple(self.layer.forward(x, w, b) for w, b in zip(self.weights, biases))
        bias = None
        if biases[0] is not None or biases[1] is not None:
            bias = torch.cat([_or_zeros(b, w) for b, w in zip(biases, self.weights)])
        return self.layer.forward(x, self.stacked, bias).chunk(2, dim=1)

    def transposed(self, x: Tensor, grads: tuple[Tensor, Tensor]) -> Tensor:
        """``w0^T g0 + w1^T g1``, as one pass when stacked."""
        if self.stacked is None:
            w0, w1 = self.weights
            return self.layer.transposed(x, w0, grads[0]) + self.layer.transposed(x, w1, grads[1])
        return self.layer.transposed(x, self.stacked, torch.cat(grads, dim=1))


def _or_zeros(bias: Tensor | None, weight: Tensor) -> Tensor:
    return bias if bias is not None else weight.new_zeros(weight.shape[0])


def _clamp(t: Tensor | None, positive: bool) -> Tensor | None:
    if t is None:
        return None
    return t.clamp(min=0) if positive else t.clamp(max=0)


def _non_negative(x: Tensor) -> bool:
    return not bool((x < 0).any())


Rule = Callable[[AffineLayer, Tensor, Tensor, Tensor, RuleSettings], Tensor]


def epsilon(layer: AffineLayer, x: Tensor, z: Tensor, r: Tensor, s: RuleSettings) -> Tensor:
    return x * layer.transposed(x, layer.weight, r / stabilize(z, s.epsilon))


def zplus(layer: AffineLayer, x: Tensor, z: Tensor, r: Tensor, s: RuleSettings) -> Tensor:
    w, b = layer.weight, layer.bias
    wp, bp = w.clamp(min=0), _clamp(b, True)
    if _non_negative(x):  # after a ReLU: the negative inputs' terms are exactly zero
        g = r / stabilize(layer.forward(x, wp, bp), s.stabilizer)
        return x * layer.transposed(x, wp, g)
    xp, xn, wn = x.clamp(min=0), x.clamp(max=0), w.clamp(max=0)
    g = r / stabilize(layer.forward(xp, wp, bp) + layer.forward(xn, wn, None), s.stabilizer)
    return xp * layer.transposed(x, wp, g) + xn * layer.transposed(x, wn, g)


def _clamped(w: Tensor, positive: bool, out: Tensor | None) -> Tensor:
    return torch.clamp(w, min=0, out=out) if positive else torch.clamp(w, max=0, out=out)


def _boosted(gamma: float) -> Callable[[Tensor, bool, Tensor | None], Tensor]:
    """``w + gamma * w+`` (or ``w-``), written into ``out``."""

    def build(w: Tensor, positive: bool, out: Tensor | None) -> Tensor:
        part = w.clamp(min=0) if positive else w.clamp(max=0)
        return torch.add(w, part, alpha=gamma, out=out) if out is not None else w + gamma * part

    return build


def alpha_beta(layer: AffineLayer, x: Tensor, z: Tensor, r: Tensor, s: RuleSettings) -> Tensor:
    w, b = layer.weight, layer.bias
    bp, bn = _clamp(b, True), _clamp(b, False)
    if _non_negative(x):
        pair = layer.pair(_clamped, (True, False))
        zp, zn = pair.forward(x, (bp, bn))
        gp = r * s.alpha / stabilize(zp, s.stabilizer)
        gn = r * -s.beta / stabilize(zn, s.stabilizer)
        return x * pair.transposed(x, (gp, gn))
    wp, wn = w.clamp(min=0), w.clamp(max=0)
    xp, xn = x.clamp(min=0), x.clamp(max=0)
    zp = layer.forward(xp, wp, bp) + layer.forward(xn, wn, None)
    zn = layer.forward(xp, wn, bn) + layer.forward(xn, wp, None)
    gp, gn = r / stabilize(zp, s.stabilizer), r / stabilize(zn, s.stabilizer)
    positive = xp * layer.transposed(x, wp, gp) + xn * layer.transposed(x, wn, gp)
    negative = xp * layer.transposed(x, wn, gn) + xn * layer.transposed(x, wp, gn)
    return s.alpha * positive - s.beta * negative


def gamma(layer: AffineLayer, x: Tensor, z: Tensor, r: Tensor, s: RuleSettings) -> Tensor:
    w, b, g = layer.weight, layer.bias, s.gamma
    # Positive (negative) contributions raised by gamma, for positive (negative) outputs.
    boost = _boosted(g)
    bu = None if b is None else boost(b, True, None)
    bd = None if b is None else boost(b, False, None)
    up, down = r * (z > 0), r * (z < 0)
    if _non_negative(x):
        pair = layer.pair(boost, (True, False))
        zu, zd = pair.forward(x, (bu, bd))
        gu, gd = up / stabilize(zu, s.stabilizer), down / stabilize(zd, s.stabilizer)
        return x * pair.transposed(x, (gu, gd))
    wu, wd = boost(w, True, None), boost(w, False, None)
    xp, xn = x.clamp(min=0), x.clamp(max=0)
    gu = up / stabilize(layer.forward(xp, wu, bu) + layer.forward(xn, wd, None), s.stabilizer)
    gd = down / stabilize(layer.forward(xp, wd, bd) + layer.forward(xn, wu, None), s.stabilizer)
    return (
        xp * layer.transposed(x, wu, gu)
        + xn * layer.transposed(x, wd, gu)
        + xp * layer.transposed(x, wd, gd)
        + xn * layer.transposed(x, wu, gd)
    )


def flat(layer: AffineLayer, x: Tensor, z: Tensor, r: Tensor, s: RuleSettings) -> Tensor:
    ones = torch.ones_like(layer.weight)
    count = layer.forward(torch.ones_like(x), ones, None)  # inputs in each output's window
    return layer.transposed(x, ones, r / stabilize(count, s.stabilizer))


def zbox(layer: AffineLayer, x: Tensor, z: Tensor, r: Tensor, s: RuleSettings) -> Tensor:
    if s.low is None or s.high is None:
        raise ValueError("the zbox rule needs the input bounds low and high")
    w = layer.weight
    wp, wn = w.clamp(min=0), w.clamp(max=0)
    low, high = s.low.to(x).expand_as(x), s.high.to(x).expand_as(x)
    # The biases cancel: b - b+ - b- = 0.
    denominator = layer.forward(x, w, None) - layer.forward(low, wp, None)
    denominator = denominator - layer.forward(high, wn, None)
    g = r / stabilize(denominator, s.stabilizer)
    return (
        x * layer.transposed(x, w, g)
        - low * layer.transposed(x, wp, g)
        - high * layer.transposed(x, wn, g)
    )


#: The rules for convolutions and linear layers, by name.
AFFINE_RULES: dict[str, Rule] = {
    "epsilon": epsilon,
    "zplus": zplus,
    "alpha_beta": alpha_beta,
    "gamma": gamma,
    "flat": flat,
    "zbox": zbox,
}

#: Every rule name ``layer_rules`` accepts: :data:`AFFINE_RULES` and ``pass`` (the relevance of
#: a shape-preserving layer's output goes to its input unchanged, as zennit does for
#: activations and, unmerged, batch norms).
RULES: tuple[str, ...] = (*AFFINE_RULES, "pass")

