"""CAM plugins (plugins/cam.py): reference agreement, several targets, and the attributor contract.

References run on the same model, layer and input as ours: pytorch-grad-cam for the maps it
returns (its ReLU, min-max normalisation and OpenCV resize are our defaults), Captum's
``LayerGradCam`` and ``GuidedGradCam`` for the raw, unnormalised maps before upsampling (read
back from our nearest-neighbour upsampled maps at the centre of each cell).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from numerics import assert_float32_close
from torch import nn

import xai_core
from xai_core.errors import UnknownNameError, XaiError
from xai_core.testing import hook_count

pgc = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

CAT, ESPRESSO = 281, 967

#: Our name -> pytorch-grad-cam class name.
REFERENCE = {
    "grad_cam": "GradCAM",
    "grad_cam_plusplus": "GradCAMPlusPlus",
    "xgrad_cam": "XGradCAM",
    "hires_cam": "HiResCAM",
    "layer_cam": "LayerCAM",
    "eigen_cam": "EigenCAM",
    "score_cam": "ScoreCAM",
}
GRADIENT_METHODS = ["grad_cam", "grad_cam_plusplus", "xgrad_cam", "hires_cam", "layer_cam"]
ALL_METHODS = [*REFERENCE, "guided_grad_cam"]


class TinyCNN(nn.Module):
    """Three convolutions with ReLU modules (Captum's guided backprop hooks nn.ReLU modules)."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(inplace=inplace),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.ReLU(inplace=inplace),
            nn.Conv2d(16, 16, 3, stride=2, padding=1),
            nn.ReLU(inplace=inplace),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@pytest.fixture(scope="module")
def tiny_cnn():
    torch.manual_seed(0)
    return TinyCNN().eval()


@pytest.fixture(scope="module")
def vit64():
    """A random timm ViT-Tiny at 64 pixels: 4x4 patch tokens after one class token."""
    import timm

    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64).eval()


@pytest.fixture(scope="module")
def resnet96():
    import timm

    torch.manual_seed(0)
    return timm.create_model("resnet10t", pretrained=False).eval()


@pytest.fixture(scope="module")
def photos96(sample_batch):
    return F.interpolate(sample_batch, size=(96, 96), mode="bilinear", antialias=True)


@pytest.fixture(scope="module")
def photos64(sample_batch):
    """Score-CAM runs one forward pass per channel: its reference tests use small inputs."""
    return F.interpolate(sample_batch, size=(64, 64), mode="bilinear", antialias=True)


def tokens_to_grid(prefix: int, side: int):
    """pytorch-grad-cam's reshape_transform for a token layer, written out as its docs do."""

    def reshape(tensor: torch.Tensor) -> torch.Tensor:
        patches = tensor[:, prefix:, :]
        return patches.reshape(tensor.size(0), side, side, tensor.size(2)).permute(0, 3, 1, 2)

    return reshape


def reference_maps(
    method: str, model, layer, inputs, targets, reshape=None, monkeypatch=None
) -> np.ndarray:
    if method == "eigen_cam" and monkeypatch is not None:
        # The SVD's sign is arbitrary; compare with pytorch-grad-cam's own sign-corrected
        # projection, which is what our default `sign_correction: true` implements.
        from pytorch_grad_cam import eigen_cam
        from pytorch_grad_cam.utils.svd_on_activations import (
            get_2d_projection_with_sign_correction,
        )

        monkeypatch.setattr(eigen_cam, "get_2d_projection", get_2d_projection_with_sign_correction)
    cls = getattr(pgc, REFERENCE[method])
    with cls(model=model, target_layers=[layer], reshape_transform=reshape) as cam:
        if method == "score_cam":
            cam.batch_size = 64
        maps = cam(input_tensor=inputs, targets=[ClassifierOutputTarget(t) for t in targets])
    model.zero_grad(set_to_none=True)
    return maps


def ours(method: str, model, inputs, targets, **params) -> xai_core.Attribution:
    return xai_core.get_attributor(method, **params).attribute(model, inputs, targets)


# --- pytorch-grad-cam ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", [m for m in REFERENCE if m != "score_cam"])
def test_lite0_matches_pytorch_grad_cam(method, lite0, sample_batch, monkeypatch):
    result = ours(method, lite0, sample_batch, [CAT, ESPRESSO])
    assert result.metadata["layer"] == "bn2" and result.metadata["layer_auto"]
    expected = reference_maps(
        method, lite0.module, lite0.module.bn2, sample_batch, [CAT, ESPRESSO], None, monkeypatch
    )
    # Gradients back through Lite0 (~50 layers, 1280 wide), weighted, summed over 1280
    # channels, normalised and resized (+3): maps of largest magnitude 1.
    assert_float32_close(result.maps, expected, depth=50 + 3, fan_in=1280)
    assert result.maps.amax(dim=(1, 2)).min() > 0.99  # the maps are not trivially empty


