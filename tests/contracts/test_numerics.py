"""The float32 tolerance of ``tests/numerics.py`` holds for reordered sums and catches errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numerics import assert_float32_close, float32_atol, float64_atol

import xai_core


@pytest.mark.parametrize("threads", [1, 2])
def test_batch_composition_and_threads_stay_within_the_float32_bound(threads):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        handle = xai_core.load_model("timm/resnet10t", pretrained=False)
        x = torch.randn(3, 3, 64, 64)
        saliency = xai_core.get_attributor("saliency")
        together = saliency.attribute(handle, x, target=[1, 2, 3]).maps.numpy()
        alone = np.stack([saliency.attribute(handle, x[i:i + 1], target=[i + 1]).maps[0].numpy()
                          for i in range(3)])
    finally:
        torch.set_num_threads(before)
    assert_float32_close(alone, together, depth=12, fan_in=3 * 3 * 512)
    # The bound is tight enough to catch a real difference: one part in a thousand fails it.
    with pytest.raises(AssertionError):
        assert_float32_close(together * (1 + 1e-3), together, depth=12, fan_in=3 * 3 * 512)


def test_the_tolerance_is_relative_to_the_largest_magnitude():
    assert float32_atol([0.0, -2.0, 1.0], depth=1) == pytest.approx(4 * 2.0 * 2.0**-23)
    assert float32_atol([1.0], depth=3, fan_in=16) == pytest.approx(4 * 3 * 4 * 2.0**-23)


def test_the_float64_tolerance_uses_float64_eps_the_same_way():
    assert float64_atol([1.0, -3.0], depth=2, fan_in=9) == pytest.approx(4 * 2 * 3 * 3.0 * 2.0**-52)


def test_tensors_that_track_gradients_are_compared_as_their_values():
    leaf = torch.ones(3, requires_grad=True)
    assert_float32_close(leaf * 2, torch.full((3,), 2.0), depth=1)
