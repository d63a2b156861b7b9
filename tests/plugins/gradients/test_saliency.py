"""Saliency maps against Captum's Saliency(abs=True) reduced by max over channels."""

from __future__ import annotations

import pytest
import torch
from captum.attr import InputXGradient, Saliency
from numerics import assert_float32_close

import xai_core


def _captum_saliency(module, x, targets):
    grads = Saliency(module).attribute(x.clone().requires_grad_(True), target=targets, abs=True)
    return grads.max(dim=1).values


def test_matches_captum_on_efficientnet_lite0(lite0, sample_batch):
    targets = torch.tensor([282, 967])
    ours = xai_core.get_attributor("saliency").attribute(lite0, sample_batch, targets.tolist())
    reference = _captum_saliency(lite0.module, sample_batch, targets)
    assert ours.maps.shape == (2, 224, 224)
    assert (ours.maps >= 0).all()
    # Captum's gradient back through EfficientNet-Lite0 (~50 layers, a 1280-wide head).
    assert_float32_close(ours.maps, reference, depth=50, fan_in=1280)


def test_matches_captum_on_timm_resnet(tiny_resnet, images64):
    ours = xai_core.get_attributor("saliency").attribute(tiny_resnet, images64, [3, 7])
    reference = _captum_saliency(tiny_resnet.module, images64, torch.tensor([3, 7]))
    # Captum's gradient back through ResNet-10-T (~12 layers, 3x3x512 reductions).
    assert_float32_close(ours.maps, reference, depth=12, fan_in=3 * 3 * 512)


def test_gradient_times_input_signed_sum_matches_captum(tiny_resnet, images64):
    method = xai_core.get_attributor("saliency", abs=False, times_input=True, reduction="sum")
    ours = method.attribute(tiny_resnet, images64, 5)
    reference = InputXGradient(tiny_resnet.module).attribute(
        images64.clone().requires_grad_(True), target=5
    )
    # The gradient back through ResNet-10-T, times the input, summed over 3 channels.
    assert_float32_close(ours.maps, reference.sum(dim=1), depth=12 + 2, fan_in=3 * 3 * 512)
    assert (ours.maps < 0).any(), "signed maps keep negative values"


def test_predicted_target_is_the_argmax(tiny_resnet, images64):
    result = xai_core.get_attributor("saliency").attribute(tiny_resnet, images64)
    with torch.no_grad():
        expected = tiny_resnet.module(images64).argmax(dim=1)
    assert result.targets.tolist() == expected.tolist()


def test_batch_equals_single_items(tiny_resnet, images64):
    method = xai_core.get_attributor("saliency")
    batch = method.attribute(tiny_resnet, images64, [1, 2]).maps
    singles = torch.cat(
        [method.attribute(tiny_resnet, images64[i : i + 1], t).maps for i, t in enumerate([1, 2])]
    )
    # Batched vs one at a time: the gradient back through ResNet-10-T in another order.
    assert_float32_close(batch, singles, depth=12, fan_in=3 * 3 * 512)


@pytest.mark.parametrize("reduction", ["max", "sum", "mean", "l2"])
def test_every_reduction_gives_one_map_per_item(tiny_resnet, images64, reduction):
    result = xai_core.get_attributor("saliency", reduction=reduction).attribute(
        tiny_resnet, images64, 0
    )
    assert result.maps.shape == (2, 64, 64)
    assert torch.isfinite(result.maps).all()
