"""Synthesizers: fooling images, FGSM/PGD (cross-checked against torchattacks), class
visualization. Mechanics run on tiny random models; the claims about real predictions run on the
offline EfficientNet-Lite0, whose normalization (mean = std = 0.5) is not ImageNet's."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import torch
from numerics import assert_float32_close
from PIL import Image
from reference_adapters import PixelModel
from torch import nn
from xai_core_plugins.synthesis.common import quantize

import xai_core
from xai_core.contracts.model import ModelHandle, Preprocessing
from xai_core.contracts.synthesizer import SynthesisRecord
from xai_core.errors import ConfigError, InputError
from xai_core.io import read_array
from xai_core.nn.images import gaussian_blur
from xai_core.runner.config import MethodConfig
from xai_core.runner.inputs import load_image, sample_path
from xai_core.store import load_items

DEMO_PHOTOS = ("cat", "coffee", "rocket", "astronaut")


@pytest.fixture(scope="module")
def demo_pixels(lite0):
    """The four demo photos as Lite0 sees them, in pixel space [0, 1]: [4, 3, 224, 224]."""
    return torch.stack(
        [lite0.preprocessing.to_pixels(load_image(sample_path(n))) for n in DEMO_PHOTOS]
    )


@pytest.fixture(scope="module")
def tiny():
    """A random conv net with an odd normalization, 10 classes, at 32x32."""
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.5),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(128, 10),
    )
    pre = Preprocessing(
        input_size=(32, 32), resize_size=32, mean=(0.2, 0.5, 0.7), std=(0.1, 0.3, 0.2)
    )
    return ModelHandle("tiny", module.eval(), pre, [f"c{i}" for i in range(10)])


def predict(handle: ModelHandle, pixels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return handle.module(handle.normalize(pixels)).argmax(dim=1)


def png_round_trip(pixels: torch.Tensor) -> torch.Tensor:
    """Write ``[3, H, W]`` as an 8-bit PNG in memory and read it back."""
    buffer = io.BytesIO()
    array = (pixels.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(array).save(buffer, format="PNG")
    buffer.seek(0)
    back = np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(back).permute(2, 0, 1)


# --- torchattacks cross-checks on the real model -----------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "ours, params, reference",
    [
        ("pgd", dict(eps=4 / 255, step_size=1 / 255, steps=3), ("PGD", False)),
        ("pgd", dict(eps=4 / 255, step_size=1 / 255, steps=3, targeted=True), ("PGD", True)),
        ("pgd", dict(eps=0.5, step_size=0.2, steps=3, norm="l2"), ("PGDL2", False)),
        ("pgd", dict(eps=0.5, step_size=0.2, steps=3, norm="l2", targeted=True), ("PGDL2", True)),
        ("fgsm", dict(eps=2 / 255), ("FGSM", False)),
        ("fgsm", dict(eps=2 / 255, targeted=True), ("FGSM", True)),
        ("fgsm", dict(eps=0.5, norm="l2"), ("PGDL2", False)),
    ],
)
def test_matches_torchattacks(lite0, demo_pixels, ours, params, reference):
    torchattacks = pytest.importorskip("torchattacks")
    images = demo_pixels[:2]
    # Targeted: reach goldfish / volcano; untargeted: leave the prediction.
    targets = torch.tensor([1, 980]) if params.get("targeted") else predict(lite0, images)
    result = xai_core.get_synthesizer(ours, **params).synthesize(lite0, targets, images=images)

    name, targeted = reference
    wrapped = PixelModel(lite0).eval()
    if name == "FGSM":
        attack = torchattacks.FGSM(wrapped, eps=params["eps"])
    else:
        alpha = params.get("step_size", params["eps"])
        cls = getattr(torchattacks, name)
        attack = cls(wrapped, eps=params["eps"], alpha=alpha, steps=params.get("steps", 1),
                     random_start=False)
    if targeted:
        attack.set_mode_targeted_by_label(quiet=True)
    expected = attack(images, targets)

    assert result.images.shape == images.shape
    assert (result.images - images).abs().max() > 1e-3  # the attack did change the images
    # The gradient's rounding reaches the images only through its sign (a flipped sign would
    # differ by a whole step, 1/255 or more): what is left is the rounding of the steps' sums
    # and the clamps, one addition a step plus the projection and the clamp.
    steps = params.get("steps", 1)
    assert_float32_close(result.images, expected, depth=steps + 2)


@pytest.mark.slow
def test_untargeted_pgd_fools_every_demo_photo(lite0, demo_pixels):
    pgd = xai_core.get_synthesizer("pgd", eps=4 / 255, step_size=1 / 255, steps=10)
    before = predict(lite0, demo_pixels)
    result = pgd.synthesize(lite0, "predicted", images=demo_pixels)
    after = predict(lite0, result.images)
    assert (after != before).all()
    assert all(r.success for r in result.records)
    assert max(r.linf for r in result.records) <= 4 / 255 + 1e-6
    assert result.images.min() >= 0 and result.images.max() <= 1


# --- fooling images ----------------------------------------------------------------------------


@pytest.mark.slow
def test_fooling_survives_png_round_trip(lite0, demo_pixels):
    fooling = xai_core.get_synthesizer("fooling", linf_budget=4 / 255, max_iterations=40)
    photos = demo_pixels[:2]
    result = fooling.synthesize(lite0, ["goldfish", "volcano"], images=photos)
    back = torch.stack([png_round_trip(image) for image in result.images])
    assert torch.equal(back, result.images)  # already on the 8-bit grid
    assert predict(lite0, back).tolist() == result.targets.tolist() == [1, 980]
    for record in result.records:
        assert record.success and record.extra["eight_bit"]
        assert 1 <= record.iterations <= 40
        assert record.linf <= 4 / 255 + 1e-6
        assert record.target_probability == record.predicted_probability
        assert set(record.as_dict()) >= {"l2", "seconds", "target_label"}


@pytest.mark.slow
def test_fooling_reports_failure_at_the_cap(lite0, demo_pixels):
    # One grey level and two iterations cannot turn a cat into a volcano.
    fooling = xai_core.get_synthesizer("fooling", linf_budget=1 / 255, max_iterations=2)
    result = fooling.synthesize(lite0, "volcano", images=demo_pixels[:1])
    (record,) = result.records
    assert not record.success and record.iterations == 2
    assert record.predicted != 980
    assert record.linf <= 1 / 255 + 1e-6


def test_fooling_l2_budget_and_target_already_predicted(tiny):
    torch.manual_seed(1)
    photos = torch.rand(3, 3, 32, 32)
    predicted = predict(tiny, photos)
    other = (predicted + 1) % 10
    fooling = xai_core.get_synthesizer("fooling", l2_budget=0.3, step_norm="l2", step_size=0.05,
                                       max_iterations=5)
    result = fooling.synthesize(tiny, predicted.tolist(), images=photos)
    assert [r.iterations for r in result.records] == [0, 0, 0]
    moved = fooling.synthesize(tiny, other.tolist(), images=photos)
    for r in moved.records:
        # The budget holds for the continuous image; 8-bit rounding adds at most half a level.
        assert r.l2 <= 0.3 + 0.5 / 255 * (3 * 32 * 32) ** 0.5


def test_quantize_stays_inside_the_linf_budget():
    torch.manual_seed(0)
    start = torch.rand(2, 3, 8, 8)
    moved = (start + torch.empty_like(start).uniform_(-0.1, 0.1)).clamp(0, 1)
    q = quantize(moved, start, 2 / 255)
    assert torch.equal((q * 255).round(), q * 255)
    assert (q - start).abs().max() <= 2 / 255 + 1e-7


# --- mechanics on a tiny model -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["fooling", "pgd", "fgsm", "class_visualization"])
def test_model_state_restored_and_images_valid(tiny, name):
    tiny.module.train()
    torch.manual_seed(2)
    photos = torch.rand(2, 3, 32, 32)
    params = {"steps": 3, "image_size": 32} if name == "class_visualization" else {}
    result = xai_core.get_synthesizer(name, **params).synthesize(tiny, [3, 4], images=photos)
    assert tiny.module.training and all(m.training for m in tiny.module.modules())
    assert all(p.requires_grad for p in tiny.module.parameters())
    assert not any(m._forward_hooks for m in tiny.module.modules())
    assert result.images.shape == (2, 3, 32, 32)
    assert result.images.min() >= 0 and result.images.max() <= 1
    assert len(result.records) == 2
    for r in result.records:
        assert isinstance(r, SynthesisRecord) and r.l2 is not None and r.seconds is not None
    tiny.module.eval()


@pytest.mark.parametrize("norm, eps", [("linf", 3 / 255), ("l2", 0.25)])
def test_budget_is_in_pixel_space_whatever_the_normalization(tiny, norm, eps):
    torch.manual_seed(3)
    photos = torch.rand(4, 3, 32, 32)
    pgd = xai_core.get_synthesizer("pgd", eps=eps, step_size=eps / 2, steps=5, norm=norm,
                                   random_start=True, seed=7)
    result = pgd.synthesize(tiny, "predicted", images=photos)
    delta = (result.images - photos).flatten(1)
    size = delta.abs().amax(dim=1) if norm == "linf" else delta.norm(dim=1)
    assert (size <= eps + 1e-5).all()
    assert (size >= 0.5 * eps).all()  # it does use the budget
    again = pgd.synthesize(tiny, "predicted", images=photos)
    assert torch.equal(again.images, result.images)  # seeded random start
    other = xai_core.get_synthesizer("pgd", eps=eps, step_size=eps / 2, steps=5, norm=norm,
                                     random_start=True, seed=8)
    assert not torch.equal(other.synthesize(tiny, "predicted", images=photos).images,
                           result.images)


def test_class_visualization_is_seeded_and_keeps_snapshots(tiny):
    cv = xai_core.get_synthesizer("class_visualization", steps=6, image_size=24, record_every=2,
                                  seed=5)
    first = cv.synthesize(tiny, [1, 2])
    second = cv.synthesize(tiny, [1, 2])
    assert torch.equal(first.images, second.images)
    snaps = first.snapshots
    assert snaps.steps == [2, 4, 6] and snaps.images.shape == (3, 2, 3, 24, 24)
    third = xai_core.get_synthesizer("class_visualization", steps=6, image_size=24, seed=6)
    assert not torch.equal(third.synthesize(tiny, [1, 2]).images, first.images)


def test_class_visualization_raises_its_class_score(tiny):
    torch.manual_seed(0)
    cv = xai_core.get_synthesizer("class_visualization", steps=30, image_size=32, blur_every=0,
                                  jitter=2)
    result = cv.synthesize(tiny, [7])
    start = (0.5 + 0.1 * torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        before = tiny.module(tiny.normalize(start.clamp(0, 1))).softmax(1)[0, 7]
    record = result.records[0]
    assert record.target_probability > before + 0.15
    assert record.success and record.predicted == 7


@pytest.mark.slow
def test_class_visualization_convinces_lite0(lite0):
    cv = xai_core.get_synthesizer("class_visualization", steps=40, learning_rate=0.02,
                                  image_size=128)
    (record,) = cv.synthesize(lite0, "volcano").records
    assert record.success and record.target_probability > 0.9


def test_gaussian_blur_keeps_constants_and_smooths():
    flat = torch.full((1, 3, 9, 9), 0.3)
    torch.testing.assert_close(gaussian_blur(flat, 1.0), flat)
    spike = torch.zeros(1, 1, 9, 9)
    spike[0, 0, 4, 4] = 1
    blurred = gaussian_blur(spike, 1.0)
    assert blurred.shape == spike.shape
    assert blurred[0, 0, 4, 4] < 0.2 and abs(float(blurred.sum()) - 1) < 1e-5


# --- errors ------------------------------------------------------------------------------------


def test_clear_errors(tiny):
    with pytest.raises(InputError, match="starting images"):
        xai_core.get_synthesizer("fooling").synthesize(tiny, 3)
    with pytest.raises(InputError, match="pixel space"):
        xai_core.get_synthesizer("pgd").synthesize(tiny, 3, images=torch.randn(1, 3, 32, 32) * 3)
    grey_level = r"'fooling.linf_budget': must be at least 0.00392\d* \(one grey level"
    with pytest.raises(ConfigError, match=grey_level):
        xai_core.get_synthesizer("fooling", linf_budget=0.001)
    with pytest.raises(ConfigError, match="'linf', 'l2'"):
        xai_core.get_synthesizer("pgd", norm="l1")
    with pytest.raises(ConfigError, match="steps"):
        xai_core.get_synthesizer("class_visualization", steps=0)


# --- the experiment runner ---------------------------------------------------------------------


@pytest.mark.slow
def test_runner_writes_fooling_pgd_and_class_visualization(tmp_path, lite0):
    import json

    from xai_core.runner.config import load_config
    from xai_core.runner.run import run_experiment

    config = load_config(
        "configs/demo.yaml", [f"output_dir={tmp_path}", "inputs=[sample:cat]", "figures=true"]
    )
    config.methods = [
        MethodConfig(name="fooling", params={"classes": ["goldfish"], "linf_budget": 4 / 255,
                                             "max_iterations": 40}),
        MethodConfig(name="pgd", params={"eps": 4 / 255, "step_size": 1 / 255, "steps": 2}),
        MethodConfig(name="class_visualization", label="classes",
                     params={"classes": ["goldfish", "980"], "steps": 3, "image_size": 48,
                             "record_every": 1}),
    ]
    run = run_experiment(config)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["summary"]["failed"] == 0, [i["error"] for i in run.items]
    items = {(i["label"], i["target"]): i for i in load_items(tmp_path, results)}
    assert len(items) == 4 and len(run.items) == 4

    fool = items[("fooling", 1)]
    assert fool["key"] == "cat" and fool["target_label"] == "goldfish"
    assert fool["record"]["success"] and fool["record"]["linf"] <= 4 / 255 + 1e-6
    png = np.asarray(Image.open(tmp_path / fool["files"]["image"]).convert("RGB"))
    back = torch.from_numpy(png.astype(np.float32) / 255).permute(2, 0, 1)[None]
    assert predict(lite0, back).item() == 1  # the PNG on disk still fools the model
    assert (tmp_path / fool["files"]["figure"]).is_file()
    assert fool["files"]["figure"] == "figures/cat/fooling-1.png"

    pgd = items[("pgd", 282)]  # untargeted: away from the predicted tiger cat
    assert pgd["files"]["image"] == "images/cat/pgd.png" and pgd["record"]["iterations"] == 2

    cv = [items[("classes", 1)], items[("classes", 980)]]
    assert [i["target_label"] for i in cv] == ["goldfish", "volcano"]
    assert all(i["image"] is None and i["record"]["iterations"] == 3 for i in cv)
    array = read_array(tmp_path / cv[1]["files"]["array"])
    assert array.shape == (3, 48, 48) and array.dtype == np.float32
    assert cv[0]["files"]["figure"] == "figures/classes.png"
    assert (tmp_path / "figures" / "classes.png").is_file()


def test_runner_explains_missing_classes(tmp_path):
    from xai_core.runner.config import load_config
    from xai_core.runner.run import run_experiment

    config = load_config(
        "configs/demo.yaml", [f"output_dir={tmp_path}", "inputs=[sample:cat]"]
    )
    config.methods = [MethodConfig(name="class_visualization", params={"steps": 1})]
    (item,) = run_experiment(config).items
    assert "needs classes" in item["error"]


# --- Lucid-style feature visualization ---------------------------------------------------------


def test_feature_visualization_objectives_are_deterministic(tiny_resnet):
    fv = xai_core.get_synthesizer(
        "feature_visualization", steps=3, image_size=40,
        objective="class + 0.5*channel:layer3:4 + neuron:layer2:1:2:2", record_every=3,
    )
    first = fv.synthesize(tiny_resnet, [1, 2])
    assert first.images.shape == (2, 3, 40, 40)
    assert 0 < first.images.min() and first.images.max() < 1  # a sigmoid's open interval
    assert torch.equal(fv.synthesize(tiny_resnet, [1, 2]).images, first.images)
    assert first.snapshots.images.shape == (1, 2, 3, 40, 40)
    objective = "class + 0.5*channel:layer3:4 + neuron:layer2:1:2:2"
    assert first.records[0].extra["objective"] == objective
    assert not any(m._forward_hooks for m in tiny_resnet.module.modules())
    other = xai_core.get_synthesizer("feature_visualization", steps=3, image_size=40, seed=1)
    assert not torch.equal(other.synthesize(tiny_resnet, [1, 2]).images, first.images)


def test_feature_visualization_raises_a_channel(tiny_resnet):
    from xai_core_plugins.synthesis.feature_visualization import FourierImage

    layer = dict(tiny_resnet.module.named_modules())["layer3.0.conv1"]
    seen = {}
    hook = layer.register_forward_hook(lambda _m, _i, out: seen.update(out=out))

    def mean_channel(images):
        with torch.no_grad():
            tiny_resnet.module(tiny_resnet.normalize(images))
        return seen["out"][:, 5].mean().item()

    start = FourierImage(1, (48, 48), generator=torch.Generator().manual_seed(0))().detach()
    fv = xai_core.get_synthesizer("feature_visualization", steps=15, image_size=48,
                                  objective="channel:layer3.0.conv1:5", transforms=False)
    result = fv.synthesize(tiny_resnet, 0)
    try:
        assert mean_channel(result.images) > mean_channel(start) + 0.1
    finally:
        hook.remove()


def test_objective_algebra_and_parsing():
    from xai_core_plugins.synthesis.feature_visualization import (
        channel,
        class_logit,
        parse_objective,
    )

    acts = {"a": torch.arange(24.0).view(1, 2, 3, 4).repeat(2, 1, 1, 1)}
    logits = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    targets = torch.tensor([2, 0])
    combined = 2 * class_logit() + channel("a", 1)
    expected = 2 * torch.tensor([3.0, 4.0]) + torch.arange(12.0, 24.0).mean()
    torch.testing.assert_close(combined(acts, logits, targets), expected)
    neuron = parse_objective("neuron:a:0")  # centre of a 3x4 map: row 1, column 2
    torch.testing.assert_close(neuron(acts, logits, targets), torch.tensor([6.0, 6.0]))
    assert parse_objective("-1*class:1")(acts, logits, targets).tolist() == [-2.0, -5.0]
    for bad in ("", "class +", "channel:a", "3x*class", "pixel:a:1"):
        with pytest.raises(ConfigError):
            parse_objective(bad)
    with pytest.raises(xai_core.XaiError, match="2 channels"):
        channel("a", 7)(acts, logits, targets)


def test_class_objectives_reward_the_class_against_the_rest():
    from xai_core_plugins.synthesis.feature_visualization import parse_objective

    logits = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 9.0]])
    targets = torch.tensor([2, 0])
    expected = logits.log_softmax(1)[[0, 1], [2, 0]]
    torch.testing.assert_close(parse_objective("logprob")({}, logits, targets), expected)
    torch.testing.assert_close(
        parse_objective("centered:1")({}, logits, targets), torch.tensor([0.0, -1.0])
    )
    # Raising every logit together raises the logit objective, not the other two.
    for text, changes in (("class", True), ("logprob", False), ("centered", False)):
        objective = parse_objective(text)
        lifted = objective({}, logits + 5, targets) - objective({}, logits, targets)
        assert bool((lifted.abs() > 1e-4).all()) is changes, text


def test_logprob_objective_makes_the_class_more_probable_than_the_logit():
    # Red raises every class; green is class 0's own evidence and blue class 1's. The logit of
    # class 0 ignores blue, its log-probability pushes blue down as well.
    linear = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[4.0, 3.0, 0.0], [4.0, 0.0, 3.0], [4.0, 0.0, 0.0]]))
    module = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), linear)
    pre = Preprocessing(input_size=(8, 8), resize_size=8, mean=(0.0,) * 3, std=(1.0,) * 3)
    handle = ModelHandle("colours", module.eval(), pre, ["green", "blue", "red"])

    def probability(objective: str) -> float:
        fv = xai_core.get_synthesizer("feature_visualization", steps=60, objective=objective,
                                      learning_rate=0.5, transforms=False, decorrelate=False)
        images = fv.synthesize(handle, [0]).images
        with torch.no_grad():
            return module(images).softmax(1)[0, 0].item()

    by_logit = probability("class")  # about 0.73; the other two about 0.87
    assert probability("logprob") > by_logit + 0.08
    assert probability("centered") > by_logit + 0.08


def test_robustness_views_are_drawn_per_image():
    from xai_core_plugins.synthesis.feature_visualization import robustness_transform

    torch.manual_seed(0)
    images = torch.rand(2, 3, 24, 24)

    def views(seed: int = 0, **kwargs) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return robustness_transform(images, gen, **kwargs)

    same = views(size=(24, 24), scales=(1.0, 1.0), jitter=0, degrees=0)
    # No transform: the image, through affine_grid, grid_sample's 4-term bilinear sum at
    # coordinates rescaled to 24 pixels and the -0.5/+0.5 shift (depth 4, fan_in 4).
    assert_float32_close(same, images, depth=4, fan_in=4)
    out = views(size=(16, 16), copies=3, scales=(0.5, 0.5), jitter=0, degrees=0)
    assert out.shape == (6, 3, 16, 16)
    assert torch.equal(out[:, :, 0, 0], torch.full((6, 3), 0.5))  # shrunk: a grey border
    random_views = views(size=(24, 24), copies=2, scales=(0.7, 1.3), jitter=3, degrees=20)
    assert not torch.allclose(random_views[0], random_views[2])  # two views of image 0
    assert torch.equal(random_views, views(size=(24, 24), copies=2, scales=(0.7, 1.3),
                                           jitter=3, degrees=20))
    assert not torch.equal(random_views, views(1, size=(24, 24), copies=2, scales=(0.7, 1.3),
                                               jitter=3, degrees=20))


def test_feature_visualization_views_reach_the_model(tiny_resnet):
    shapes = []
    hook = tiny_resnet.module.register_forward_hook(
        lambda _m, inputs, _o: shapes.append(tuple(inputs[0].shape)))
    try:
        fv = xai_core.get_synthesizer("feature_visualization", steps=2, image_size=40, views=3,
                                      view_size=24)
        result = fv.synthesize(tiny_resnet, [1, 2])
    finally:
        hook.remove()
    assert result.images.shape == (2, 3, 40, 40)
    assert shapes[:2] == [(6, 3, 24, 24)] * 2  # two steps, three views of each of two images
    with pytest.raises(ConfigError, match="min_scale 1.2 is above max_scale 0.9"):
        xai_core.get_synthesizer("feature_visualization", min_scale=1.2, max_scale=0.9)


def test_feature_visualization_unknown_layer_is_a_clear_error(tiny_resnet):
    fv = xai_core.get_synthesizer("feature_visualization", steps=1, objective="channel:layr3:0")
    with pytest.raises(xai_core.XaiError, match="layr3"):
        fv.synthesize(tiny_resnet, 0)


@pytest.fixture(scope="module")
def tiny_vit():
    """A random timm ViT at 32x32 (patches of 8): a fixed-size model with token outputs."""
    torch.manual_seed(0)
    handle = xai_core.load_model(
        "timm/vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2,
        num_classes=10,
    )
    # timm's config still says 224; the model itself only takes 32x32.
    handle.preprocessing = dataclasses.replace(
        handle.preprocessing, input_size=(32, 32), resize_size=32
    )
    return handle


@pytest.mark.parametrize(
    "name, params",
    [
        ("fooling", {"max_iterations": 3}),
        ("pgd", {"steps": 2}),
        ("fgsm", {}),
        ("class_visualization", {"steps": 2}),
        ("feature_visualization", {"steps": 2, "objective": "class + neuron:blocks.1:3"}),
    ],
)
def test_every_synthesizer_runs_on_a_vit(tiny_vit, name, params):
    synthesizer = xai_core.get_synthesizer(name, **params)
    photos = None
    if synthesizer.starts_from_images:
        photos = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    result = synthesizer.synthesize(tiny_vit, [1, 2], images=photos)
    assert result.images.shape == (2, 3, 32, 32)
    assert torch.isfinite(result.images).all()
    assert [r.target for r in result.records] == [1, 2]
