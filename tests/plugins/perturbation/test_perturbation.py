"""Occlusion and RISE (plugins/perturbation.py): numerics against Captum and a plain RISE,
reproducibility, several targets from one set of forward passes, and errors for bad settings."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from numerics import assert_float32_close
from scipy.stats import spearmanr
from torch import nn
from xai_core_plugins.perturbation.occlusion import occlusion_corners
from xai_core_plugins.perturbation.reach import local_layers
from xai_core_plugins.perturbation.rise import rise_grids, rise_masks

import xai_core
from xai_core.errors import ConfigError, XaiError
from xai_core.families.perturbation import PERTURBATION_BASELINES
from xai_core.nn.images import baseline_inputs

captum_attr = pytest.importorskip("captum.attr")


def captum_occlusion(module, inputs, window, stride, baseline, target):
    """Captum's ``Occlusion`` with a window over all channels, as the maps ``[N, H, W]``."""
    result = captum_attr.Occlusion(module).attribute(
        inputs,
        sliding_window_shapes=(3, window, window),
        strides=(3, stride, stride),
        baselines=baseline,
        target=target,
    )
    # The window spans all channels, so the three channels carry the same value.
    assert torch.equal(result[:, 0], result[:, 2])
    return result[:, 0]


#: (depth, widest reduction) of each model, for the float32 bound of two occlusion maps that
#: forward the same windows in other batches or through other code (tests/numerics.py).
DEPTH = {"lite0": (50, 1280), "resnet10t": (12, 3 * 3 * 512)}


def assert_close_to_reference(maps, reference, model):
    """Within the float32 bound of ``model``'s forward pass, +1 for the score difference an
    occlusion map holds, relative to the map's largest magnitude (tests/numerics.py)."""
    assert reference.abs().max().item() > 0
    depth, fan_in = DEPTH[model]
    assert_float32_close(maps, reference, depth=depth + 1, fan_in=fan_in)


class Patch(nn.Module):
    """A transparent classifier: class 0 is the mean of a square patch, class 1 its negative."""

    def __init__(self, top=8, left=16, size=8):
        super().__init__()
        self.region = (slice(top, top + size), slice(left, left + size))
        self.scale = nn.Parameter(torch.ones(()))
        self.calls = 0
        self.images = 0

    def forward(self, x):
        self.calls += 1
        self.images += len(x)
        score = x[:, :, self.region[0], self.region[1]].mean(dim=(1, 2, 3)) * self.scale
        return torch.stack([score, -score], dim=1)


def test_window_corners_cover_the_image_and_cut_off_the_last_window():
    assert occlusion_corners(224, 32, 16) == list(range(0, 193, 16))
    # (100 - 32) / 16 is not whole: a sixth window starts at 80 and sticks out of the image.
    assert occlusion_corners(100, 32, 16) == [0, 16, 32, 48, 64, 80]
    assert occlusion_corners(32, 32, 8) == [0]


def test_occlusion_matches_captum_on_efficientnet_lite0(lite0, sample_batch):
    """Window 80, stride 64: overlapping windows and a cut-off last one, on the real model."""
    cat = sample_batch[:1]
    result = xai_core.get_attributor("occlusion", window=80, stride=64).attribute(lite0, cat)
    reference = captum_occlusion(lite0.module, cat, 80, 64, 0.0, result.targets.tolist())
    assert_close_to_reference(result.maps, reference, "lite0")
    assert result.metadata["windows"] == 16
    assert result.metadata["forward_images"] == 16 + 1


# --- reusing the unoccluded image's early activations (incremental occlusion) ------------------


@pytest.mark.parametrize("window, stride", [(32, 32), (48, 40)])
def test_reusing_early_activations_matches_captum_on_lite0(lite0, sample_batch, window, stride):
    """At 224 px the windows change a small part of the stride-4 maps: occlusion recomputes a
    crop up to there and reuses the rest, then runs block 2.0 on a crop of that map and reuses
    the rest of its stride-8 map; the maps are those of full passes and of Captum.
    (48, 40): the last window is cut off at the image edge."""
    cat = sample_batch[:1]
    params = {"window": window, "stride": stride}
    result = xai_core.get_attributor("occlusion", **params).attribute(lite0, cat)
    assert result.metadata["reused_layer"] == "blocks.2.0.bn1"
    # Deeper second layers (inside block 2.1) fail the check: block 2.1's skip connection would
    # add block 2.0's crop-sized map to a full one.
    assert result.metadata["reused_layers"] == ["blocks.2.0.bn1", "blocks.2.0"]
    assert result.metadata["reused_crop"][0] < 112
    full = xai_core.get_attributor("occlusion", incremental=False, **params).attribute(lite0, cat)
    assert "reused_layer" not in full.metadata
    assert_close_to_reference(result.maps, full.maps, "lite0")
    reference = captum_occlusion(lite0.module, cat, window, stride, 0.0, result.targets.tolist())
    assert_close_to_reference(result.maps, reference, "lite0")


