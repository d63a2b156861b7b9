"""LIME and Kernel SHAP on superpixels (plugins/surrogate/): equal to Captum's ``Lime`` and
``KernelShap`` given the same feature mask and samples, the fits equal to scikit-learn's, seeded,
batch-independent, several targets from one segmentation and one set of passes, clear errors."""

from __future__ import annotations

import warnings

import pytest
import torch
from numerics import assert_float32_close
from torch import nn
from xai_core_plugins.surrogate import (
    SuperpixelImage,
    fit_surrogate,
    kernel_shap_samples,
    lime_samples,
    lime_weights,
    segment_image,
    superpixels,
)

import xai_core
from xai_core.errors import ConfigError, InputError

captum_attr = pytest.importorskip("captum.attr")
linear_model = pytest.importorskip("captum._utils.models.linear_model")
sklearn_linear = pytest.importorskip("sklearn.linear_model")


def fed(samples):
    """A Captum ``perturb_func`` that yields our samples, one ``[1, M]`` row at a time."""

    def perturb(original, **kwargs):
        for row in samples:
            yield row[None].long()

    return perturb


def captum_maps(method, handle, images, targets, attributor, interpretable_model=None):
    """Captum's maps ``[N, H, W]``, one image at a time, with our segmentation, samples and fill."""
    p = attributor.params
    fills = attributor.baseline(images, _Context(handle)).expand_as(images)
    maps = []
    for i, target in enumerate(targets):
        labels = segment_image(handle.denormalize(images[i]), p)
        features = int(labels.max()) + 1
        sampler = lime_samples if method == "lime" else kernel_shap_samples
        samples = sampler(p.n_samples, features, torch.Generator().manual_seed(p.seed))
        if method == "lime":
            reference = captum_attr.Lime(
                handle.module, interpretable_model=interpretable_model, perturb_func=fed(samples)
            )
        else:
            reference = captum_attr.KernelShap(handle.module)
            reference.perturb_func = fed(samples)  # KernelShap takes no perturb_func argument
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scikit-learn's convergence chatter
            result = reference.attribute(
                images[i : i + 1],
                baselines=fills[i : i + 1],
                target=target,
                feature_mask=labels[None, None].expand(1, 3, -1, -1),
                n_samples=p.n_samples,
                perturbations_per_eval=p.batch_size,
            )
        assert torch.equal(result[0, 0], result[0, 2])  # one superpixel spans all channels
        maps.append(result[0, 0])
    return torch.stack(maps)


class _Context:
    """What :meth:`PerturbationAttributor.baseline` reads of a context: the handle."""

    def __init__(self, handle):
        self.handle = handle


def assert_close(maps, reference, tolerance=1e-5):
    """Within ``tolerance`` of the reference map's range (random-weight maps are small)."""
    scale = reference.abs().max().item()
    assert scale > 0
    error = (maps - reference).abs().max().item()
    assert error <= tolerance * scale, f"max error {error:.3g} vs map range {scale:.3g}"


FAST = {"n_samples": 24, "n_segments": 10, "batch_size": 16, "progress": False}


@pytest.mark.parametrize(
    "method, params, model",
    [
        ("kernel_shap", {}, None),
        ("lime", {"surrogate": "linear"}, "linear"),
        # Coordinate descent at a tolerance far below its default, so that its solution is the
        # minimiser our exact lasso finds.
        ("lime", {"surrogate": "lasso", "alpha": 1e-4}, "lasso"),
        ("lime", {"surrogate": "ridge", "alpha": 0.5, "baseline": "blur"}, "ridge"),
    ],
)
def test_equals_captum_given_the_same_mask_and_samples(
    tiny_resnet, images64, method, params, model
):
    attributor = xai_core.get_attributor(method, **FAST, **params)
    result = attributor.attribute(tiny_resnet, images64, [3, 7])
    interpretable = {
        None: None,
        "linear": linear_model.SkLearnLinearRegression(),
        "lasso": linear_model.SkLearnLasso(alpha=1e-4, tol=1e-12, max_iter=100_000),
        "ridge": linear_model.SkLearnRidge(alpha=0.5),
    }[model]
    reference = captum_maps(method, tiny_resnet, images64, [3, 7], attributor, interpretable)
    assert_close(result.maps, reference)


