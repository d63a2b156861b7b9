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
#: float64's machine epsilon (2**-52).
EPS64 = float(torch.finfo(torch.float64).eps)


def _array(values) -> np.ndarray:
    """``values`` as a NumPy array; tensors that track gradients are detached first."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu()
    return np.asarray(values)


def _atol(eps: float, reference, depth: int, fan_in: int, safety: float) -> float:
    largest = float(np.abs(_array(reference).astype(np.float64)).max())
    return safety * eps * depth * math.sqrt(fan_in) * largest


def float32_atol(reference, depth: int, fan_in: int = 1, safety: float = 4.0) -> float:
    """The absolute tolerance for two float32 computations of ``reference`` through ``depth``
    layers whose widest reduction sums ``fan_in`` terms."""
    return _atol(EPS32, reference, depth, fan_in, safety)


def float64_atol(reference, depth: int, fan_in: int = 1, safety: float = 4.0) -> float:
    """The same bound as :func:`float32_atol` for two float64 computations of ``reference``:
    ``safety * EPS64 * depth * sqrt(fan_in) * max|reference|``."""
    return _atol(EPS64, reference, depth, fan_in, safety)


def assert_float32_close(actual, reference, depth: int, fan_in: int = 1) -> None:
    """``actual`` equals ``reference`` within :func:`float32_atol`.

    An all-zero ``reference`` asks for exact zeros: right where the zeros come from a clamp
    (a CAM's ReLU, a map normalised by a zero maximum), which rounds to exactly zero on any
    machine; compare anything else against a reference that is not all zero."""
    atol = float32_atol(reference, depth, fan_in)
    np.testing.assert_allclose(_array(actual), _array(reference), rtol=0, atol=atol)


#: What a map stored as float16 (xai_core.io.write_array) keeps: values are divided by a power
#: of two that brings the largest magnitude into [0.5, 1], where float16's spacing is 2**-11 at
#: most; rounding to the nearest is off by half of it times the scale (at most twice the
#: largest magnitude), so by at most 2**-11 of the largest magnitude.
FLOAT16_STORED = 2.0**-11


def assert_stored_close(stored, reference, depth: int, fan_in: int = 1) -> None:
    """``stored`` (a map read back from float16 storage) equals ``reference`` within the
    float32 bound of :func:`assert_float32_close` plus float16's rounding of the stored map."""
    reference = _array(reference)
    atol = float32_atol(reference, depth, fan_in) + FLOAT16_STORED * float(
        np.abs(reference).max()
    )
    np.testing.assert_allclose(_array(stored), reference, rtol=0, atol=atol)
