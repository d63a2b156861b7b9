"""Our metrics against reference implementations, on the same maps, masks and random draws:
Quantus 0.6 (pointing game, relevance mass and rank, max-sensitivity, model-parameter
randomisation, faithfulness correlation, sparseness, complexity) and pytorch-grad-cam (ROAD).

Quantus gets numpy arrays, channel first, maps as ``[N, 1, H, W]``, with its normalisation and
absolute values switched off unless a test says otherwise, so that both sides see the same map.
Where our definition differs on purpose (each metric's docstring says how), the test computes
Quantus's value and ours from it by that documented difference, so the difference is pinned down
rather than waved at.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from numerics import assert_float32_close, float32_atol
from xai_core_plugins import metrics as builtin
from xai_core_plugins.groundtruth.model import GroundTruthCNN
from xai_core_plugins.metrics import randomisation

import xai_core
from xai_core.plugins.factory import get_metric

quantus = pytest.importorskip("quantus")

SIZE = 32
QUIET = {"disable_warnings": True, "display_progressbar": False}
# GroundTruthCNN: 4 convolutions and a head, its widest reduction a 3x3x32 convolution.
CNN_DEPTH, CNN_FAN_IN = 5, 3 * 3 * 32


@pytest.fixture(autouse=True)
def _quiet_single_thread():
    # Quantus warns about every parameter choice. One thread: these are small problems, and on a
    # shared CPU two threads per process wait on each other (10x the wall time under load).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    torch.set_num_threads(threads)


@pytest.fixture
def case():
    """Four inputs, maps without ties, and masks of different sizes on a random CNN."""
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = GroundTruthCNN().eval()
    inputs = torch.randn(4, 3, SIZE, SIZE, generator=generator)
    maps = torch.rand(4, SIZE, SIZE, generator=generator)
    masks = torch.zeros(4, SIZE, SIZE, dtype=torch.bool)
    for i, (top, left, side) in enumerate([(2, 3, 10), (10, 12, 16), (0, 0, 6), (20, 4, 12)]):
        masks[i, top : top + side, left : left + side] = True
    targets = torch.tensor([0, 1, 2, 3])
    return model, inputs, maps, masks, targets


def quantus_call(metric, model, inputs, maps, targets, masks=None, **kwargs):
    """Quantus's scores as a float64 array, for maps ``[N, H, W]`` (and masks)."""
    out = metric(
        model=model,
        x_batch=inputs.numpy(),
        y_batch=targets.numpy(),
        a_batch=maps[:, None].numpy(),
        s_batch=None if masks is None else masks[:, None].numpy().astype(np.float32),
        device="cpu",
        **kwargs,
    )
    return out if isinstance(out, dict) else np.asarray(out, dtype=np.float64)


def ours(name, model, inputs, maps, targets, masks=None, **params):
    return get_metric(name, **params).evaluate(model, inputs, maps, targets, masks=masks)


# --- localisation -----------------------------------------------------------------------------


def test_pointing_game_agrees_with_quantus_without_tolerance(case):
    model, inputs, maps, masks, targets = case
    # The third map peaks on its object, the others wherever their noise does.
    maps[2, 1, 1] = 2.0
    reference = quantus_call(
        quantus.PointingGame(abs=False, normalise=False, **QUIET), model, inputs, maps, targets,
        masks,
    )
    result = ours("pointing_game", model, inputs, maps, targets, masks, tolerance=0.0)
    assert reference.tolist() == result.scores.tolist()
    assert 0 < reference.sum() < len(reference)  # hits and misses both tested

    # Ties: with two maxima, one on and one off the object, Quantus counts a hit (any maximum);
    # we count the share of maxima on the object (a constant map then scores chance).
    tied = maps.clone()
    tied[:, 31, 31] = tied[:, 3, 4] = tied[:, 12, 14] = tied[:, 1, 1] = 5.0  # on 0, 1, 2 and off
    tied[3, 31, 31] = 0.0
    reference = quantus_call(
        quantus.PointingGame(abs=False, normalise=False, **QUIET), model, inputs, tied, targets,
        masks,
    )
    result = ours("pointing_game", model, inputs, tied, targets, masks, tolerance=0.0).scores
    maxima = tied.flatten(1) == tied.flatten(1).max(dim=1, keepdim=True).values
    on_object = (maxima & masks.flatten(1)).sum(1)
    assert reference.tolist() == (on_object > 0).double().tolist()
    assert result.tolist() == (on_object / maxima.sum(1)).double().tolist()
    assert result[0] < 1 and reference[0] == 1

    # An empty mask: Quantus 0.6 writes nan into a boolean array, which stores True (a hit);
    # ours is nan (undefined).
    empty = masks.clone()
    empty[1] = False
    reference = quantus_call(
        quantus.PointingGame(abs=False, normalise=False, **QUIET), model, inputs, maps, targets,
        empty,
    )
    assert reference[1] == 1.0
    assert ours("pointing_game", model, inputs, maps, targets, empty).scores[1].isnan()