def test_reusing_early_activations_on_a_resnet(tiny_resnet):
    torch.manual_seed(3)
    x = torch.randn(2, 3, 224, 224)
    result = xai_core.get_attributor("occlusion", window=32, stride=32).attribute(tiny_resnet, x, 3)
    assert "reused_layer" in result.metadata
    full = xai_core.get_attributor("occlusion", window=32, stride=32, incremental=False)
    assert_close_to_reference(result.maps, full.attribute(tiny_resnet, x, 3).maps, "resnet10t")


def test_measured_reach_covers_every_cell_a_window_changes(lite0, sample_batch):
    """What the probe measures bounds what really changes, for windows all over the image."""
    heads = []
    probe = lite0.module.conv_head.register_forward_hook(lambda *_: heads.append(1))
    try:
        window, (layer, *_) = 32, local_layers(lite0.module, (1, 3, 224, 224), 32)
    finally:
        probe.remove()
    assert heads == []  # the probe stops where changes reach the border (stride 16 here)
    seen = {}
    hook = layer.module.register_forward_hook(lambda m, a, out: seen.update(out=out))
    try:
        with torch.inference_mode():
            lite0.module(sample_batch)
            clean = seen["out"]
            for top, left in [(0, 0), (96, 112), (192, 192), (16, 200), (200, 8)]:
                occluded = sample_batch.clone()
                occluded[:, :, top : top + window, left : left + window] = 0
                lite0.module(occluded)
                changed = (seen["out"] - clean).abs().amax(dim=(0, 1)) > 0
                i0, i1, j0, j1, k, c = layer.boxes(top, left, window, (224, 224))
                inside = torch.zeros_like(changed)
                inside[i0:i1, j0:j1] = True
                assert changed.any() and not (changed & ~inside).any(), (top, left)
                # The crop holds every input cell that the changed cells depend on.
                assert k <= max(0, i0 - layer.reach[1]) and c <= max(0, j0 - layer.reach[3])
    finally:
        hook.remove()


