"""Integrated gradients (Sundararajan, Taly, Yan 2017, "Axiomatic Attribution for Deep
Networks", ICML, arXiv:1703.01365): ``(x - b) * integral_0^1 grad F(b + a (x - b)) da`` per
channel, with Captum's integration rules and a completeness check in the metadata.

With ``steps: auto`` the number of points is chosen per image: the path is integrated on nested
grids (:func:`auto_points`), doubling an image's points until its completeness gap is below a
tolerance. Every gradient already taken is reused by the next grid, and the gap is exact at no
extra cost (the score difference is known), so the stopping rule measures the error it bounds.

Baselines come from the shared vocabulary (:mod:`xai_core.nn.images`, subset
:data:`IG_BASELINES`) or a file or tensor given by the user.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from xai_core import AttributionContext
from xai_core.contracts.params import setting
from xai_core.errors import ConfigError
from xai_core.families.gradient import ReferenceAttributor
from xai_core.nn.gradients import channels_last_layout, class_scores, input_gradients
from xai_core.nn.images import REFERENCE_BASELINES

__all__ = [
    "AUTO_FIRST_STEPS",
    "IG_BASELINES",
    "IG_METHODS",
    "IntegratedGradients",
    "auto_points",
    "nested_path_gradients",
    "path_gradients",
    "quadrature",
]

#: Integration rules, named as Captum names them. ``riemann_trapezoid`` is the trapezoid rule
#: proper (weights ``1/(steps-1)``, halved at both ends, summing to 1), so it integrates a linear
#: path exactly; Captum's rule of that name weights by ``1/steps`` (summing to ``(steps-1)/steps``),
#: so its maps are ``(steps-1)/steps`` of these: 2% smaller at 50 steps, on any model.
IG_METHODS = (
    "gausslegendre",
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "riemann_trapezoid",
)

#: The named baselines of :data:`xai_core.nn.images.BASELINES` a path may start from: ``black``
#: pixels, ``zeros`` in normalized space, the input under a Gaussian ``blur`` of ``blur_sigma``
#: pixels, one ``uniform`` noise image (from ``seed``).
IG_BASELINES = REFERENCE_BASELINES

#: Points of the first grid of ``steps: auto`` (fewer when ``max_steps`` is smaller); each
#: further grid doubles them.
AUTO_FIRST_STEPS = 16


def quadrature(method: str, steps: int) -> tuple[Tensor, Tensor]:
    """Points ``alpha_k`` in ``[0, 1]`` and weights ``w_k`` of ``method`` with ``steps`` points:
    ``integral_0^1 f(a) da ~ sum_k w_k f(alpha_k)``. Both float32 ``[steps]``."""
    n = steps
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n)
        alphas, weights = torch.from_numpy(0.5 * (1 + nodes)), torch.from_numpy(0.5 * weights)
    elif method in IG_METHODS:
        if n < 2:
            raise ConfigError(f"integrated gradients with {method} needs steps >= 2, not {n}")
        ends = {
            "riemann_left": (0, 1 - 1 / n),
            "riemann_right": (1 / n, 1),
            "riemann_middle": (1 / (2 * n), 1 - 1 / (2 * n)),
            "riemann_trapezoid": (0, 1),
        }[method]
        alphas = torch.linspace(*ends, n)
        weights = torch.full((n,), 1 / n, dtype=torch.float64)
        if method == "riemann_trapezoid":
            weights = torch.full((n,), 1 / (n - 1), dtype=torch.float64)
            weights[[0, -1]] /= 2
    else:
        raise ConfigError(
            f"unknown integration method {method!r}; use one of {', '.join(IG_METHODS)}"
        )
    return alphas.float(), weights.float()


def auto_points(steps: int, new_only: bool = False) -> tuple[Tensor, Tensor]:
    """Points ``alpha_k`` and weights ``w_k`` of the rule of ``steps: auto`` with ``steps``
    points (a power of two), float32 ``[steps]``; ``new_only``: the points of ``steps`` that
    ``steps / 2`` lacks.

    The rule is the trapezoid rule in ``t`` after the substitution
    ``alpha = 1 - cos(pi t / 2)``: points ``alpha(k / steps)``, ``k = 1..steps``, weights
    ``alpha'(t) / steps`` (halved at ``t = 1``). Why this rule:

    * it is nested: the grid of ``2 n`` points holds the ``n`` points of the last one, and its
      sum is half the last sum plus the ``new_only`` terms (the trapezoid rule's halving), so
      doubling costs only the new points and no gradient has to be kept;
    * the weight at the baseline (``t = 0``) is zero, so the baseline's gradient is never needed
      and ``n`` points are ``n`` passes (``steps`` up to ``max_steps`` exactly);
    * points crowd near the baseline (spacing ``~ 1/steps**2`` there, ``~ 1.6/steps`` at the
      input), where a class score typically changes fastest along the path (saturation: most of
      ``F(x) - F(b)`` is gained early); Gauss-Legendre crowds both ends but is not nested.
    """
    n = steps
    k = torch.arange(1, n + 1, dtype=torch.float64)
    if new_only:
        k = k[::2]  # odd k: the points between those of the last grid
    t = k / n
    alphas = 1 - torch.cos(torch.pi * t / 2)
    weights = torch.pi / 2 * torch.sin(torch.pi * t / 2) / n
    if not new_only:
        weights[-1] /= 2
    return alphas.float(), weights.float()


def _weighted_gradient_sum(
    model: nn.Module,
    baselines: Tensor,
    delta: Tensor,
    targets: Tensor,
    rows: tuple[Tensor, Tensor, Tensor],
    batch_size: int,
    channels_last: bool,
) -> Tensor:
    """``sum_r w_r * grad F(b_i + alpha_r (x_i - b_i))`` per item ``i`` over ``rows``, given as
    (item, alpha, weight) per row, ``batch_size`` rows per forward/backward pass."""
    items, alphas, weights = rows
    total = torch.zeros_like(delta)
    for start in range(0, len(items), batch_size):
        item = items[start : start + batch_size]
        alpha = alphas[start : start + batch_size].view(-1, 1, 1, 1)
        points = baselines[item] + alpha * delta[item]
        grads = input_gradients(model, points, targets[item], channels_last)
        total.index_add_(0, item, grads * weights[start : start + batch_size].view(-1, 1, 1, 1))
    return total


def path_gradients(
    model: nn.Module,
    inputs: Tensor,
    baselines: Tensor,
    targets: Tensor,
    alphas: Tensor,
    weights: Tensor,
    batch_size: int,
    channels_last: bool = True,
) -> Tensor:
    """``sum_k w_k * grad F_target(b + alpha_k (x - b))`` per item, ``[N, C, H, W]``.

    The ``steps x N`` path points are built and differentiated ``batch_size`` at a time
    (step-major, as Captum orders them), so memory is bounded by ``batch_size`` whatever the
    number of steps.
    """
    n = inputs.shape[0]
    row = torch.arange(len(alphas) * n, device=inputs.device)
    step, item = row // n, row % n
    rows = (item, alphas[step], weights[step])
    return _weighted_gradient_sum(
        model, baselines, inputs - baselines, targets, rows, batch_size, channels_last
    )


def nested_path_gradients(
    model: nn.Module,
    inputs: Tensor,
    baselines: Tensor,
    targets: Tensor,
    difference: Tensor,
    tolerance: float,
    max_steps: int,
    batch_size: int,
    channels_last: bool = True,
) -> tuple[Tensor, Tensor]:
    """The path gradients of ``steps: auto``: ``(sum, steps)``, the weighted gradient sum
    ``[N, C, H, W]`` of each item's last grid of :func:`auto_points` and the points it used
    ``[N]``.

    Every item starts with :data:`AUTO_FIRST_STEPS` points and doubles them until its
    completeness gap ``|sum((x - b) * sum) - difference|`` is at most ``tolerance *
    |difference|`` or doubling would pass ``max_steps``. The items still refining share batches.
    """
    n = len(inputs)
    delta = inputs - baselines
    total = torch.zeros_like(inputs)
    steps = torch.zeros(n, dtype=torch.long)
    first = min(AUTO_FIRST_STEPS, 1 << (max_steps.bit_length() - 1))
    budget = tolerance * difference.abs()
    active = torch.arange(n, device=inputs.device)
    level = first
    while len(active):
        alphas, weights = (t.to(inputs.device) for t in auto_points(level, level > first))
        rows = (
            active.repeat(len(alphas)),
            alphas.repeat_interleave(len(active)),
            weights.repeat_interleave(len(active)),
        )
        if level > first:
            total[active] = total[active] / 2
        total += _weighted_gradient_sum(
            model, baselines, delta, targets, rows, batch_size, channels_last
        )
        steps[active.cpu()] = level
        gap = (delta[active] * total[active]).sum(dim=(1, 2, 3)) - difference[active]
        if 2 * level > max_steps:
            break
        active = active[gap.abs() > budget[active]]
        level *= 2
    return total, steps


def _target_scores(
    model: nn.Module, inputs: Tensor, targets: Tensor, batch_size: int, channels_last: bool
) -> Tensor:
    with torch.no_grad():
        return torch.cat(
            [
                class_scores(
                    model(channels_last_layout(inputs[i : i + batch_size], channels_last)),
                    targets[i : i + batch_size],
                )
                for i in range(0, len(inputs), batch_size)
            ]
        )


class IntegratedGradients(ReferenceAttributor):
    """Integrated gradients: ``(x - b) * integral_0^1 grad F(b + a (x - b)) da`` per channel.

    The map is the sum over channels by default, so it adds up to ``F(x) - F(b)`` up to the
    integration error; ``metadata`` reports, per item (row), ``score_difference``,
    ``completeness_gap`` (sum of the attributions minus the score difference) and
    ``completeness_gap_relative`` (the gap over ``|score difference|``).

    ``steps: auto`` integrates with the nested rule of :func:`auto_points` (``method`` is not
    used) and doubles each item's points until ``completeness_gap_relative`` is at most
    ``tolerance`` or ``max_steps`` would be passed; ``metadata`` then also has, per item,
    ``steps_used``, ``tolerance_met`` and ``title_note`` (what a figure title should say where
    the tolerance was not met, else ``None``).

    ``baseline`` is one of :data:`IG_BASELINES` or a ``.npy``/``.pt`` file with a normalized tensor
    ``[C, H, W]``, ``[1, C, H, W]`` or one per input ``[N, C, H, W]``. From Python, a tensor of
    those shapes may be given directly: ``IntegratedGradients(baseline=tensor)``.
    """

    name = "integrated_gradients"
    summary = "path integral of input gradients from a baseline (signed, sum over channels)"
    paper = "Sundararajan, Taly, Yan 2017, arXiv:1703.01365"

    @dataclass
    class Params(ReferenceAttributor.Params):
        #: Number of points on the path from the baseline to the input (at least 2), or
        #: ``auto``: per image, as many as reach ``tolerance`` (see the class doc).
        steps: int | str = 50
        #: Integration rule: Gauss-Legendre or a Riemann sum (Captum's names; our
        #: ``riemann_trapezoid`` is the true trapezoid rule, whose weights sum to 1, where
        #: Captum's sum to ``(steps-1)/steps``). Not used by ``steps: auto``, which has a nested
        #: rule of its own.
        method: str = field(default="gausslegendre", metadata={"choices": IG_METHODS})
        #: ``steps: auto`` stops refining an image once its completeness gap is at most this
        #: fraction of the size of its score difference ``F(x) - F(b)``.
        tolerance: float = field(default=0.01, metadata={"min_exclusive": 0})
        #: ``steps: auto`` uses at most this many points per image (powers of two: 16, 32, ...).
        max_steps: int = field(default=1024, metadata={"min": 1})
        #: Path points per forward/backward pass: bounds memory, not results.
        batch_size: int = setting(16, min=1)

        #: Values that break each rule of :meth:`check` (for the registry-wide rule test).
        violations: ClassVar[tuple[dict[str, Any], ...]] = (
            {"steps": 1}, {"steps": 1, "method": "riemann_trapezoid"}, {"steps": "many"},
        )

        def check(self) -> Iterator[tuple[str, str]]:
            if self.steps == "auto":
                return
            if not isinstance(self.steps, int) or isinstance(self.steps, bool):
                yield "steps", f'steps must be a positive integer or "auto", got {self.steps!r}'
            elif self.steps < 2:
                # One point is no path: on a real network steps: 1 missed completeness by 268%.
                yield "steps", (
                    f"{self.method} needs steps >= 2, not {self.steps}: one point cannot follow "
                    "the path from the baseline (its map misses the score difference by far)"
                )

    def input_attributions(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        p = self.params
        baselines = self.baselines(inputs, context)
        n = len(inputs)
        scores = _target_scores(
            model, torch.cat([inputs, baselines]), targets.repeat(2), p.batch_size, p.channels_last
        )
        difference = scores[:n] - scores[n:]
        if p.steps == "auto":
            grads, steps = nested_path_gradients(
                model, inputs, baselines, targets, difference, p.tolerance, p.max_steps,
                p.batch_size, p.channels_last,
            )
        else:
            alphas, weights = (t.to(inputs.device) for t in quadrature(p.method, p.steps))
            grads = path_gradients(
                model, inputs, baselines, targets, alphas, weights, p.batch_size, p.channels_last
            )
        attributions = (inputs - baselines) * grads
        gap = attributions.sum(dim=(1, 2, 3)) - difference
        relative = gap.abs() / difference.abs()
        context.metadata.update(
            score_difference=difference.tolist(),
            completeness_gap=gap.tolist(),
            completeness_gap_relative=relative.tolist(),
        )
        if p.steps == "auto":
            met = (gap.abs() <= p.tolerance * difference.abs()).tolist()
            context.metadata.update(
                steps_used=steps.tolist(),
                tolerance_met=met,
                title_note=[
                    None
                    if ok
                    else f"IG gap {100 * float(r):.3g}% > tolerance {100 * p.tolerance:.3g}% "
                    f"at {int(s)} steps"
                    for ok, r, s in zip(met, relative, steps)
                ],
            )
        return attributions