def test_relevance_mass_agrees_with_quantus_on_the_positive_part(case):
    model, inputs, maps, masks, targets = case
    metric = quantus.RelevanceMassAccuracy(abs=False, normalise=False, **QUIET)
    reference = quantus_call(metric, model, inputs, maps, targets, masks)
    result = ours("relevance_mass", model, inputs, maps, targets, masks).scores
    # Ours vs Quantus: two float32 sums of non-negative relevance over 32x32 pixels and their
    # quotient, in another order.
    assert_float32_close(result, reference, depth=2 + 1, fan_in=SIZE * SIZE)

    # Signed maps: Quantus sums signed relevance (so it can leave [0, 1]); we take the positive
    # part (Arras et al.), i.e. Quantus's score of the map clamped at zero.
    signed = maps - 0.5
    clamped = quantus_call(metric, model, inputs, signed.clamp(min=0), targets, masks)
    result = ours("relevance_mass", model, inputs, signed, targets, masks).scores
    assert_float32_close(result, clamped, depth=2 + 1, fan_in=SIZE * SIZE)
    raw = quantus_call(metric, model, inputs, signed, targets, masks)
    # Not rounding: the signed and the clamped scores must differ by far more than 1e-3.
    assert not np.allclose(raw, clamped, atol=1e-3)
    # ``absolute: true`` is Quantus's ``abs=True``.
    absolute = quantus_call(
        quantus.RelevanceMassAccuracy(abs=True, normalise=False, **QUIET), model, inputs, signed,
        targets, masks,
    )
    result = ours("relevance_mass", model, inputs, signed, targets, masks, absolute=True).scores
    assert_float32_close(result, absolute, depth=2 + 1, fan_in=SIZE * SIZE)


def test_relevance_rank_agrees_with_quantus(case):
    model, inputs, maps, masks, targets = case
    signed = maps - 0.5
    for absolute in (False, True):
        reference = quantus_call(
            quantus.RelevanceRankAccuracy(abs=absolute, normalise=False, **QUIET), model,
            inputs, signed, targets, masks,
        )
        result = ours("relevance_rank", model, inputs, signed, targets, masks, absolute=absolute)
        # A count of top pixels on the object over the object's size: one float32 sum of 0/1
        # values (exact) and one division.
        assert_float32_close(result.scores, reference, depth=1)
    assert len(set(reference.round(6))) > 1


# --- robustness -------------------------------------------------------------------------------


def test_max_sensitivity_agrees_with_quantus_on_the_same_noise(case):
    model, inputs, _, _, targets = case
    saliency = xai_core.get_attributor("saliency")
    maps = saliency.attribute(model, inputs, targets.tolist()).maps
    samples, radius, seed = 3, 0.02, 5
    metric = get_metric("max_sensitivity", n_perturb_samples=samples, perturb_radius=radius)
    result = metric.evaluate(model, inputs, maps, targets, attributor=saliency, seed=seed)
    # The metric's noise: uniform in [-radius, radius] from a generator seeded with ``seed``.
    generator = torch.Generator().manual_seed(seed)
    noise = radius * (2 * torch.rand(4, samples, 3, SIZE, SIZE, generator=generator) - 1)
    draws = iter(noise.transpose(0, 1).numpy())

    def perturb(arr, indices, **_):
        # Quantus perturbs the whole batch once per sample: hand it our sample.
        return arr + next(draws).reshape(arr.shape)

    def explain(model, inputs, targets, **_):
        batch = torch.from_numpy(np.asarray(inputs)).float()
        return saliency.attribute(model, batch, [int(t) for t in targets]).maps[:, None].numpy()

    reference = quantus_call(
        quantus.MaxSensitivity(nr_samples=samples, perturb_func=perturb, abs=False,
                               normalise=False, **QUIET),
        model, inputs, maps, targets, explain_func=explain,
    )
    # Ours vs Quantus: a ratio of two norms of saliency maps (GroundTruthCNN's forward and
    # backward, 2x5 layers, and the norms over 32x32 pixels), so its rounding is relative to 1,
    # not to the (small) sensitivity.
    atol = float32_atol(1.0, depth=2 * CNN_DEPTH + 2, fan_in=SIZE * SIZE)
    np.testing.assert_allclose(result.scores.numpy(), reference, rtol=0, atol=atol)
    assert (reference > 0).all()


# --- randomisation ----------------------------------------------------------------------------


