"""The interpretable models of ``lime`` and ``kernel_shap``: weighted linear fits in torch.

Each fit takes the binary samples ``[n, M]`` (1 keeps a superpixel), the model's scores ``[n, k]``
(one column per target, all fitted at once) and the sample weights ``[n]``, fits an intercept, and
returns the coefficients ``[M, k]``. The objectives are scikit-learn's with ``sample_weight``
(the models Captum's ``SkLearnLinearRegression``, ``SkLearnRidge`` and ``SkLearnLasso`` wrap),
so the same data give the same coefficients without scikit-learn at run time:

* ``linear``: ``min sum_i w_i r_i^2``, the minimum-norm solution where the samples do not
  determine it (``LinearRegression``; Kernel SHAP's fit);
* ``ridge``: ``min sum_i w_i r_i^2 + alpha |b|_2^2`` (``Ridge``);
* ``lasso``: ``min sum_i w_i r_i^2 / (2 sum_i w_i) + alpha |b|_1`` (``Lasso``; Captum's default
  for LIME with ``alpha = 0.01``).

The intercept is not penalized: every fit first centres samples and scores on their weighted
means, as scikit-learn does. Fits run in float64 (Kernel SHAP's weights span six orders of
magnitude).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["SURROGATES", "fit_surrogate", "lasso", "least_squares", "ridge"]

#: The interpretable models :func:`fit_surrogate` fits.
SURROGATES = ("lasso", "ridge", "linear")


def fit_surrogate(
    samples: Tensor, scores: Tensor, weights: Tensor, surrogate: str = "lasso", alpha: float = 0.01
) -> Tensor:
    """Coefficients ``[M, k]`` of the weighted ``surrogate`` fit of ``scores`` ``[n, k]`` on
    ``samples`` ``[n, M]`` with ``weights`` ``[n]`` (float64, on the samples' device).

    :param surrogate: ``lasso``, ``ridge`` or ``linear`` (see the module documentation).
    :param alpha: the penalty of ``lasso`` and ``ridge`` (unused by ``linear``).
    """
    x, y, w = _centred(samples, scores, weights)
    if surrogate == "linear":
        return least_squares(x, y, w)
    if surrogate == "ridge":
        return ridge(x, y, w, alpha)
    if surrogate == "lasso":
        return lasso(x, y, w, alpha)
    raise ValueError(f"unknown surrogate {surrogate!r}; use one of {SURROGATES}")


def _centred(samples: Tensor, scores: Tensor, weights: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Samples and scores minus their weighted means, and the weights, all float64: the
    intercept then drops out of every fit."""
    w = weights.double()
    if not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError("surrogate fit: sample weights must be finite, non-negative, not all 0")
    x, y = samples.double(), scores.double()
    share = (w / w.sum())[:, None]
    return x - (share * x).sum(0), y - (share * y).sum(0), w


def least_squares(x: Tensor, y: Tensor, w: Tensor) -> Tensor:
    """Weighted least squares on centred data: the minimum-norm minimiser (pseudo-inverse, as
    LAPACK's ``gelsd`` in scikit-learn's ``LinearRegression``)."""
    root = w.sqrt()[:, None]
    return torch.linalg.pinv(root * x) @ (root * y)


def ridge(x: Tensor, y: Tensor, w: Tensor, alpha: float) -> Tensor:
    """Weighted ridge on centred data: ``(X^T W X + alpha I) b = X^T W y``."""
    gram = x.T @ (w[:, None] * x)
    eye = torch.eye(len(gram), dtype=gram.dtype, device=gram.device)
    return torch.linalg.solve(gram + alpha * eye, x.T @ (w[:, None] * y))


def lasso(
    x: Tensor,
    y: Tensor,
    w: Tensor,
    alpha: float,
    max_iterations: int = 20000,
    check_every: int = 25,
) -> Tensor:
    """Weighted lasso on centred data, solved to float64 precision.

    With ``G = X^T W X / sum(w)`` and ``c = X^T W y / sum(w)`` the objective is
    ``b^T G b / 2 - c^T b + alpha |b|_1`` (plus a constant). Accelerated proximal gradient
    (FISTA: every target at once, one small matrix product per step) finds the signs of the
    solution; every ``check_every`` steps each target's candidate is made exact by solving the
    optimality conditions on its non-zero coefficients, ``G_AA b_A = c_A - alpha sign(b_A)``,
    and kept once it meets them all (the signs hold and ``|c_j - G_j b| <= alpha`` for the zeros).
    Coordinate descent, scikit-learn's solver, stops at a tolerance instead; both converge to
    the same minimiser. A target whose conditions are still unmet after ``max_iterations``
    keeps the last iterate.
    """
    total = w.sum()
    gram = x.T @ (w[:, None] * x) / total
    corr = x.T @ (w[:, None] * y) / total
    features, targets = corr.shape
    coef = torch.zeros_like(corr)
    lipschitz = float(torch.linalg.eigvalsh(gram).max()) if features else 0.0
    if lipschitz <= 0:
        return coef  # every sample equal: nothing to explain
    step, threshold = 1.0 / lipschitz, alpha / lipschitz
    exact: list[Tensor | None] = [None] * targets
    point, momentum = coef.clone(), 1.0
    for iteration in range(1, max_iterations + 1):
        moved = point - step * (gram @ point - corr)
        following = moved.sign() * (moved.abs() - threshold).clamp_min(0)
        accelerated = (1 + (1 + 4 * momentum**2) ** 0.5) / 2
        point = following + ((momentum - 1) / accelerated) * (following - coef)
        coef, momentum = following, accelerated
        if iteration % check_every == 0:
            for j in range(targets):
                if exact[j] is None:
                    exact[j] = _exact_lasso(gram, corr[:, j], coef[:, j], alpha)
            if all(e is not None for e in exact):
                break
    return torch.stack([e if e is not None else coef[:, j] for j, e in enumerate(exact)], dim=1)


def _exact_lasso(gram: Tensor, corr: Tensor, guess: Tensor, alpha: float) -> Tensor | None:
    """The lasso minimiser with the support and signs of ``guess``, or ``None`` when ``guess``
    does not have the minimiser's support and signs."""
    active = guess != 0
    signs = guess.sign()[active]
    solution = torch.zeros_like(guess)
    if active.any():
        block = gram[active][:, active]
        target = (corr[active] - alpha * signs)[:, None]
        solution[active] = torch.linalg.lstsq(block, target).solution[:, 0]
        if not torch.equal(solution[active].sign(), signs):
            return None
    gradient = corr - gram @ solution
    slack = 1e-9 * max(1.0, float(corr.abs().max()))
    # Optimal: the gradient is alpha * sign on the support (lstsq may miss it where the block
    # is singular) and at most alpha in size elsewhere.
    if (gradient[active] - alpha * signs).abs().gt(slack).any():
        return None
    if gradient[~active].abs().gt(alpha + slack).any():
        return None
    return solution