def test_equals_captum_on_efficientnet_lite0(lite0, sample_batch):
    """Captum's own defaults for the fit: its lasso (alpha 0.01) for LIME, its regression for
    Kernel SHAP; the lasso's coordinate descent stops at its default tolerance, ours is exact."""
    cat = sample_batch[:1]
    for method, interpretable, tolerance in [
        ("lime", linear_model.SkLearnLasso(alpha=0.01), 1e-4),
        ("kernel_shap", None, 1e-5),
    ]:
        params = {"n_samples": 8, "n_segments": 6, "batch_size": 8, "progress": False}
        attributor = xai_core.get_attributor(method, **params)
        result = attributor.attribute(lite0, cat)
        targets = result.targets.tolist()
        reference = captum_maps(method, lite0, cat, targets, attributor, interpretable)
        assert_close(result.maps, reference, tolerance)


def test_the_fits_equal_scikit_learn():
    generator = torch.Generator().manual_seed(0)
    samples = (torch.rand(60, 15, generator=generator) < 0.5).double()
    scores = samples @ torch.randn(15, 2, generator=generator).double()
    scores += 0.3 * torch.randn(60, 2, generator=generator).double()
    weights = torch.rand(60, generator=generator).double() + 0.1
    for name, reference in [
        ("linear", sklearn_linear.LinearRegression()),
        ("ridge", sklearn_linear.Ridge(alpha=0.5)),
        ("lasso", sklearn_linear.Lasso(alpha=0.02, tol=1e-14, max_iter=1_000_000)),
    ]:
        ours = fit_surrogate(samples, scores, weights, name, 0.02 if name == "lasso" else 0.5)
        for j in range(2):
            reference.fit(samples.numpy(), scores[:, j].numpy(), sample_weight=weights.numpy())
            expected = torch.from_numpy(reference.coef_)
            assert (ours[:, j] - expected).abs().max() < 1e-9, name
    assert (ours == 0).any()  # the lasso zeroes some coefficients: its penalty is in play