def test_cascading_randomization_is_quantus_mprt_without_its_unrandomised_step(monkeypatch):
    handle = xai_core.load_model("groundtruth_cnn")  # trained: batch norm is not the identity
    model = handle.module
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(3, 3, SIZE, SIZE, generator=generator)
    targets = torch.tensor([0, 2, 3])
    saliency = xai_core.get_attributor("saliency")
    maps = saliency.attribute(handle, inputs, targets.tolist()).maps

    # The re-drawn weights are a seeded draw and the two libraries seed differently: Quantus
    # calls torch.manual_seed(seed + 1) before every layer's reset_parameters(). Draw ours the
    # same way; everything else (layers, order, cascade, correlation) is compared as it is.
    reinitialise = randomisation.reinitialise
    monkeypatch.setattr(randomisation, "reinitialise", lambda module, _: reinitialise(module, 43))
    result = get_metric("cascading_randomization").evaluate(
        handle, inputs, maps, targets, attributor=saliency
    )

    def explain(model, inputs, targets, **_):
        batch = torch.from_numpy(np.asarray(inputs)).float()
        return saliency.attribute(model, batch, [int(t) for t in targets]).maps[:, None].numpy()

    per_layer = quantus_call(
        quantus.MPRT(seed=42, abs=True, normalise=True, **QUIET), model, inputs, maps, targets,
        explain_func=explain,
    )
    layers = result.metadata["cascade"]
    assert list(per_layer) == ["original", *layers]  # same layers, same top-down order
    quantus_curves = np.array([per_layer[layer] for layer in layers]).T
    our_curves = np.array([d["spearman_abs"] for d in result.details])
    # Spearman correlations (at most 1) of the same saliency maps, ranked and correlated over
    # 32x32 pixels in another order.
    assert_float32_close(our_curves, quantus_curves, depth=3, fan_in=SIZE * SIZE)

    # Quantus 0.6's average correlation means to leave out the unrandomised model's correlation
    # (key "orig") but stores it as "original", so its average includes that 1.0: with L layers
    # it is (1 + L * ours) / (L + 1).
    average = quantus_call(
        quantus.MPRT(seed=42, abs=True, normalise=True, return_average_correlation=True,
                     **QUIET),
        model, inputs, maps, targets, explain_func=explain,
    )
    assert np.allclose(per_layer["original"], 1.0)
    count = len(layers)
    # The mean of the curves above, then Quantus's affine map (+2 operations).
    assert_float32_close(result.scores, (average * (count + 1) - 1) / count, depth=3 + 2,
                         fan_in=SIZE * SIZE)


# --- faithfulness correlation, sparseness, complexity ----------------------------------------


def test_faithfulness_correlation_agrees_with_quantus_on_the_same_subsets(case, monkeypatch):
    model, inputs, maps, _, targets = case
    runs, size, seed = 12, 40, 3
    metric = get_metric("faithfulness_correlation", nr_runs=runs, subset_size=size)
    result = metric.evaluate(model, inputs, maps, targets, seed=seed)
    # The metric's subsets: the ``size`` smallest of uniform draws from a generator seeded with
    # ``seed``, per image and run.
    generator = torch.Generator().manual_seed(seed)
    draws = torch.rand(4, runs, SIZE * SIZE, generator=generator)
    subsets = draws.topk(size, dim=2, largest=False).indices
    # Quantus draws input elements, run by run and image by image; give it all three channels of
    # our pixels (its index is channel * H * W + pixel).
    pixels = SIZE * SIZE
    order = iter(
        np.concatenate([subsets[i, r].numpy() + c * pixels for c in range(3)])
        for r in range(runs)
        for i in range(4)
    )
    monkeypatch.setattr(np.random, "choice", lambda *args, **kwargs: next(order))
    reference = quantus_call(
        quantus.FaithfulnessCorrelation(nr_runs=runs, subset_size=3 * size,
                                        perturb_baseline=0.0, abs=False, normalise=False,
                                        return_aggregate=False, **QUIET),
        model, inputs, maps, targets,
    )
    # Ours vs Quantus: Pearson correlations (at most 1) of subset totals with output drops, the
    # drops two GroundTruthCNN forwards apart (+1 for the drop, +2 for centring and correlating).
    atol = float32_atol(1.0, depth=CNN_DEPTH + 3, fan_in=CNN_FAN_IN)
    np.testing.assert_allclose(result.scores.numpy(), reference, rtol=0, atol=atol)
    assert len(set(reference.round(4))) == 4