def test_lite0_score_cam_matches_pytorch_grad_cam(lite0, photos64):
    cat = photos64[:1]
    result = ours("score_cam", lite0, cat, [CAT], batch_size=100)
    expected = reference_maps("score_cam", lite0.module, lite0.module.bn2, cat, [CAT])
    # Fewer passes in another memory layout, the same maps to float rounding (5e-6 here at
    # 64 px in either layout; 4e-7 at 224 px, benchmarks/bench_cam.py).
    assert_float32_close(result.maps, expected, depth=50 + 3, fan_in=1280)
    assert "folded_batch_norm" not in result.metadata
    # Constant and duplicate channels share forward passes.
    assert result.metadata["score_cam_forward_passes"] < 1280
    # Folded batch norms round differently, as close here; the model gets its own back.
    folded = ours("score_cam", lite0, cat, [CAT], batch_size=100, fold_batch_norm=True)
    assert folded.metadata["folded_batch_norm"] is True
    assert_float32_close(folded.maps, expected, depth=50 + 3, fan_in=1280)
    assert isinstance(lite0.module.bn2, torch.nn.BatchNorm2d)


@pytest.mark.parametrize("method", list(REFERENCE))
def test_vit_tokens_match_pytorch_grad_cam(method, vit64, photos64, monkeypatch):
    result = ours(method, vit64, photos64, [CAT, ESPRESSO])
    assert result.metadata["layer"] == "blocks.11.norm1"
    assert result.metadata["layer_layout"] == "tokens 4x4 (+1 prefix)"
    expected = reference_maps(
        method,
        vit64,
        vit64.blocks[-1].norm1,
        photos64,
        [CAT, ESPRESSO],
        tokens_to_grid(1, 4),
        monkeypatch,
    )
    # ViT-Tiny: 12 blocks of ~6 layers, 768-wide reductions (patches, MLP), +3 for the CAM.
    assert_float32_close(result.maps, expected, depth=12 * 6 + 3, fan_in=768)


@pytest.mark.parametrize("method", list(REFERENCE))
def test_resnet_matches_pytorch_grad_cam(method, resnet96, photos96, photos64, monkeypatch):
    # 512 channels: Score-CAM on one small image keeps its 512 forward passes quick.
    x, targets = (photos64[:1], [CAT]) if method == "score_cam" else (photos96, [CAT, ESPRESSO])
    result = ours(method, resnet96, x, targets)
    assert result.metadata["layer"] == "layer4"
    expected = reference_maps(method, resnet96, resnet96.layer4, x, targets, None, monkeypatch)
    # ResNet-10-T (~12 layers, 3x3x512 reductions), +3 for the CAM.
    assert_float32_close(result.maps, expected, depth=12 + 3, fan_in=3 * 3 * 512)


def test_deit_distillation_token_is_dropped():
    import timm

    torch.manual_seed(0)
    model = timm.create_model("deit_tiny_distilled_patch16_224", img_size=64).eval()
    x = torch.randn(2, 3, 64, 64)
    result = ours("grad_cam", model, x, [1, 2])
    assert result.metadata["layer_layout"] == "tokens 4x4 (+2 prefix)"
    expected = reference_maps(
        "grad_cam", model, model.blocks[-1].norm1, x, [1, 2], tokens_to_grid(2, 4)
    )
    # DeiT-Tiny: 12 blocks of ~6 layers, 768-wide reductions, +3 for the CAM.
    assert_float32_close(result.maps, expected, depth=12 * 6 + 3, fan_in=768)


def test_swin_channels_last_maps():
    import timm

    torch.manual_seed(0)
    model = timm.create_model("swin_tiny_patch4_window7_224", img_size=64, window_size=2).eval()
    x = torch.randn(1, 3, 64, 64)
    result = ours("grad_cam", model, x, [5])
    assert (result.metadata["layer"], result.metadata["layer_layout"]) == ("norm", "NHWC 2x2")
    expected = reference_maps(
        "grad_cam", model, model.norm, x, [5], lambda t: t.permute(0, 3, 1, 2)
    )
    # Swin-T: 12 blocks of ~6 layers, 3072-wide MLP reductions, +3 for the CAM.
    assert_float32_close(result.maps, expected, depth=12 * 6 + 3, fan_in=3072)


# --- Captum, before upsampling -------------------------------------------------------------------


