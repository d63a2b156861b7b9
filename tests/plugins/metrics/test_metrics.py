"""Metrics: each against a case whose answer is known by construction, the faithfulness metrics
against plain references (a one-image-at-a-time loop; Captum's ``infidelity`` and
``sensitivity_max``), and the metric contract (registry, config, runner, CLI)."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from numerics import assert_float32_close, float32_atol, float64_atol
from torch import Tensor, nn
from xai_core_plugins import metrics as builtin
from xai_core_plugins.groundtruth.model import GroundTruthCNN

import xai_core
from xai_core.cli import main
from xai_core.contracts.attributor import Attributor
from xai_core.contracts.metric import Metric
from xai_core.errors import ConfigError, PluginError, UnknownNameError, XaiError
from xai_core.nn.images import gaussian_blur
from xai_core.plugins.factory import get_metric, list_metrics
from xai_core.report.tables import metrics_table, table_markdown
from xai_core.runner.config import load_config

SIZE = 16


class RegionModel(nn.Module):
    """Class 0's logit is ``scale * sum(x over region, all channels)``; class 1's is 0.

    Only the region matters, so deleting it first must hurt most (and inserting it first help).
    """

    def __init__(self, region: Tensor, scale: float = 0.05):
        super().__init__()
        self.register_buffer("region", region.float())
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        score = self.scale * (x * self.region).flatten(1).sum(dim=1)
        return torch.stack([score, torch.zeros_like(score)], dim=1)


class PixelLinear(nn.Module):
    """Linear in the input with one weight per pixel, shared by the channels: gradient = weight."""

    def __init__(self, weight: Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight)

    def forward(self, x: Tensor) -> Tensor:
        score = (x * self.weight).flatten(1).sum(dim=1)
        return torch.stack([score, -score], dim=1)


def square_mask(n: int = 2) -> Tensor:
    mask = torch.zeros(n, SIZE, SIZE, dtype=torch.bool)
    mask[:, 4:9, 5:11] = True
    return mask


@pytest.fixture
def region_case():
    torch.manual_seed(0)
    masks = square_mask()
    inputs = torch.rand(2, 3, SIZE, SIZE) + 0.5  # positive, so the region raises class 0
    return RegionModel(masks[0]), inputs, masks, torch.zeros(2, dtype=torch.long)


# --- localisation: known answers ------------------------------------------------------------


def test_relevance_mass_is_one_for_the_mask_and_zero_for_its_complement():
    masks = square_mask()
    inputs = torch.zeros(2, 3, SIZE, SIZE)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, 2))
    metric = get_metric("relevance_mass")
    on = metric.evaluate(model, inputs, masks.float(), [0, 0], masks=masks).scores
    off = metric.evaluate(model, inputs, (~masks).float(), [0, 0], masks=masks).scores
    assert torch.allclose(on, torch.ones(2, dtype=on.dtype))
    assert torch.allclose(off, torch.zeros(2, dtype=off.dtype))
    # Negative relevance does not count (positive part), unless absolute values are asked for.
    signed = masks.float() - 3 * (~masks).float()
    assert metric.evaluate(model, inputs, signed, [0, 0], masks=masks).scores[0] == 1.0
    absolute = get_metric("relevance_mass", absolute=True)
    share = absolute.evaluate(model, inputs, signed, [0, 0], masks=masks).scores[0]
    inside, outside = masks[0].sum().item(), (~masks[0]).sum().item()
    assert share == pytest.approx(inside / (inside + 3 * outside))


def test_relevance_rank_counts_the_top_k_pixels_on_the_object():
    masks = square_mask()
    inputs = torch.zeros(2, 3, SIZE, SIZE)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, 2))
    metric = get_metric("relevance_rank")
    assert metric.evaluate(model, inputs, masks.float(), [0, 0], masks=masks).scores.tolist() == [
        1.0,
        1.0,
    ]
    # Half the object's pixels on top, then everything off the object: a score of one half.
    half = torch.zeros(2, SIZE, SIZE)
    half[:, 4:9, 5:8] = 3.0
    half[:, 12:, :] = 2.0
    score = metric.evaluate(model, inputs, half, [0, 0], masks=masks).scores[0]
    assert score == pytest.approx(15 / 30)


def test_pointing_game_hits_misses_and_tolerance():
    masks = square_mask(1)
    inputs = torch.zeros(1, 3, SIZE, SIZE)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, 2))

    def peak(row: int, col: int) -> Tensor:
        m = torch.zeros(1, SIZE, SIZE)
        m[0, row, col] = 1.0
        return m

    exact = get_metric("pointing_game", tolerance=0.0)
    assert exact.evaluate(model, inputs, peak(6, 7), [0], masks=masks).scores.item() == 1.0
    assert exact.evaluate(model, inputs, peak(15, 15), [0], masks=masks).scores.item() == 0.0
    # Two pixels left of the object: a miss without tolerance, a hit with 2 pixels of it
    # (tolerance is given at 224x224 and scales with the image: 28 * 16 / 224 = 2).
    assert exact.evaluate(model, inputs, peak(6, 3), [0], masks=masks).scores.item() == 0.0
    tolerant = get_metric("pointing_game", tolerance=28.0)
    assert tolerant.evaluate(model, inputs, peak(6, 3), [0], masks=masks).scores.item() == 1.0
    # A constant map has every pixel as its maximum: it scores the object's share (chance).
    flat = exact.evaluate(model, inputs, torch.ones(1, SIZE, SIZE), [0], masks=masks)
    assert flat.scores.item() == pytest.approx(masks.float().mean().item())
    # No object: undefined, not a miss.
    empty = exact.evaluate(
        model, inputs, peak(6, 7), [0], masks=torch.zeros(1, SIZE, SIZE, dtype=torch.bool)
    )
    assert math.isnan(empty.scores.item())


# --- faithfulness -----------------------------------------------------------------------------


def test_deleting_the_object_first_gives_a_lower_deletion_auc_than_the_reverse(region_case):
    model, inputs, masks, targets = region_case
    deletion = get_metric("deletion", steps=16)
    insertion = get_metric("insertion", steps=16, start="zeros")
    first, last = masks.float(), (~masks).float()
    assert (
        deletion.evaluate(model, inputs, first, targets).scores
        < deletion.evaluate(model, inputs, last, targets).scores
    ).all()
    assert (
        insertion.evaluate(model, inputs, first, targets).scores
        > insertion.evaluate(model, inputs, last, targets).scores
    ).all()


def reference_curve(model, image, saliency, target, fill, steps):
    """Petsiuk et al.'s procedure written plainly: one image, one step at a time."""
    order = sorted(range(saliency.numel()), key=lambda p: (-float(saliency.flatten()[p]), p))
    width = image.shape[2]
    current = image.clone()
    values = []
    done = 0
    for k in range(steps + 1):
        upto = round(k * saliency.numel() / steps)
        for p in order[done:upto]:
            current[:, p // width, p % width] = fill[:, p // width, p % width]
        done = upto
        with torch.no_grad():
            logits = model(current[None])[0]
        values.append(float(logits.softmax(0)[target]))
    values = np.array(values)
    return values, (values.sum() - (values[0] + values[-1]) / 2) / steps


def random_case(seed: int, targets: list[int]) -> tuple[nn.Module, Tensor, Tensor, Tensor]:
    """``(model, inputs, maps, targets)``: after ``torch.manual_seed(seed)``, a random
    GroundTruthCNN, then one random input and one random map per target, drawn in that order."""
    torch.manual_seed(seed)
    model = GroundTruthCNN().eval()
    inputs = torch.randn(len(targets), 3, SIZE, SIZE)
    maps = torch.randn(len(targets), SIZE, SIZE)
    return model, inputs, maps, torch.tensor(targets)


@pytest.mark.parametrize("name", ["deletion", "insertion"])
def test_deletion_and_insertion_match_a_plain_reference(name):
    model, inputs, maps, targets = random_case(1, [0, 2, 3])
    # A small batch size makes each batch hold steps of several images.
    metric = get_metric(name, steps=10, batch_size=7)
    result = metric.evaluate(model, inputs, maps, targets)
    # The paper's blur: 11 taps (radius 5), sigma 5.
    blur = gaussian_blur(inputs, 5.0, radius=5)
    for i in range(3):
        if name == "deletion":
            curve, auc = reference_curve(
                model, inputs[i], maps[i], targets[i], torch.zeros_like(inputs[i]), 10
            )
        else:
            curve, auc = reference_curve(model, blur[i], maps[i], targets[i], inputs[i], 10)
        # Batched vs one image at a time through GroundTruthCNN (5 layers, 3x3x32 reductions) and
        # the softmax; the AUC's trapezoid averages the curve, so its error is the curve's.
        assert_float32_close(result.details[i]["curve"], curve, depth=5 + 1, fan_in=3 * 3 * 32)
        atol = float32_atol(curve, depth=5 + 1, fan_in=3 * 3 * 32)
        assert result.scores[i].item() == pytest.approx(auc, abs=atol)


def test_infidelity_is_zero_for_the_exact_linear_attribution_and_positive_otherwise():
    torch.manual_seed(2)
    weight = torch.randn(SIZE, SIZE)
    model = PixelLinear(weight)
    inputs = torch.randn(2, 3, SIZE, SIZE)
    exact = get_metric("infidelity", normalize=False)
    assert exact.evaluate(model, inputs, weight.expand(2, -1, -1), [0, 0]).scores.max() < 1e-8
    # Normalised infidelity ignores a map's scale; unnormalised does not.
    scaled = (5 * weight).expand(2, -1, -1)
    assert get_metric("infidelity").evaluate(model, inputs, scaled, [0, 0]).scores.max() < 1e-8
    assert exact.evaluate(model, inputs, scaled, [0, 0]).scores.min() > 1e-3
    noise = torch.randn(2, SIZE, SIZE)
    assert get_metric("infidelity").evaluate(model, inputs, noise, [0, 0]).scores.min() > 1e-3


@pytest.mark.parametrize("normalize", [False, True])
def test_infidelity_matches_captum_on_the_same_perturbations(normalize):
    from captum.metrics import infidelity

    model, inputs, maps, targets = random_case(3, [1, 0, 3])
    samples = 5
    noise = 0.1 * torch.randn(3, samples, 3, SIZE, SIZE)

    def perturb(expanded: Tensor):
        # Captum repeats each input `samples` times, input-major, as our noise is laid out.
        flat = noise.flatten(0, 1)
        return flat, expanded - flat

    reference = infidelity(
        model,
        perturb,
        inputs,
        maps[:, None].expand(-1, 3, -1, -1),
        target=targets,
        n_perturb_samples=samples,
        max_examples_per_batch=3 * samples,
        normalize=normalize,
    )
    ours = builtin.infidelity_from_noise(
        lambda x, t: builtin.model_outputs(model, x, t, "logit"),
        inputs, maps, targets, noise, normalize, batch_size=4,
    )
    # Ours vs Captum: GroundTruthCNN's forwards (5 layers) plus the square and the mean over
    # samples; the widest sum is the noise-map dot product over 3x16x16 pixels.
    assert_float32_close(ours.float(), reference.float(), depth=5 + 2, fan_in=3 * SIZE * SIZE)


def test_max_sensitivity_matches_captum_and_is_zero_for_an_input_independent_map():
    from captum.metrics import sensitivity_max

    torch.manual_seed(4)
    weight = torch.randn(SIZE, SIZE)
    saliency = xai_core.get_attributor("saliency")
    # The gradient of a linear model does not depend on the input.
    linear = get_metric("max_sensitivity", n_perturb_samples=4)
    inputs = torch.randn(2, 3, SIZE, SIZE)
    maps = saliency.attribute(PixelLinear(weight), inputs, [0, 0]).maps
    scores = linear.evaluate(PixelLinear(weight), inputs, maps, [0, 0], attributor=saliency)
    assert scores.scores.max() < 1e-6

    model = GroundTruthCNN().eval()
    targets = torch.tensor([2, 1])
    maps = saliency.attribute(model, inputs, targets.tolist()).maps
    samples = 4
    noise = 0.02 * (2 * torch.rand(2, samples, 3, SIZE, SIZE) - 1)

    def explain(x: Tensor, t: Tensor) -> Tensor:
        return saliency.attribute(model, x, t.tolist()).maps

    def perturb(expanded: Tensor) -> Tensor:
        return expanded + noise.flatten(0, 1)

    reference = sensitivity_max(
        # Captum hands inputs over as a tuple and wants explanations as one too.
        lambda x, target: (explain(x[0] if isinstance(x, tuple) else x, target),),
        inputs,
        perturb_func=perturb,
        n_perturb_samples=samples,
        max_examples_per_batch=2 * samples,
        target=targets,
    )
    ours = builtin.max_sensitivity_from_noise(explain, inputs, maps, targets, noise, "fro", 3)
    # Ours vs Captum: a ratio of two norms of saliency maps (GroundTruthCNN's forward and backward,
    # 2x5 layers, widest its 3x3x32 convolutions; the norms sum 16x16 pixels), so its rounding is
    # relative to 1, not to the (small) sensitivity.
    atol = float32_atol(1.0, depth=2 * 5 + 2, fan_in=3 * 3 * 32)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=atol)
    assert (ours > 0).all()


