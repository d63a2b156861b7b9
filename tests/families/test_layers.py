"""Target-layer discovery and grid layouts (xai_core/layers.py).

The automatic layer is checked on small random-weight variants of many timm families, at small
inputs where the architecture allows it, so the whole file runs in well under a minute.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import xai_core
from xai_core.errors import UnknownNameError, XaiError
from xai_core.nn.layers import LayerLayout, auto_layer, find_target_layer, infer_layout, list_layers

#: (timm architecture, create_model options, input side, the layer `auto` should pick).
#: The expected layer is the last one with spatial resolution that the head reads position by
#: position: a CNN's last stage (or its post-stage norm/conv), a ViT's last `norm1` when the class
#: token is the output (its later patch tokens are never read), the final token/NHWC norm when
#: the head averages tokens (Mixer, ResMLP, Swin).
FAMILIES = [
    ("resnet10t", {}, 64, "layer4"),
    ("tf_efficientnet_lite0", {}, 64, "bn2"),
    ("mobilenetv3_small_050", {}, 64, "blocks"),
    ("convnext_atto", {}, 64, "stages"),
    ("regnetx_002", {}, 64, "s4"),
    ("repvgg_a0", {}, 64, "stages"),
    ("pvt_v2_b0", {}, 64, "stages"),
    ("mobilevitv2_050", {}, 64, "stages"),
    ("vit_tiny_patch16_224", {"img_size": 64}, 64, "blocks.11.norm1"),
    ("deit_tiny_distilled_patch16_224", {"img_size": 64}, 64, "blocks.11.norm1"),
    ("pit_ti_224", {"img_size": 64}, 64, "transformers.2.blocks.3.norm1"),
    ("mixer_s32_224", {"img_size": 64}, 64, "norm"),
    ("resmlp_12_224", {"img_size": 64}, 64, "norm"),
    ("swin_tiny_patch4_window7_224", {"img_size": 64, "window_size": 2}, 64, "norm"),
]


def _timm(arch: str, options: dict) -> nn.Module:
    import timm

    torch.manual_seed(0)
    return timm.create_model(arch, pretrained=False, **options).eval()


@pytest.mark.parametrize(
    ("arch", "options", "side", "expected"), FAMILIES, ids=[f[0] for f in FAMILIES]
)
def test_auto_layer_is_sensible_and_reported(arch, options, side, expected):
    import timm

    assert arch in timm.list_models()
    model = _timm(arch, options)
    assert auto_layer(model, (side, side)) == expected
    inputs = torch.randn(1, 3, side, side)
    result = xai_core.get_attributor("grad_cam").attribute(model, inputs, 3)
    assert result.metadata["layer"] == expected
    assert result.metadata["layer_auto"] is True
    assert result.maps.shape == (1, side, side)
    assert torch.isfinite(result.maps).all()


def test_auto_layer_is_cached_per_model_and_size(monkeypatch):
    from xai_core.nn import layers

    model = _timm("resnet10t", {})
    calls = []
    real = layers._trace_auto_layer
    monkeypatch.setattr(
        layers, "_trace_auto_layer", lambda m, hw: calls.append(hw) or real(m, hw)
    )
    for _ in range(3):
        assert auto_layer(model, (64, 64)) == "layer4"
    auto_layer(model, (96, 96))
    assert calls == [(64, 64), (96, 96)]


def test_handle_last_conv_block_delegates_to_auto_layer():
    handle = xai_core.load_model("timm/vit_tiny_patch16_224", pretrained=False)
    assert handle.last_conv_block() == "blocks.11.norm1"


def test_auto_layer_without_spatial_layers_is_a_clear_error():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    with pytest.raises(XaiError, match="no layer with a spatial output"):
        auto_layer(model, (8, 8))


def test_unknown_layer_names_close_matches():
    model = _timm("resnet10t", {})
    with pytest.raises(UnknownNameError, match="did you mean.*'layer4'"):
        find_target_layer(model, "layer5")


def test_explicit_layer_is_not_auto():
    model = _timm("resnet10t", {})
    found = find_target_layer(model, "layer3")
    assert (found.path, found.auto, found.module) == ("layer3", False, model.layer3)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((2, 64, 7, 7), LayerLayout("NCHW", (7, 7))),
        ((2, 7, 7, 768), LayerLayout("NHWC", (7, 7))),
        ((2, 64, 7, 10), LayerLayout("NCHW", (7, 10))),
        ((2, 197, 192), LayerLayout("tokens", (14, 14), 1)),
        ((2, 198, 192), LayerLayout("tokens", (14, 14), 2)),
        ((2, 196, 192), LayerLayout("tokens", (14, 14), 0)),
        ((2, 64, 1, 1), None),
        ((2, 1000), None),
        ((2, 3, 197, 64), None),
    ],
)
def test_infer_layout(shape, expected):
    assert infer_layout(torch.zeros(shape), (224, 224) if shape[-1] != 10 else (224, 320)) == (
        expected
    )


def test_declared_prefix_tokens_win_over_guessing():
    class WithRegisters(nn.Module):
        num_prefix_tokens = 5

    # 5 + 196 tokens; without the declaration the fewest-prefix guess would not find 14x14.
    layout = infer_layout(torch.zeros(1, 201, 8), (224, 224), WithRegisters())
    assert layout == LayerLayout("tokens", (14, 14), 5)


def test_to_grid_puts_patch_tokens_in_raster_order():
    grid = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    tokens = grid.flatten(2).transpose(1, 2)  # [2, 20, 3], raster order
    with_cls = torch.cat([torch.full((2, 1, 3), -1.0), tokens], dim=1)
    assert torch.equal(LayerLayout("tokens", (4, 5), 1).to_grid(with_cls), grid)
    assert torch.equal(LayerLayout("NHWC", (4, 5)).to_grid(grid.permute(0, 2, 3, 1)), grid)
    assert LayerLayout("tokens", (4, 5), 1).describe() == "tokens 4x5 (+1 prefix)"


#: (torchvision architecture, input side, the layer `auto` should pick); built with defaults.
#: SqueezeNet's `classifier.1` (1x1 convolution to 1000 class-score maps) and VGG's / AlexNet's
#: `avgpool` (an adaptive pooling that stretches a 4x4 map to 7x7 at 128 pixels) were picked
#: before; the last feature map of the backbone is `features` for all three. The others are as
#: before (timm's ConvNeXt, EfficientNet, MobileNetV3, RegNet, ViT and MobileViT are in
#: FAMILIES above; torchvision's ConvNeXt and EfficientNet also give `features`).
TORCHVISION = [
    ("squeezenet1_1", 128, "features"),
    ("vgg11_bn", 128, "features"),
    ("alexnet", 128, "features"),
    ("resnet18", 64, "layer4"),
    ("densenet121", 64, "features"),
    ("mobilenet_v3_small", 64, "features"),
    ("regnet_y_400mf", 64, "trunk_output"),
    ("shufflenet_v2_x0_5", 64, "conv5"),
]


@pytest.mark.parametrize(("arch", "side", "expected"), TORCHVISION, ids=[t[0] for t in TORCHVISION])
def test_auto_layer_on_torchvision_is_the_backbones_last_feature_map(arch, side, expected):
    import torchvision.models as tvm

    torch.manual_seed(0)
    model = tvm.get_model(arch, weights=None).eval()
    assert auto_layer(model, (side, side)) == expected


def test_an_adaptive_pool_is_a_resampler_even_when_it_keeps_the_grid():
    """VGG's pool at 224 pixels returns a 7x7 map from a 7x7 one; here 4x4 from 4x4."""
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=4, padding=1),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(64, 3),
    )
    assert auto_layer(model, (16, 16)) == "0"


