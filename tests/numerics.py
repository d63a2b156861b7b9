"""Tolerances for comparing float32 computations, derived from what float32 promises.

Two float32 computations of the same quantity that sum in another order (another batch
composition, thread count or kernel) may differ by a few units of float32 rounding per addition
along the way. Each layer of a network adds roughly ``eps * sqrt(fan_in)`` of relative error
(rounding errors of a dot product of ``fan_in`` terms add up like a random walk), and the layers
compound additively, so the difference stays within

    ``safety * eps * depth * sqrt(fan_in) * max|reference|``

relative to the largest magnitude of the result, never to each element (elements near zero
carry the absolute error of the whole computation).
"""

from __future__ import annotations

import math

import numpy as np
import torch

#: float32's machine epsilon (2**-23).
EPS32 = float(torch.finfo(torch.float32).eps)


def float32_atol(reference, depth: int, fan_in: int = 1, safety: float = 4.0) -> float:
    """The absolute tolerance for two float32 computations of ``reference`` through ``depth``
    layers whose widest reduction sums ``fan_in`` terms."""
    largest = float(np.abs(np.asarray(reference, dtype=np.float64)).max())
    return safety * EPS32 * depth * math.sqrt(fan_in) * largest


def assert_float32_close(actual, reference, depth: int, fan_in: int = 1) -> None:
    """``actual`` equals ``reference`` within :func:`float32_atol`."""
    atol = float32_atol(reference, depth, fan_in)
    np.testing.assert_allclose(np.asarray(actual), np.asarray(reference), rtol=0, atol=atol)