def _cells(maps: torch.Tensor, grid: int) -> torch.Tensor:
    """The layer-resolution map inside a nearest-upsampled one: one pixel per cell centre."""
    step = maps.shape[-1] // grid
    return maps[..., step // 2 :: step, step // 2 :: step]


@pytest.mark.parametrize("relu", [True, False])
def test_grad_cam_matches_captum_layer_grad_cam(relu, lite0, sample_batch, resnet96, photos96):
    from captum.attr import LayerGradCam

    for model, layer, x, grid, depth, fan_in in (
        (lite0.module, lite0.module.bn2, sample_batch, 7, 50, 1280),
        (resnet96, resnet96.layer4, photos96, 3, 12, 3 * 3 * 512),
    ):
        result = ours(
            "grad_cam", model, x, [CAT, ESPRESSO], normalize="none", upsample="nearest", relu=relu
        )
        expected = LayerGradCam(model, layer).attribute(
            x, target=[CAT, ESPRESSO], relu_attributions=relu
        )[:, 0]
        got = _cells(result.maps, grid)
        assert expected.abs().max().item() > 0
        # The network's depth and width, +2 for the channel weights and their sum.
        assert_float32_close(got, expected, depth=depth + 2, fan_in=fan_in)


def test_guided_grad_cam_matches_captum(tiny_cnn):
    from captum.attr import GuidedGradCam

    torch.manual_seed(1)
    x = torch.randn(3, 3, 64, 64)
    targets = [1, 4, 7]
    result = ours(
        "guided_grad_cam",
        tiny_cnn,
        x,
        targets,
        layer="features.4",
        normalize="none",
        upsample="nearest",
        reduction="sum",
    )
    expected = GuidedGradCam(tiny_cnn, tiny_cnn.features[4]).attribute(
        x, target=targets, interpolate_mode="nearest"
    )
    expected = expected.detach().sum(dim=1)
    assert expected.abs().max() > 0
    # TinyCNN: 4 layers, 3x3x16 reductions; guided gradients times the CAM, summed (+3).
    assert_float32_close(result.maps, expected, depth=4 + 3, fan_in=3 * 3 * 16)


def test_guided_grad_cam_on_lite0_is_guided_backprop_times_cam(lite0, sample_batch):
    from xai_core.nn.relu_rules import relu_rule_gradients

    targets, cat = torch.tensor([CAT]), sample_batch[:1]
    cam = ours("grad_cam", lite0, cat, targets).maps
    guided = ours("guided_grad_cam", lite0, cat, targets, reduction="sum").maps
    with torch.enable_grad():
        grads = relu_rule_gradients(lite0.module, cat, targets, "guided", True)
    # Guided gradients back through Lite0 times the CAM, summed over 3 channels (+2).
    assert_float32_close(guided, (grads * cam[:, None]).sum(1), depth=50 + 2, fan_in=1280)


# --- several targets, batches ---------------------------------------------------------------------


def test_five_targets_share_one_forward_pass(lite0, sample_batch):
    model = lite0.module
    targets = [CAT, 282, 285, ESPRESSO, 504]
    ours("grad_cam", lite0, sample_batch[:1], [CAT])  # the auto layer is traced once, cached
    calls = []
    handle = model.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        together = ours("grad_cam", lite0, sample_batch[:1], [targets])
    finally:
        handle.remove()
    assert len(calls) == 1
    assert together.targets.tolist() == targets
    assert together.input_index.tolist() == [0] * 5
    for i, t in enumerate(targets):
        alone = ours("grad_cam", lite0, sample_batch[:1], [t])
        # One backward per target vs five: Lite0's bound (+3 for the CAM).
        assert_float32_close(together.maps[i], alone.maps[0], depth=50 + 3, fan_in=1280)
    assert not torch.allclose(together.maps[0], together.maps[3])


@pytest.mark.parametrize("method", ALL_METHODS)
def test_several_targets_and_batches_equal_single_calls(method, tiny_cnn):
    torch.manual_seed(2)
    x = torch.randn(2, 3, 32, 32)
    together = ours(method, tiny_cnn, x, [[1, 2, 3], [4, 5, 6]])
    assert together.maps.shape == (6, 32, 32)
    for row, (i, t) in enumerate(zip(together.input_index.tolist(), together.targets.tolist())):
        alone = ours(method, tiny_cnn, x[i : i + 1], [t])
        # Batched otherwise through TinyCNN (4 layers, 3x3x16), +3 for the CAM.
        assert_float32_close(together.maps[row], alone.maps[0], depth=4 + 3, fan_in=3 * 3 * 16)


def test_score_cam_batch_size_does_not_change_the_map(tiny_cnn):
    x = torch.randn(2, 3, 32, 32)
    small = ours("score_cam", tiny_cnn, x, [1, 2], batch_size=1)
    large = ours("score_cam", tiny_cnn, x, [1, 2], batch_size=64)
    # One masked forward per channel, batched 1 vs 64 at a time: TinyCNN's bound, +3.
    assert_float32_close(small.maps, large.maps, depth=4 + 3, fan_in=3 * 3 * 16)


# --- contract: state, hooks, gradients ------------------------------------------------------------


@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize("grad_mode", ["enabled", "no_grad", "inference_mode"])
def test_model_state_is_restored_under_any_grad_mode(method, grad_mode):
    torch.manual_seed(0)
    model = TinyCNN(inplace=True).train()
    hooks = hook_count(model)
    x = torch.randn(2, 3, 32, 32)
    reference = ours(method, model, x, [1, 2]).maps
    model.train()
    context = {
        "enabled": torch.enable_grad,
        "no_grad": torch.no_grad,
        "inference_mode": torch.inference_mode,
    }[grad_mode]
    with context():
        result = ours(method, model, x, [1, 2])
    assert model.training and all(m.training for m in model.modules())
    assert all(p.requires_grad and p.grad is None for p in model.parameters())
    assert hook_count(model) == hooks
    torch.testing.assert_close(result.maps, reference)
    assert torch.isfinite(result.maps).all()


def test_hooks_are_removed_when_the_method_fails(tiny_cnn):
    hooks = hook_count(tiny_cnn)
    with pytest.raises(XaiError, match="no spatial grid"):
        ours("grad_cam", tiny_cnn, torch.randn(1, 3, 32, 32), [1], layer="head.1")
    assert hook_count(tiny_cnn) == hooks


def test_unknown_layer_names_close_matches(lite0, sample_batch):
    with pytest.raises(UnknownNameError, match="did you mean.*'blocks.6'"):
        ours("grad_cam", lite0, sample_batch[:1], [CAT], layer="blocks.66")


def test_explicit_layer_overrides_auto(lite0, sample_batch):
    result = ours("grad_cam", lite0, sample_batch[:1], [CAT], layer="blocks.5")
    assert (result.metadata["layer"], result.metadata["layer_auto"]) == ("blocks.5", False)
    assert result.metadata["layer_layout"] == "NCHW 7x7"
    assert result.maps.shape == (1, 224, 224)


def test_shared_module_is_refused():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.fc = nn.Linear(3, 4)

        def forward(self, x):
            return self.fc(self.conv(self.conv(x)).mean(dim=(2, 3)))

    with pytest.raises(XaiError, match="runs more than once"):
        ours("grad_cam", Shared(), torch.randn(1, 3, 16, 16), [0], layer="conv")


def test_in_place_ops_after_the_layer_do_not_change_its_activations():
    """A residual ``out += shortcut`` after the layer (as in ResNet blocks) must not leak into
    the activations the map is built from."""

    class InPlaceResidual(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, stride=4, padding=1)
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            out = self.conv(x)
            out += 10.0
            return self.fc(out.relu().mean(dim=(2, 3)))

    torch.manual_seed(0)
    model = InPlaceResidual().eval()
    x = torch.randn(1, 3, 32, 32)
    result = ours(
        "hires_cam", model, x, [2], layer="conv", normalize="none", upsample="nearest", relu=False
    )
    a = model.conv(x).detach().requires_grad_(True)
    score = model.fc((a + 10.0).relu().mean(dim=(2, 3)))[0, 2]
    (g,) = torch.autograd.grad(score, a)
    torch.testing.assert_close(_cells(result.maps, 8), (g * a).sum(dim=1).detach())


def test_defaults_are_normalised_maps_and_eigen_sign_is_positive(lite0, sample_batch):
    for method in ("grad_cam", "eigen_cam"):
        maps = ours(method, lite0, sample_batch, [CAT, ESPRESSO]).maps
        assert maps.min() >= 0 and maps.max() <= 1
        # Min-max normalised and resized: 1 up to the rounding of those few operations.
        assert_float32_close(maps.amax(dim=(1, 2)), torch.ones(2), depth=3)
    raw = ours("eigen_cam", lite0, sample_batch, [CAT, ESPRESSO], relu=False, normalize="none")
    assert (raw.maps.amax(dim=(1, 2)) >= raw.maps.amin(dim=(1, 2)).abs()).all()


def test_methods_are_registered_with_papers():
    listed = xai_core.list_attributors()
    for name in ALL_METHODS:
        assert name in listed
        technique = xai_core.get_attributor(name)
        assert technique.paper and technique.summary