class CheckerModel(nn.Module):
    """Class 0's logit is the correlation of the region with a checkerboard; class 1's is 0.

    A fine pattern is what imputation from neighbours destroys (a neighbour average of a
    checkerboard is smooth), so ROAD must see the region's removal; brightness alone it would not.
    """

    def __init__(self, region: Tensor):
        super().__init__()
        rows, cols = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
        self.register_buffer("pattern", region.float() * (1 - 2 * ((rows + cols) % 2)).float())

    def forward(self, x: Tensor) -> Tensor:
        score = (x * self.pattern).flatten(1).sum(dim=1) / 10
        return torch.stack([score, torch.zeros_like(score)], dim=1)


@pytest.fixture
def checker_case():
    masks = square_mask()
    model = CheckerModel(masks[0])
    inputs = model.pattern.expand(2, 3, -1, -1) + 0.1 * torch.rand(2, 3, SIZE, SIZE)
    return model, inputs, masks, torch.zeros(2, dtype=torch.long)


def test_linear_imputation_solves_the_neighbour_mean_equations_and_keeps_planes():
    generator = torch.Generator().manual_seed(6)
    images = torch.randn(2, 3, 12, 17, generator=generator, dtype=torch.float64)
    removed = torch.rand(2, 12, 17, generator=generator) < 0.6
    filled = builtin.linear_imputation(images, removed)
    assert torch.equal(filled[~removed[:, None].expand_as(filled)],
                       images[~removed[:, None].expand_as(images)])
    # Every removed pixel is the weighted mean of its in-image neighbours (1/6 edge, 1/12 corner).
    kernel = torch.tensor([[1.0, 2.0, 1.0], [2.0, 0.0, 2.0], [1.0, 2.0, 1.0]],
                          dtype=torch.float64) / 12
    padded = torch.nn.functional.pad(filled, (1, 1, 1, 1))
    total = torch.nn.functional.conv2d(padded.flatten(0, 1)[:, None], kernel[None, None])
    weight = torch.nn.functional.conv2d(
        torch.nn.functional.pad(torch.ones(1, 1, 12, 17, dtype=torch.float64), (1, 1, 1, 1)),
        kernel[None, None],
    )
    mean = (total / weight).view_as(filled)
    # A float64 block elimination (12 rows, each a Cholesky factor, a forward and a back
    # substitution 17 wide) against the neighbour means of its own result.
    assert torch.allclose(filled[:, :, removed[0] & removed[1]],
                          mean[:, :, removed[0] & removed[1]], rtol=0,
                          atol=float64_atol(images, depth=3 * 12, fan_in=17))
    # A plane is its own neighbour mean: an interior hole in a ramp is filled exactly.
    rows, cols = torch.meshgrid(torch.arange(12.0), torch.arange(17.0), indexing="ij")
    ramp = (0.3 * rows - 0.2 * cols + 1).expand(1, 3, -1, -1)
    hole = torch.zeros(1, 12, 17, dtype=torch.bool)
    hole[0, 3:9, 4:13] = True
    # The same elimination in float32 against the exact plane.
    assert_float32_close(builtin.linear_imputation(ramp, hole), ramp, depth=3 * 12, fan_in=17)
    with pytest.raises(ValueError, match="every pixel"):
        builtin.linear_imputation(ramp, torch.ones(1, 12, 17, dtype=torch.bool))