class _Tower(nn.Module):
    """stem (stride 2) -> block (stride 4) -> head, at 128 px; ``skip`` adds the stem's map after
    the block (reusing the block's map cannot work: the stem's map is then a crop's),
    ``global_input`` adds the input's mean to the logits (no reuse can give that)."""

    def __init__(self, skip: bool = False, global_input: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.skip, self.global_input = skip, global_input
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        a = self.stem(x)
        b = self.block(a)
        if self.skip:
            b = b + F.avg_pool2d(a, 2)
        out = self.head(b.mean(dim=(2, 3)))
        return out + x.mean(dim=(1, 2, 3))[:, None] if self.global_input else out


@pytest.mark.parametrize(
    "model, reused",
    [(_Tower(), "block"), (_Tower(skip=True), "stem"), (_Tower(global_input=True), None)],
)
def test_reuse_is_checked_against_full_passes(model, reused):
    """A layer is reused only where full passes confirm it; otherwise the next deepest, or none."""
    torch.manual_seed(1)
    x = torch.randn(2, 3, 128, 128)
    result = xai_core.get_attributor("occlusion", window=8, stride=8).attribute(model, x, 1)
    assert result.metadata.get("reused_layer") == reused
    full = xai_core.get_attributor("occlusion", window=8, stride=8, incremental=False)
    # The tower: conv, conv, head (+1 for the score difference); its widest reduction is the
    # mean over the block's 32 x 32 map, or the input's mean over 3 x 128 x 128 values.
    fan_in = 3 * 128 * 128 if model.global_input else 32 * 32
    assert_float32_close(result.maps, full.attribute(model, x, 1).maps, depth=3 + 1, fan_in=fan_in)


@pytest.mark.parametrize("baseline", PERTURBATION_BASELINES)
def test_occlusion_matches_captum_on_resnet_for_every_baseline(tiny_resnet, images64, baseline):
    attributor = xai_core.get_attributor(
        "occlusion", window=16, stride=12, baseline=baseline, batch_size=7
    )
    result = attributor.attribute(tiny_resnet, images64, target=[3, 7])
    fill = baseline_inputs(baseline, images64, tiny_resnet, blur_sigma=10.0).expand_as(images64)
    reference = captum_occlusion(tiny_resnet.module, images64, 16, 12, fill, [3, 7])
    assert_close_to_reference(result.maps, reference, "resnet10t")


def test_occlusion_of_probabilities_matches_captum(tiny_resnet, images64):
    result = xai_core.get_attributor(
        "occlusion", window=32, stride=16, score="probability", channels_last=False
    ).attribute(tiny_resnet, images64, target=5)

    def probabilities(x):
        return tiny_resnet.module(x).softmax(dim=1)

    reference = captum_occlusion(probabilities, images64, 32, 16, 0.0, 5)
    # ResNet-10-T 12 layers, +1 for the softmax (+1 for the difference in the helper).
    depth, fan_in = DEPTH["resnet10t"]
    assert_float32_close(result.maps, reference, depth=depth + 2, fan_in=fan_in)


def test_baselines_are_what_they_say(lite0, sample_batch):
    black = baseline_inputs("black", sample_batch, lite0, blur_sigma=10.0)
    # Normalising and denormalising zeros: a few roundings of values below 3, not exact zeros.
    assert torch.allclose(lite0.denormalize(black), torch.zeros(1, 3, 1, 1), atol=1e-6)
    mean = baseline_inputs("mean", sample_batch, lite0, blur_sigma=10.0)
    assert torch.allclose(mean[1, :, 0, 0], sample_batch[1].mean(dim=(1, 2)))
    blur = baseline_inputs("blur", sample_batch, lite0, blur_sigma=4.0)
    assert blur.shape == sample_batch.shape
    # A blur keeps the mean and removes detail (0.05: the blur's error at the borders).
    assert torch.allclose(blur.mean(dim=(2, 3)), sample_batch.mean(dim=(2, 3)), atol=0.05)
    assert blur.diff(dim=3).abs().mean() < 0.3 * sample_batch.diff(dim=3).abs().mean()


def test_occlusion_finds_the_patch_a_transparent_model_looks_at():
    model = Patch(top=8, left=16, size=8)
    image = torch.ones(1, 3, 32, 32)
    maps = xai_core.get_attributor("occlusion", window=8, stride=4).attribute(model, image, 0).maps
    inside = maps[0, 8:16, 16:24]
    outside = maps[0].clone()
    outside[4:20, 12:28] = 0  # every pixel whose windows can touch the patch
    assert inside.min() > 0
    assert outside.abs().max() == 0
    # Hiding the whole patch drops the score by exactly its mean (1): the pixel covered only by
    # the window aligned with the patch and by windows that hide a quarter or half of it.
    assert maps[0, 8:16, 16:24].max() <= 1.0 + 1e-6


def test_several_targets_share_one_set_of_forward_passes(tiny_resnet, images64):
    model = tiny_resnet.module
    counted = []
    handle = model.register_forward_pre_hook(lambda _m, args: counted.append(len(args[0])))
    try:
        # (Folding batch norms adds two passes of the unperturbed images: off here.)
        attributor = xai_core.get_attributor(
            "occlusion", window=32, stride=16, fold_batch_norm=False
        )
        both = attributor.attribute(tiny_resnet, images64, target=[[1, 2], [3, 4]])
        forwarded = sum(counted)
        counted.clear()
        single = attributor.attribute(tiny_resnet, images64, target=[2, 3])
    finally:
        handle.remove()
    # 9 windows per image plus the unperturbed image, not once per target.
    assert forwarded == 2 * 9 + 2
    assert both.input_index.tolist() == [0, 0, 1, 1]
    assert both.targets.tolist() == [1, 2, 3, 4]
    # Other batches of the same windows: ResNet-10-T 12 layers +1 for the difference.
    assert_float32_close(both.maps[[1, 2]], single.maps, depth=12 + 1, fan_in=3 * 3 * 512)
    assert not torch.allclose(both.maps[0], both.maps[1])


def test_batch_size_does_not_change_occlusion(tiny_resnet, images64):
    one = xai_core.get_attributor("occlusion", window=32, stride=16, batch_size=1)
    many = xai_core.get_attributor("occlusion", window=32, stride=16, batch_size=64)
    a = one.attribute(tiny_resnet, images64, target=0).maps
    b = many.attribute(tiny_resnet, images64, target=0).maps
    # Other batches of the same windows: ResNet-10-T 12 layers +1 for the difference.
    assert_float32_close(a, b, depth=12 + 1, fan_in=3 * 3 * 512)


def test_model_is_left_as_it_was(tiny_resnet, images64):
    module = tiny_resnet.module
    module.train()
    xai_core.get_attributor("occlusion", window=32, stride=32).attribute(module, images64, 0)
    xai_core.get_attributor("rise", n_masks=4, grid=4).attribute(module, images64, 0)
    assert module.training
    assert all(p.requires_grad for p in module.parameters())
    assert all(p.is_contiguous() for p in module.parameters())
    module.eval()


def test_bad_settings_are_clear_errors(tiny_resnet, images64):
    with pytest.raises(XaiError, match="larger than the image"):
        xai_core.get_attributor("occlusion", window=65, stride=8).attribute(
            tiny_resnet, images64, 0
        )
    with pytest.raises(ConfigError, match="stride"):
        xai_core.get_attributor("occlusion", window=8, stride=9)
    with pytest.raises(ConfigError, match="window"):
        xai_core.get_attributor("occlusion", window=0)
    with pytest.raises(ConfigError, match="'zeros', 'black', 'blur', 'mean'"):
        xai_core.get_attributor("occlusion", baseline="gray")
    with pytest.raises(ConfigError, match="keep"):
        xai_core.get_attributor("rise", keep=1.5)
    with pytest.raises(ConfigError, match="n_masks"):
        xai_core.get_attributor("rise", n_masks=0)
    with pytest.raises(XaiError, match="grid"):
        xai_core.get_attributor("rise", grid=65, n_masks=2).attribute(tiny_resnet, images64, 0)


def test_rise_masks_are_smooth_shifted_and_keep_the_asked_fraction():
    generator = torch.Generator().manual_seed(0)
    grids, shifts = rise_grids(400, 7, 0.3, (50, 64), generator)
    masks = rise_masks(grids, shifts, (50, 64))
    assert masks.shape == (400, 50, 64)
    assert masks.min() >= 0 and masks.max() <= 1
    assert abs(masks.mean().item() - 0.3) < 0.03
    # Bilinear upsampling: soft values exist, neighbours differ little.
    assert ((masks > 0.05) & (masks < 0.95)).any()
    assert masks.diff(dim=2).abs().max() <= 1 / 9.0 + 1e-6  # cells of ceil(64 / 7) = 10 px
    assert shifts[:, 0].max() < 8 and shifts[:, 1].max() < 10
    assert len(set(map(tuple, shifts.tolist()))) > 40


def test_rise_is_reproducible_bit_for_bit(tiny_resnet, images64):
    params = dict(n_masks=24, grid=4, seed=3)
    a = xai_core.get_attributor("rise", **params).attribute(tiny_resnet, images64, [1, 2]).maps
    b = xai_core.get_attributor("rise", **params).attribute(tiny_resnet, images64, [1, 2]).maps
    c = xai_core.get_attributor("rise", **{**params, "seed": 4})
    assert torch.equal(a, b)
    assert not torch.allclose(a, c.attribute(tiny_resnet, images64, [1, 2]).maps)


def plain_rise(model, image, targets, masks, keep):
    """RISE as the paper writes it: one masked image at a time, probability-weighted sum of the
    masks, ``[len(targets), H, W]``."""
    total = torch.zeros(len(targets), *image.shape[1:])
    with torch.no_grad():
        for mask in masks:
            probabilities = model(image[None] * mask).softmax(dim=1)[0, targets]
            total += probabilities[:, None, None] * mask
    return total / (len(masks) * keep)


def test_rise_agrees_with_a_plain_implementation_given_the_same_masks(tiny_resnet, images64):
    n_masks, grid, keep, seed = 48, 5, 0.4, 11
    rise = xai_core.get_attributor("rise", n_masks=n_masks, grid=grid, keep=keep, seed=seed)
    result = rise.attribute(tiny_resnet, images64, target=[[4, 9], [6, 4]])
    grids, shifts = rise_grids(n_masks, grid, keep, (64, 64), torch.Generator().manual_seed(seed))
    masks = rise_masks(grids, shifts, (64, 64))
    for index, targets in enumerate(([4, 9], [6, 4])):
        reference = plain_rise(tiny_resnet.module, images64[index], targets, masks, keep)
        for row, expected in zip(torch.nonzero(result.input_index == index).flatten(), reference):
            rho = spearmanr(result.maps[row].flatten(), expected.flatten()).statistic
            assert rho > 0.9
            # ResNet-10-T 12 layers, +1 softmax, +1 the weighted sum of the 48 masks (a mean of
            # 48 terms, each within the model's bound, fan_in 48 < 3 * 3 * 512).
            assert_float32_close(result.maps[row], expected, depth=12 + 2, fan_in=3 * 3 * 512)


def test_rise_finds_the_patch_a_transparent_model_looks_at():
    model = Patch(top=8, left=16, size=8)
    image = torch.ones(1, 3, 32, 32)
    rise = xai_core.get_attributor("rise", n_masks=500, grid=4, score="logit", batch_size=100)
    maps = rise.attribute(model, image, 0).maps[0]
    assert model.images == 500  # one forward image per mask (the target is given)
    # Every map carries the mean score (about 0.5 here) everywhere; the patch stands out of it.
    assert maps[8:16, 16:24].mean() > maps[24:, :8].mean() + 0.1
    peak = divmod(maps.argmax().item(), 32)
    assert 4 <= peak[0] < 20 and 12 <= peak[1] < 28