class ClassMapNet(nn.Module):
    """A NiN-style head: features, a 1x1 convolution to one map per class, average pooling."""

    def __init__(self, classes: int = 10, width: int = 10):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU())
        self.scores = nn.Conv2d(width, classes, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return self.pool(self.scores(self.features(x))).flatten(1)


def test_class_score_maps_are_skipped_even_when_features_have_as_many_channels():
    torch.manual_seed(0)
    # `features` has 10 channels like `scores`, but each class reads all of them.
    assert auto_layer(ClassMapNet(classes=10, width=10), (16, 16)) == "features"


def test_a_features_map_upsampled_by_a_plain_layer_is_skipped():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=4, padding=1),
        nn.Upsample(scale_factor=2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    )
    assert auto_layer(model, (32, 32)) == "0"


def test_list_layers_reports_shapes_and_marks_the_auto_layer():
    model = _timm("resnet10t", {})
    before = [(m.training, [p.requires_grad for p in m.parameters(recurse=False)])
              for m in model.modules()]
    hooks = sum(len(m._forward_hooks) for m in model.modules())
    layers = {info.path: info for info in list_layers(model, (64, 64))}
    assert list(layers) == [path for path, _ in model.named_modules() if path]
    assert layers["layer4"].output_shape == (1, 512, 2, 2) and layers["layer4"].auto
    assert layers["layer4"].type == "Sequential" and layers["layer4"].calls == 1
    assert layers["fc"].output_shape == (1, 1000)
    assert [path for path, info in layers.items() if info.auto] == ["layer4"]
    assert sum(len(m._forward_hooks) for m in model.modules()) == hooks
    assert [(m.training, [p.requires_grad for p in m.parameters(recurse=False)])
            for m in model.modules()] == before


def test_handle_layers_use_the_models_input_size():
    handle = xai_core.load_model("timm/resnet10t", pretrained=False)
    assert handle.preprocessing.input_size == (176, 176)  # timm's config for resnet10t
    layers = {info.path: info for info in handle.layers()}
    assert layers["layer4"].auto and layers["layer4"].output_shape == (1, 512, 6, 6)


def test_a_misspelt_layer_names_close_matches_and_the_listing_command(lite0):
    with pytest.raises(UnknownNameError) as info:
        lite0.check_layer("blocks.66")
    message = str(info.value)
    assert "unknown layer 'blocks.66' of efficientnet_lite0; did you mean 'blocks.6'" in message
    assert "`xai list layers efficientnet_lite0`" in message and "layer: auto" in message
    assert "conv_stem, bn1, blocks" in message
    assert lite0.check_layer("blocks.6") == "blocks.6" and lite0.check_layer("auto") == "auto"
    # The CAM base resolves names through the same check (no model name there).
    with pytest.raises(UnknownNameError, match=r"`xai list layers MODEL`"):
        find_target_layer(lite0.module, "blocks.66")


def test_a_layer_is_checked_against_a_model_name_without_its_weights():
    from xai_core.models import check_model_layer

    # pretrained=True would need the network here (tests run offline): it is not asked for.
    assert check_model_layer("timm/resnet10t", "layer3", pretrained=True) == "layer3"
    assert check_model_layer("timm/resnet10t", "auto") == "auto"
    with pytest.raises(UnknownNameError, match=r"did you mean 'layer4'.*xai list layers timm/res"):
        check_model_layer("timm/resnet10t", "layer5")