def test_road_sees_the_pattern_removed_first_or_kept_last(checker_case):
    model, inputs, masks, targets = checker_case
    on, off = masks.float() + 0.01 * torch.rand(2, SIZE, SIZE), (~masks).float()
    morf = get_metric("road_morf", percentages=[15, 30], output="logit")
    lerf = get_metric("road_lerf", percentages=[50, 80], output="logit")
    first = morf.evaluate(model, inputs, on, targets)
    last = morf.evaluate(model, inputs, off, targets)
    original = model(inputs)[:, 0]
    # The object is 30 of 256 pixels: removing 15% or 30% of pixels object-first wipes out most
    # of the pattern; background-first leaves all of it.
    assert (first.scores < 0.6 * original).all()
    # The pattern is zero off the object, so only the sum's order can differ: CheckerModel is one
    # sum over 3x16x16 products.
    assert_float32_close(last.scores.float(), original, depth=1, fan_in=3 * SIZE * SIZE)
    assert first.details[0]["original"] == pytest.approx(float(original[0]), abs=1e-5)
    kept = lerf.evaluate(model, inputs, on, targets).scores
    lost = lerf.evaluate(model, inputs, off, targets).scores
    assert (kept > 0.95 * original).all() and (lost < 0.6 * original).all()
    with pytest.raises(ConfigError, match="strictly between 0 and 100"):
        get_metric("road_morf", percentages=[0, 50])


