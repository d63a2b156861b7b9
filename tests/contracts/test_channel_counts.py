"""Models of any input channel count through the Python API: the handle's ``in_chans``, every
registered attributor and synthesizer on a 13-band model (those that need RGB refused, naming
it), and inputs whose channel count differs from the model's."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import xai_core
from xai_core.contracts.model import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, as_model_handle
from xai_core.errors import InputError

BANDS = 13
SIZE = 32
#: Parameters that keep the sampling techniques to a fraction of a second at 32 pixels.
FAST = {
    "kernel_shap": {"n_samples": 16, "n_segments": 8},
    "lime": {"n_samples": 16, "n_segments": 8},
    "rise": {"n_masks": 16},
    "noise_tunnel": {"samples": 2},
    "gradient_shap": {"samples": 2},
    "integrated_gradients": {"steps": 8},
    "occlusion": {"window": 8, "stride": 8},
    "class_visualization": {"steps": 2},
    "feature_visualization": {"steps": 2},
    "fooling": {"max_iterations": 2},
    "pgd": {"steps": 2},
}
#: Attributors that read a vision transformer's attention blocks.
ATTENTION = ("attention_rollout", "attention_gradients")


@pytest.fixture(scope="module")
def bands_cnn():
    torch.manual_seed(0)
    return xai_core.load_model(
        "timm/resnet10t", pretrained=False, in_chans=BANDS, num_classes=5
    )


@pytest.fixture(scope="module")
def bands_vit():
    torch.manual_seed(0)
    return xai_core.load_model(
        "timm/vit_tiny_patch16_224", pretrained=False, in_chans=BANDS, num_classes=5,
        img_size=SIZE, patch_size=8, depth=2,
    )


def _technique(name: str, kind):
    return kind(FAST.get(name, {}))


def test_timm_in_chans_gives_the_handle_its_channels_and_grey_statistics():
    handle = xai_core.load_model("timm/resnet18", pretrained=False, in_chans=1)
    assert handle.in_chans == 1
    assert handle.preprocessing.mean == pytest.approx((sum(IMAGENET_MEAN) / 3,))
    assert handle.preprocessing.std == pytest.approx((sum(IMAGENET_STD) / 3,))
    assert handle.module.conv1.in_channels == 1
    saliency = xai_core.get_attributor("saliency")
    maps = saliency.attribute(handle, torch.randn(1, 1, SIZE, SIZE), 0).maps
    assert maps.shape == (1, SIZE, SIZE)
    rgb = xai_core.load_model("timm/resnet10t", pretrained=False)
    assert rgb.in_chans == 3 and rgb.preprocessing.mean == IMAGENET_MEAN


def test_a_plain_module_takes_the_channels_of_its_first_convolution():
    module = nn.Sequential(nn.Conv2d(2, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                           nn.Linear(4, 3))
    handle = as_model_handle(module)
    assert handle.in_chans == 2
    assert len(handle.preprocessing.std) == 2
    x = torch.randn(2, 2, 16, 16)
    assert handle.denormalize(handle.normalize(x)) == pytest.approx(x, abs=1e-6)


def test_preprocessing_needs_one_mean_and_std_per_channel():
    with pytest.raises(ValueError, match="one value per input channel"):
        Preprocessing(mean=(0.5, 0.5), std=(0.5,))


def _attributor_names() -> list[str]:
    return xai_core.list_attributors()


@pytest.mark.parametrize("name", _attributor_names())
def test_every_attributor_explains_a_13_band_model(name, bands_cnn, bands_vit):
    kind = type(xai_core.get_attributor(name))
    method = _technique(name, kind)
    handle = bands_vit if name in ATTENTION else bands_cnn
    x = torch.randn(2, BANDS, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    if kind.requires_rgb:
        with pytest.raises(InputError, match=rf"{name}.*needs RGB.*takes {BANDS} channel"):
            method.attribute(handle, x, 0)
        return
    result = method.attribute(handle, x, [0, 1])
    assert result.maps.shape == (2, SIZE, SIZE)
    assert torch.isfinite(result.maps).all()


@pytest.mark.parametrize("name", xai_core.list_synthesizers())
def test_every_synthesizer_makes_13_band_images_or_refuses_by_name(name, bands_cnn):
    kind = type(xai_core.get_synthesizer(name))
    method = _technique(name, kind)
    images = torch.rand(1, BANDS, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    if kind.requires_rgb:
        with pytest.raises(InputError, match=rf"{name}.*needs RGB.*takes {BANDS} channel"):
            method.synthesize(bands_cnn, [1], images=images)
        return
    result = method.synthesize(bands_cnn, [1], images=images)
    assert result.images.shape[:2] == (1, BANDS)


def test_feature_visualization_declares_rgb():
    """The one technique whose maths is tied to RGB: ImageNet's colour decorrelation."""
    assert type(xai_core.get_synthesizer("feature_visualization")).requires_rgb
    assert not any(
        type(xai_core.get_attributor(name)).requires_rgb for name in _attributor_names()
    )


def test_inputs_of_another_channel_count_name_both(bands_cnn):
    saliency = xai_core.get_attributor("saliency")
    with pytest.raises(InputError, match=rf"have 3 channel.*takes {BANDS}.*\[N,{BANDS},H,W\]"):
        saliency.attribute(bands_cnn, torch.randn(1, 3, SIZE, SIZE), 0)
    metric = xai_core.get_metric("sparseness")
    with pytest.raises(InputError, match=rf"metric inputs have 3 channel.*takes {BANDS}"):
        metric.evaluate(bands_cnn, torch.randn(1, 3, SIZE, SIZE), torch.rand(1, SIZE, SIZE), [0])


@pytest.mark.parametrize("name", xai_core.list_metrics())
def test_every_metric_scores_13_band_maps(name, bands_cnn):
    x = torch.randn(2, BANDS, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    saliency = xai_core.get_attributor("saliency")
    maps = saliency.attribute(bands_cnn, x, [0, 1]).maps
    masks = torch.zeros(2, SIZE, SIZE, dtype=torch.bool)
    masks[:, 8:24, 8:24] = True
    result = xai_core.get_metric(name).evaluate(
        bands_cnn, x, maps, [0, 1], masks=masks, attributor=saliency
    )
    assert result.scores.shape == (2,)