class Patch(nn.Module):
    """Class 0 is the mean of a patch, class 1 twice that, class 2 its negative; counts calls."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        score = x[:, :, 8:24, 16:40].mean(dim=(1, 2, 3)) * self.scale
        return torch.stack([score, 2 * score, -score], dim=1)


def test_kernel_shap_values_add_up_to_the_score_change():
    """Shapley efficiency: the superpixels' values sum to f(image) - f(fill); only superpixels
    that touch the patch get a value."""
    torch.manual_seed(0)
    image = torch.rand(1, 3, 48, 48) + 0.5
    model = Patch()
    attributor = xai_core.get_attributor("kernel_shap", **FAST, baseline="zeros")
    result = attributor.attribute(model, image, 0)
    labels = segment_image(
        xai_core.ModelHandle("patch", model).denormalize(image[0]), attributor.params
    )
    values = torch.zeros(int(labels.max()) + 1).scatter_(
        0, labels.flatten(), result.maps[0].flatten()
    )
    with torch.no_grad():
        change = model(image)[0, 0] - model(torch.zeros_like(image))[0, 0]
    assert abs(values.sum() - change) < 1e-5 * abs(change)
    outside = torch.ones(48, 48, dtype=torch.bool)
    outside[8:24, 16:40] = False
    untouched = set(labels[outside].tolist()) - set(labels[~outside].tolist())
    assert untouched and all(abs(values[f]) < 1e-4 * abs(change) for f in untouched)


@pytest.mark.parametrize("method", ["lime", "kernel_shap"])
def test_several_targets_share_one_segmentation_and_the_passes(method):
    torch.manual_seed(0)
    images = torch.rand(2, 3, 48, 48)
    model = Patch()
    attributor = xai_core.get_attributor(method, **FAST)
    single = attributor.attribute(model, images, 1)
    calls = model.calls
    model.calls = 0
    several = attributor.attribute(model, images, [[0, 1, 2], [2, 1, 0]])
    assert model.calls == calls  # three targets, the same forward passes
    assert several.metadata["forward_images"] == single.metadata["forward_images"]
    # The same float32 scores fitted in float64 with three right-hand sides or one: float64
    # rounding, then one float32 rounding of the coefficients (depth 1).
    assert_float32_close(several.maps[1::3], single.maps, depth=1)
    if method == "kernel_shap":  # an unpenalized fit is linear in the scores
        assert_float32_close(several.maps[0], single.maps[0] / 2, depth=1)  # class 1 = 2 x 0
        assert_float32_close(several.maps[2], -single.maps[0] / 2, depth=1)  # class 2 = -0


@pytest.mark.parametrize("method", ["lime", "kernel_shap"])
def test_seeded_and_batch_independent(tiny_resnet, images64, method):
    # A random network's logits change by ~1e-3: lasso's default alpha would zero every
    # coefficient, and all-zero maps are the same for any seed.
    params = {**FAST, "batch_size": 12, **({"surrogate": "ridge"} if method == "lime" else {})}
    attributor = xai_core.get_attributor(method, **params)
    maps = attributor.attribute(tiny_resnet, images64, [3, 7]).maps
    assert maps.abs().amax(dim=(1, 2)).gt(0).all()
    assert torch.equal(attributor.attribute(tiny_resnet, images64, [3, 7]).maps, maps)
    alone = attributor.attribute(tiny_resnet, images64[1:], 7).maps
    # Other batches of the same samples: ResNet-10-T 12 layers, +1 for the fit.
    assert_float32_close(alone, maps[1:], depth=12 + 1, fan_in=3 * 3 * 512)
    other = xai_core.get_attributor(method, **{**params, "seed": 1})
    assert not torch.equal(other.attribute(tiny_resnet, images64[1:], 7).maps, alone)


def test_segmentations_give_consecutive_labels():
    torch.manual_seed(0)
    pixels = torch.rand(3, 40, 40)
    for labels in [
        superpixels(pixels, "slic", n_segments=10),
        superpixels(pixels, "quickshift", kernel_size=2, max_dist=6),
    ]:
        assert labels.shape == (40, 40) and labels.dtype == torch.long
        found = labels.unique()
        assert len(found) > 2 and torch.equal(found, torch.arange(len(found)))


def test_lime_interpretable_similarity_is_the_lime_packages():
    """``similarity_space: interpretable`` weighs like ``lime.lime_image``: the kernel
    ``sqrt(exp(-d^2 / w^2))`` on the cosine distance to the all-ones sample."""
    pairwise = pytest.importorskip("sklearn.metrics").pairwise_distances
    samples = lime_samples(30, 9, torch.Generator().manual_seed(0))
    samples[0] = 1
    part = SuperpixelImage(torch.zeros(3, 1, 1), torch.zeros(3, 1, 1), None, 9, samples)
    ours = lime_weights(part, 0.25, "interpretable")
    distances = pairwise(samples.numpy(), samples[:1].numpy(), metric="cosine")[:, 0]
    expected = torch.from_numpy(distances).double().pow(2).div(-(0.25**2)).exp().sqrt()
    # scikit-learn takes the cosine distances of the float32 samples in float32 (ours in
    # float64): a dot product of 9 features, the norms, the division, square, exp and sqrt.
    assert_float32_close(ours, expected, depth=6, fan_in=9)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"segmentation": "felzenszwalb"}, "slic"),
        ({"n_segments": 1}, "n_segments"),
        ({"n_samples": 1}, "n_samples"),
        ({"surrogate": "lars"}, "lasso"),
        ({"kernel_width": 0}, "kernel_width"),
        ({"ratio": 1.5}, "ratio"),
    ],
)
def test_bad_parameters_are_named(params, message):
    with pytest.raises(ConfigError, match=message):
        xai_core.get_attributor("lime", **params)


def test_a_single_superpixel_is_refused():
    flat = torch.zeros(1, 3, 32, 32)
    attributor = xai_core.get_attributor(
        "kernel_shap", segmentation="quickshift", max_dist=1000, **FAST
    )
    with pytest.raises(InputError, match="single superpixel.*max_dist"):
        attributor.attribute(Patch(), flat, 0)