def test_faithfulness_correlation_is_one_for_an_additive_model_and_its_exact_map():
    torch.manual_seed(7)
    weight = torch.randn(SIZE, SIZE)
    model = PixelLinear(weight)
    inputs = torch.randn(2, 3, SIZE, SIZE)
    # With zeros as the baseline, the logit drop of a subset is exactly the subset's total of
    # gradient x input summed over channels.
    exact = weight * inputs.sum(dim=1)
    metric = get_metric("faithfulness_correlation", nr_runs=20, subset_size=30)
    assert metric.evaluate(model, inputs, exact, [0, 0]).scores.tolist() == pytest.approx([1, 1])
    noise = torch.rand(2, SIZE, SIZE)
    assert metric.evaluate(model, inputs, noise, [0, 0]).scores.abs().max() < 0.7
    flat = metric.evaluate(model, inputs, torch.ones(2, SIZE, SIZE), [0, 0])
    assert flat.scores.isnan().all()  # a constant map ranks nothing: undefined
    with pytest.raises(XaiError, match="subset_size 300 is not below the 256 pixels"):
        get_metric("faithfulness_correlation", subset_size=300).evaluate(
            model, inputs, exact, [0, 0]
        )


def test_sparseness_and_complexity_of_a_point_a_constant_and_a_zero_map():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, 2))
    inputs = torch.zeros(3, 3, SIZE, SIZE)
    maps = torch.zeros(3, SIZE, SIZE)
    maps[0, 4, 7] = -2.0  # one pixel holds everything (the sign does not count)
    maps[1] = 0.3
    pixels = SIZE * SIZE
    gini = get_metric("sparseness").evaluate(model, inputs, maps, [0, 0, 0]).scores
    entropy = get_metric("complexity").evaluate(model, inputs, maps, [0, 0, 0]).scores
    assert gini[:2].tolist() == pytest.approx([1 - 1 / pixels, 0.0], abs=1e-12)
    assert entropy[:2].tolist() == pytest.approx([0.0, math.log(pixels)], abs=1e-12)
    assert gini[2].isnan() and entropy[2].isnan()