def test_sparseness_and_complexity_agree_with_quantus(case):
    model, inputs, maps, _, targets = case
    signed = (maps - 0.5) * torch.tensor([1.0, 3.0, 0.1, 10.0])[:, None, None]
    signed[1, 5:9, 5:9] = 40.0  # one concentrated map
    for name, reference_class in (("sparseness", quantus.Sparseness),
                                  ("complexity", quantus.Complexity)):
        # Quantus's defaults (abs=True, normalise=True) are our definition, except that it
        # scales the whole batch by one maximum before adding its 1e-7, which moves a small
        # map's score by up to 1e-4 with the other maps (5e-5 for the third map here): scale
        # each map by its own maximum.
        reference_metric = reference_class(
            normalise_func_kwargs={"normalise_axes": (1, 2, 3)}, **QUIET
        )
        reference = quantus_call(reference_metric, model, inputs, signed, targets)
        result = ours(name, model, inputs, signed, targets).scores
        # Gini index and entropy of the same map, in float64 here, float32 in Quantus: sorting,
        # a normalisation and a weighted sum over 32x32 pixels.
        assert_float32_close(result, reference, depth=3, fan_in=SIZE * SIZE)


# --- ROAD against pytorch-grad-cam -----------------------------------------------------------


def test_noisy_linear_imputation_matches_pytorch_grad_cam_and_quantus():
    from pytorch_grad_cam.metrics.perturbation_confidence import (
        RemoveLeastRelevantFirst,
        RemoveMostRelevantFirst,
    )
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer
    from quantus.functions.perturb_func import noisy_linear_imputation

    generator = torch.Generator().manual_seed(2)
    # Not square, so that a confusion of rows and columns shows; holes touch the border.
    images = torch.randn(2, 3, 20, 26, generator=generator)
    maps = torch.rand(2, 20, 26, generator=generator)
    for order, remover in (("morf", RemoveMostRelevantFirst), ("lerf", RemoveLeastRelevantFirst)):
        for percentage in (20, 50, 90):
            removed = builtin.removal_masks(maps, percentage, order)
            seen = []

            def imputer(image, kept, seen=seen):
                seen.append(kept)
                return NoisyLinearImputer(noise=0.01)(image, kept)

            # pytorch-grad-cam: its percentile is the share kept; its noise comes from torch's
            # global generator, ours from the one we pass, seeded alike.
            torch.manual_seed(7)
            reference = torch.stack([remover(100 - percentage, imputer)(images[i], maps[i])
                                     for i in range(2)])
            assert torch.equal(torch.stack(seen) == 0, removed), (order, percentage)
            ours = builtin.noisy_linear_imputation(
                images, removed, 0.01, torch.Generator().manual_seed(7)
            )
            # Our float32 block elimination (20 rows, each a Cholesky factor, a forward and a
            # back substitution 26 wide) vs scipy's float64 spsolve cast to float32.
            assert_float32_close(ours, reference, depth=3 * 20, fan_in=26)
            # Quantus's copy of the same imputation, without noise.
            flat = removed[0].flatten().nonzero().squeeze(1).numpy()
            quantus_filled = noisy_linear_imputation(images[0].numpy(), flat, noise=0.0)
            exact = builtin.linear_imputation(images, removed)[0]
            assert_float32_close(exact, quantus_filled, depth=3 * 20, fan_in=26)


@pytest.mark.parametrize("name", ["road_morf", "road_lerf"])
def test_road_scores_match_pytorch_grad_cam(case, name):
    from pytorch_grad_cam.metrics.road import (
        ROADLeastRelevantFirstAverage,
        ROADMostRelevantFirstAverage,
    )
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    model, inputs, maps, _, targets = case
    # At 32x32 these percentages remove the same number of pixels as pytorch-grad-cam's
    # thresholds do (its count is the pixels at or above np.percentile's interpolated value,
    # ours round(P * percentage / 100); they can differ by one pixel).
    percentages = [20.0, 40.0, 60.0, 80.0]
    seed = 11
    result = get_metric(name, percentages=percentages).evaluate(
        model, inputs, maps, targets, seed=seed
    )
    averager = {"road_morf": ROADMostRelevantFirstAverage,
                "road_lerf": ROADLeastRelevantFirstAverage}[name]
    torch.manual_seed(seed)
    reference = averager(percentiles=[100 - p for p in percentages])(
        inputs, maps.numpy(), [ClassifierOutputSoftmaxTarget(int(t)) for t in targets], model
    )
    # pytorch-grad-cam reports the change of the output; ours is the output itself.
    original = torch.tensor([d["original"] for d in result.details])
    # Ours vs pytorch-grad-cam: the imputation (32 rows of 32-wide eliminations) and
    # GroundTruthCNN's forward and softmax, batched otherwise; the change's rounding is that of
    # the probabilities (at most 1), not of the (small) change.
    atol = float32_atol(original, depth=3 * SIZE + CNN_DEPTH + 1, fan_in=CNN_FAN_IN)
    np.testing.assert_allclose((result.scores - original).numpy(), reference, rtol=0, atol=atol)
    assert np.abs(reference).max() > 1e-3