# --- sanity check -----------------------------------------------------------------------------


class InputOnly(Attributor):
    """A 'method' that ignores the model: the Sobel-free brightness of the input."""

    name = "input_only"

    def compute(self, model, inputs, targets, context):
        return inputs.mean(dim=1)


def test_cascading_randomization_flags_a_model_independent_map_and_spares_the_model():
    torch.manual_seed(5)
    model = GroundTruthCNN().eval()
    before = copy.deepcopy(model.state_dict())
    inputs = torch.randn(2, 3, 32, 32)
    targets = [0, 1]
    metric = get_metric("cascading_randomization")
    blind = InputOnly()
    result = metric.evaluate(model, inputs, blind.attribute(model, inputs, targets).maps, targets,
                             attributor=blind)
    assert result.scores.tolist() == pytest.approx([1.0, 1.0])
    layers = result.metadata["cascade"]
    assert layers[0] == "head" and layers[-1] == "features.0"  # from the logits down
    assert len(result.details[0]["spearman"]) == len(layers) == 9

    saliency = xai_core.get_attributor("saliency")
    maps = saliency.attribute(model, inputs, targets).maps
    changed = metric.evaluate(model, inputs, maps, targets, attributor=saliency)
    assert changed.scores.max() < 0.9
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    grouped = get_metric("cascading_randomization", max_steps=3)
    result = grouped.evaluate(model, inputs, maps, targets, attributor=saliency)
    assert len(result.metadata["cascade"]) == 3


# --- contract, registry, config, runner, CLI -------------------------------------------------


def test_every_builtin_metric_is_registered_and_has_a_test_here():
    source = Path(__file__).read_text()
    assert set(list_metrics()) >= {cls.name for cls in builtin.BUILTIN_METRICS}
    for cls in builtin.BUILTIN_METRICS:
        assert f'"{cls.name}"' in source.replace(cls.name + '",', cls.name + '"'), cls.name


def test_requirements_are_checked_with_clear_errors():
    model = GroundTruthCNN().eval()
    inputs = torch.randn(1, 3, SIZE, SIZE)
    maps = torch.rand(1, SIZE, SIZE)
    with pytest.raises(XaiError, match="ground-truth object mask"):
        get_metric("pointing_game").evaluate(model, inputs, maps, [0])
    with pytest.raises(XaiError, match="needs the attributor"):
        get_metric("max_sensitivity").evaluate(model, inputs, maps, [0])
    with pytest.raises(XaiError, match=r"\[N, H, W\]"):
        get_metric("deletion").evaluate(model, inputs, maps[0], [0])
    with pytest.raises(ConfigError, match="steps"):
        get_metric("deletion", stpes=3)
    with pytest.raises(ConfigError, match="baseline"):
        get_metric("deletion", baseline="black")
    # The old name of the one baseline vocabulary's ``zeros`` says what it is called now.
    with pytest.raises(ConfigError, match="'zero' is now called 'zeros'"):
        get_metric("deletion", baseline="zero")
    with pytest.raises(ConfigError, match="'zero' is now called 'zeros'"):
        get_metric("insertion", start="zero")


def test_plugins_register_metrics_and_bad_registrations_name_the_plugin():
    class Constant(Metric):
        name = "constant_one"
        summary = "always one"
        higher_is_better = True

        def compute(self, model, inputs, maps, targets, context):
            return torch.ones(len(inputs))

    class Plugin:
        @xai_core.hookimpl
        def register_metrics(self, register):
            register(Constant)

    xai_core.register_plugin(Plugin(), name="constant")
    assert "constant_one" in list_metrics()
    model = GroundTruthCNN().eval()
    score = get_metric("constant_one").evaluate(
        model, torch.randn(1, 3, SIZE, SIZE), torch.rand(1, SIZE, SIZE), [0]
    )
    assert score.scores.tolist() == [1.0] and score.higher_is_better

    class Bad:
        @xai_core.hookimpl
        def register_metrics(self, register):
            register(InputOnly)

    xai_core.register_plugin(Bad(), name="bad")
    with pytest.raises(PluginError, match="bad.*Metric"):
        list_metrics()


def test_a_metric_must_say_which_direction_is_better():
    class Undirected(Metric):
        name = "undirected"

        @dataclass
        class Params:
            pass

        def compute(self, model, inputs, maps, targets, context):
            return maps.mean(dim=(1, 2))

    class Plugin:
        @xai_core.hookimpl
        def register_metrics(self, register):
            register(Undirected)

    xai_core.register_plugin(Plugin(), name="undirected")
    with pytest.raises(PluginError, match=r"Undirected.*set higher_is_better = True or False"):
        list_metrics()


def test_config_validates_metric_names_and_params():
    metrics = ["deletion", {"name": "insertion", "params": {"steps": 4}}]
    config = load_config({"methods": ["saliency"], "metrics": metrics})
    assert [m.name for m in config.metrics] == ["deletion", "insertion"]
    with pytest.raises(UnknownNameError, match="pointing_game"):
        load_config({"metrics": ["pointing_gam"]})
    with pytest.raises(ConfigError, match=r"metrics\[0\]\.params"):
        load_config({"metrics": [{"name": "deletion", "params": {"steps": "many"}}]})
    with pytest.raises(ConfigError, match="more than once"):
        load_config({"metrics": ["deletion", "deletion"]})


def test_table_gives_mean_sem_and_marks_the_best_by_direction():
    items = [
        {"label": "a", "metrics": {"m": 1.0, "d": 0.5}},
        {"label": "a", "metrics": {"m": 3.0, "d": None}},
        {"label": "b", "metrics": {"m": 0.0, "d": 0.1}},
    ]
    table = metrics_table(items, {"m": True, "d": False})
    row = table["rows"][0]
    assert row["m"] == {"mean": 2.0, "sem": pytest.approx(1.0), "n": 2}
    assert row["d"]["n"] == 1
    text = table_markdown(table)
    assert "| a | **2.000 ± 1.000** | 0.500 |" in text
    assert "| b | 0.000 | **0.100** |" in text


def test_run_writes_metrics_per_item_and_a_table(tmp_path):
    from PIL import Image
    from xai_core_plugins.groundtruth.data import generate

    from xai_core.runner.run import run_experiment

    data = generate(2, seed=11)
    for i, image in enumerate(data.images):
        array = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(array).save(tmp_path / f"shape{i}.png")
    config = load_config(
        {
            "model": {"name": "groundtruth_cnn", "pretrained": False},
            "inputs": [str(tmp_path / "*.png")],
            "methods": ["saliency"],
            "metrics": [
                {"name": "deletion", "params": {"steps": 4}},
                {"name": "max_sensitivity", "params": {"n_perturb_samples": 2}},
                "pointing_game",
            ],
            "output_dir": str(tmp_path / "out"),
            "figures": False,
        }
    )
    result = run_experiment(config)
    item = result.items[0]
    assert set(item["metrics"]) == {"deletion", "max_sensitivity", "pointing_game"}
    assert 0.0 <= item["metrics"]["deletion"] <= 1.0
    assert len(item["metric_details"]["deletion"]["curve"]) == 5
    # No masks for photos from disk: the localisation metric says so instead of failing the run.
    assert item["metrics"]["pointing_game"] is None
    assert "mask" in item["metric_errors"]["pointing_game"]
    table = (tmp_path / "out" / "metrics.md").read_text()
    assert "| saliency |" in table and "deletion ↓" in table
    assert result.results["metrics"]["rows"][0]["deletion"]["n"] == 2


def test_cli_lists_metrics(capsys):
    assert main(["list", "metrics"]) == 0
    out = capsys.readouterr().out
    for cls in builtin.BUILTIN_METRICS:
        assert cls.name in out
    assert "needs mask" in out
