"""Target kinds (plugins/targets.py, xai_core/contracts/target_kinds.py): each kind's score
against references that compute the same score by hand (Captum with a forward function,
pytorch-grad-cam's ``SemanticSegmentationTarget``), every attributor with a target kind against
the same attributor on a model whose only output is that score, metrics, and the errors.

Weights that tell methods apart: batch-norm statistics of a real batch (not the identity of a
fresh initialisation) and random biases.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from numerics import assert_float32_close
from torch import nn

import xai_core
from xai_core.contracts.target_kinds import TargetKind
from xai_core.errors import ConfigError, TargetError, UnknownNameError
from xai_core.plugins.factory import build_target, parse_target

captum_attr = pytest.importorskip("captum.attr")


def with_statistics(model: nn.Module, size: int, seed: int = 0) -> nn.Module:
    """``model`` in eval mode with batch-norm statistics of a random batch and random biases."""
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = 1.0
            m.bias.data.uniform_(-0.5, 0.5)
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, size, size))
    return model.eval()


@pytest.fixture(scope="module")
def net():
    import timm

    torch.manual_seed(0)
    return with_statistics(timm.create_model("resnet10t", pretrained=False, num_classes=6), 32)


@pytest.fixture
def x():
    torch.manual_seed(1)
    return torch.randn(2, 3, 32, 32)


class Scored(nn.Module):
    """``model`` whose only output is ``score(model(x))``: the reference way to explain a score
    (wrap the model), against which a target kind must give the same maps."""

    def __init__(self, model: nn.Module, score):
        super().__init__()
        self.model, self.score = model, score

    def forward(self, x):
        return self.score(self.model(x)).reshape(len(x), 1)


#: (kind, its keys, the score it explains written by hand)
KINDS = [
    ("multilabel", {"label": 2}, lambda z: z[:, 2]),
    ("multilabel", {"label": 2, "score": "probability"}, lambda z: z[:, 2].sigmoid()),
    ("regression", {"output": 4}, lambda z: z[:, 4]),
    ("logit_difference", {"a": 1, "b": 3}, lambda z: z[:, 1] - z[:, 3]),
]


@pytest.mark.parametrize("kind, keys, score", KINDS)
def test_saliency_and_integrated_gradients_match_captum(net, x, kind, keys, score):
    target = xai_core.get_target(kind, **keys)

    def forward(t):
        return score(net(t))

    ours = xai_core.get_attributor("saliency", abs=False, reduction="sum").attribute(net, x, target)
    theirs = captum_attr.Saliency(forward).attribute(x.clone(), abs=False).sum(1)
    # ResNet-10-T: ~12 layers, 3x3x512 reductions.
    assert_float32_close(ours.maps, theirs, depth=12, fan_in=3 * 3 * 512)
    ig = xai_core.get_attributor(
        "integrated_gradients", steps=8, method="riemann_left", baseline="zeros",
        channels_last=False,
    ).attribute(net, x, target)
    theirs = captum_attr.IntegratedGradients(forward).attribute(
        x.clone(), baselines=0.0, n_steps=8, method="riemann_left"
    ).sum(1)
    assert_float32_close(ig.maps, theirs, depth=12 + 1, fan_in=3 * 3 * 512)
    with torch.no_grad():
        expected = score(net(x))
    assert_float32_close(ours.target_values, expected, depth=12, fan_in=3 * 3 * 512)
    assert len(ours.target_labels) == 2 and ours.targets.tolist() == [ours.targets[0]] * 2


def test_a_callable_that_returns_scores_is_a_target(net, x):
    def margin(z):
        return z[:, 1] - z[:, 3]

    ours = xai_core.get_attributor("saliency").attribute(net, x, margin)
    kind = xai_core.get_attributor("saliency").attribute(
        net, x, xai_core.get_target("logit_difference", a=1, b=3)
    )
    assert torch.equal(ours.maps, kind.maps)
    assert ours.target_labels == ["margin", "margin"]
    # A callable that picks classes keeps its meaning: the classes' logits are explained.
    classes = xai_core.get_attributor("saliency").attribute(net, x, lambda z: z.argmin(dim=1))
    assert classes.targets.tolist() == net(x).argmin(dim=1).tolist()
    with pytest.raises(TargetError, match="one score per image"):
        xai_core.get_attributor("saliency").attribute(net, x, lambda z: z[:, :2])


def test_multilabel_predicted_explains_every_label_over_threshold(net, x):
    with torch.no_grad():
        probs = net(x).sigmoid()
    ranked = probs.flatten().sort().values
    threshold = float(ranked[6] + ranked[7]) / 2  # some labels over, some under, none close
    target = xai_core.get_target("multilabel", threshold=threshold)
    result = xai_core.get_attributor("saliency").attribute(net, x, target)
    expected = []
    for i, row in enumerate(probs):
        over = [c for c in row.argsort(descending=True).tolist() if row[c] > threshold]
        expected += [(i, c) for c in over]
    assert list(zip(result.input_index.tolist(), result.targets.tolist())) == expected
    assert result.target_choices == [c for _, c in expected]
    # Each map is the gradient of its own label's logit.
    for row, (i, c) in enumerate(expected):
        one = xai_core.get_attributor("saliency").attribute(net, x[i : i + 1], [c])
        assert_float32_close(result.maps[row], one.maps[0], depth=12, fan_in=3 * 3 * 512)
    none = xai_core.get_target("multilabel", threshold=0.999)
    assert len(xai_core.get_attributor("saliency").attribute(net, x, none)) == 0


@pytest.mark.parametrize("name", sorted(xai_core.list_attributors()))
def test_every_attributor_explains_a_kind_as_the_model_of_its_score(net, x, name):
    """Every attributor explains ``logit_difference`` exactly as it explains the one logit of a
    model that computes that difference (or refuses both, for the same reason)."""
    params = {"steps": 4} if name in ("integrated_gradients", "blur_ig") else {}
    method = xai_core.get_attributor(name, **params)
    wrapped = Scored(net, lambda z: z[:, 1] - z[:, 3])
    try:
        reference = method.attribute(wrapped, x, 0).maps
    except Exception as exc:  # noqa: BLE001 - a method that cannot run on this CNN at all
        with pytest.raises(type(exc)):
            method.attribute(net, x, xai_core.get_target("logit_difference", a=1, b=3))
        return
    kind = xai_core.get_target("logit_difference", a=1, b=3)
    if getattr(method.params, "score", None) == "probability":
        # The wrapper's softmax over its one output is 1 whatever the input: a map of nothing,
        # which the kind refuses; its logit is what both explain then.
        with pytest.raises(TargetError, match="not a probability"):
            method.attribute(net, x, kind)
        method = xai_core.get_attributor(name, **params, score="logit")
        reference = method.attribute(wrapped, x, 0).maps
    ours = method.attribute(net, x, kind).maps
    scale = max(float(reference.abs().max()), 1e-30)
    # Same passes, one more subtraction in another place: float32 rounding of the network
    # (perturbation methods that read a softmax refuse a kind without probability above).
    np.testing.assert_allclose(ours.numpy(), reference.numpy(), rtol=0, atol=1e-4 * scale)


def test_metrics_read_the_kind_score(net, x):
    target = xai_core.get_target("regression", output=4)
    maps = xai_core.get_attributor("saliency").attribute(net, x, target).maps
    wrapped = Scored(net, lambda z: z[:, 4])
    for name in ("deletion", "faithfulness_correlation", "road_morf"):
        metric = xai_core.get_metric(name, output="logit")
        ours = metric.evaluate(net, x, maps, [4, 4], kind=target).scores
        reference = metric.evaluate(wrapped, x, maps, [0, 0]).scores
        np.testing.assert_allclose(ours.numpy(), reference.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(TargetError, match="not a probability"):
        xai_core.get_metric("deletion", output="probability").evaluate(
            net, x, maps, [4, 4], kind=target
        )
    # A sigmoid head's probability is its sigmoid, not a softmax over one column.
    label = xai_core.get_target("multilabel", label=2)
    maps = xai_core.get_attributor("saliency").attribute(net, x, label).maps
    prob = Scored(net, lambda z: z[:, 2].sigmoid())
    ours = xai_core.get_metric("deletion", output="probability").evaluate(
        net, x, maps, [2, 2], kind=label
    ).scores
    reference = xai_core.get_metric("deletion", output="logit").evaluate(prob, x, maps, [0, 0])
    np.testing.assert_allclose(ours.numpy(), reference.scores.numpy(), rtol=1e-5, atol=1e-6)


def test_randomisation_check_explains_the_same_kind(net, x):
    target = xai_core.get_target("logit_difference", a=1, b=3)
    saliency = xai_core.get_attributor("saliency")
    maps = saliency.attribute(net, x, target).maps
    metric = xai_core.get_metric("cascading_randomization")
    ours = metric.evaluate(net, x, maps, [[1, 3]] * 2, kind=target, attributor=saliency).scores
    wrapped = Scored(net, lambda z: z[:, 1] - z[:, 3])
    # The randomised copies of the wrapper are made layer by layer like those of the model.
    reference = metric.evaluate(wrapped, x, maps, [0, 0], attributor=saliency).scores
    np.testing.assert_allclose(ours.numpy(), reference.numpy(), rtol=1e-5, atol=1e-6)


class Probe(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.Softplus()
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))

    def forward(self, x):
        return self.head(self.act(self.conv(x)))


def test_channel_and_neuron_match_captum_neuron_gradient(x):
    torch.manual_seed(0)
    model = Probe().eval()
    for target, selector in [
        (xai_core.get_target("neuron", layer="act", channel=2, position=[5, 7]), (2, 5, 7)),
        (xai_core.get_target("channel", layer="act", channel=1),
         lambda out: out[:, 1].mean(dim=(1, 2))),
    ]:
        ours = xai_core.get_attributor("saliency", abs=False, reduction="sum").attribute(
            model, x, target
        )
        theirs = captum_attr.NeuronGradient(model, model.act).attribute(
            x.clone(), neuron_selector=selector
        ).sum(1)
        assert_float32_close(ours.maps, theirs, depth=2, fan_in=27)
    with pytest.raises(TargetError, match="out of range"):
        xai_core.get_attributor("saliency").attribute(
            model, x, xai_core.get_target("channel", layer="act", channel=9)
        )
    with pytest.raises(UnknownNameError, match="conv"):
        xai_core.get_attributor("saliency").attribute(
            model, x, xai_core.get_target("channel", layer="cnv")
        )


def test_embedding_similarity_to_a_vector_and_an_image(net, x, tmp_path):
    reference = torch.randn(6)
    np.save(tmp_path / "ref.npy", reference.numpy())
    target = xai_core.get_target("embedding_similarity", reference=str(tmp_path / "ref.npy"))
    ours = xai_core.get_attributor("saliency", abs=False, reduction="sum").attribute(
        net, x, target
    )

    def forward(t):
        return torch.nn.functional.cosine_similarity(net(t), reference[None], dim=1)

    theirs = captum_attr.Saliency(forward).attribute(x.clone(), abs=False).sum(1)
    assert_float32_close(ours.maps, theirs, depth=13, fan_in=3 * 3 * 512)
    # An image's own embedding: similarity 1 with itself.
    same = xai_core.get_target("embedding_similarity", reference=x[0])
    values = xai_core.get_attributor("saliency").attribute(net, x[:1], same).target_values
    assert abs(float(values[0]) - 1) < 1e-5
    with pytest.raises(TargetError, match="embedding has 6 values, the reference 7"):
        bad = torch.randn(7)
        xai_core.get_attributor("saliency").attribute(
            net, x, xai_core.get_target("embedding_similarity", reference=bad)
        )


# --- segmentation: pytorch-grad-cam's SemanticSegmentationTarget --------------------------------


@pytest.fixture(scope="module")
def deeplab():
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.segmentation.deeplabv3_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=5
    )
    return with_statistics(model, 96)


class OutOnly(nn.Module):
    """pytorch-grad-cam's documented wrapper for torchvision segmentation models."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)["out"]


@pytest.mark.parametrize("region", ["predicted", [8, 16, 72, 60]])
def test_segmentation_grad_cam_matches_pytorch_grad_cam(deeplab, region):
    pgc = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

    torch.manual_seed(2)
    x = torch.randn(2, 3, 96, 96)
    target = xai_core.get_target("segmentation", region=region)
    ours = xai_core.get_attributor("grad_cam", layer="backbone.16").attribute(deeplab, x, target)
    with torch.no_grad():
        out = deeplab(x)["out"]
    masks = []
    for i, c in enumerate(ours.target_choices):
        if region == "predicted":
            masks.append((out[i].argmax(dim=0) == c).float().numpy())
        else:
            mask = np.zeros((96, 96), dtype=np.float32)
            mask[16:60, 8:72] = 1
            masks.append(mask)
    targets = [SemanticSegmentationTarget(c, m) for c, m in zip(ours.target_choices, masks)]
    with pgc.GradCAM(model=OutOnly(deeplab), target_layers=[deeplab.backbone["16"]]) as cam:
        theirs = cam(input_tensor=x, targets=targets)
    # MobileNetV3 + ASPP (~25 layers), 960-channel CAM layer, +3 for the CAM.
    assert_float32_close(ours.maps, theirs, depth=25 + 3, fan_in=960)
    expected = [float((out[i, c] * torch.from_numpy(m)).sum()) for i, (c, m) in
                enumerate(zip(ours.target_choices, masks))]
    np.testing.assert_allclose(ours.target_values.numpy(), expected, rtol=1e-5)


def test_segmentation_needs_a_dense_output(net, x):
    with pytest.raises(TargetError, match=r"\[N, classes, H, W\]"):
        xai_core.get_attributor("saliency").attribute(
            net, x, xai_core.get_target("segmentation")
        )


# --- config and command line --------------------------------------------------------------------


def test_build_target_from_config_values():
    kind = build_target({"kind": "logit_difference", "a": "tabby", "b": "tiger cat"})
    assert isinstance(kind, TargetKind) and kind.params.a == "tabby"
    assert build_target({"kind": "class", "label": "tabby"}) == "tabby"
    assert build_target("top-3") == "top-3"
    with pytest.raises(UnknownNameError, match="multilabel"):
        build_target({"kind": "multilable"})
    with pytest.raises(ConfigError, match="Valid keys: label, threshold, score"):
        build_target({"kind": "multilabel", "lable": 3})
    with pytest.raises(ConfigError, match="'target.a': is required"):
        build_target({"kind": "logit_difference", "b": 3})
    with pytest.raises(ConfigError, match="names its `kind`"):
        build_target({"label": 3})


def test_parse_target_from_the_command_line():
    assert parse_target("tabby") == "tabby"
    assert parse_target("logit_difference:a=tabby,b=tiger cat") == {
        "kind": "logit_difference", "a": "tabby", "b": "tiger cat"
    }
    assert parse_target("segmentation:region=[0,0,8,8],label=3") == {
        "kind": "segmentation", "region": [0, 0, 8, 8], "label": 3
    }
    with pytest.raises(ConfigError, match="key=value"):
        parse_target("regression:4")


def test_a_kind_names_the_task_it_needs():
    kind = xai_core.get_target("segmentation")
    with pytest.raises(TargetError, match="'segmentation' explains segmentation models"):
        kind.check_task("classification", "timm/resnet18")
    xai_core.get_target("neuron", layer="x").check_task("detection", "m")  # any model


# --- a third-party kind -------------------------------------------------------------------------


class Brightest(TargetKind):
    """The docs' example (docs/plugins.md): each image's largest output."""

    name = "brightest_output"
    summary = "the largest output of each image"
    tasks = ("classification",)
    needs_output = True

    @dataclasses.dataclass
    class Params:
        scale: float = 1.0

    def bind(self, call):
        chosen = call.output.argmax(dim=1).tolist() if call.choices is None else [
            c[0] for c in call.choices
        ]
        return xai_core.BoundTarget(
            score=lambda output: self.params.scale * output,
            columns=[[c] for c in chosen],
            choices=[[c] for c in chosen],
            labels=[[f"output {c}"] for c in chosen],
            value="logit",
        )


class _BrightestPlugin:
    @xai_core.hookimpl
    def register_targets(self, register):
        register(Brightest)


def test_a_plugin_registers_a_kind_used_from_config_and_python(net, x, tmp_path):
    xai_core.register_plugin(_BrightestPlugin(), name="brightest")
    assert "brightest_output" in xai_core.list_targets()
    kind = build_target({"kind": "brightest_output", "scale": 2.0})
    result = xai_core.get_attributor("saliency", abs=False, reduction="sum").attribute(net, x, kind)
    top = net(x).argmax(dim=1)
    assert result.target_choices == top.tolist()
    plain = xai_core.get_attributor("saliency", abs=False, reduction="sum").attribute(
        net, x, top.tolist()
    )
    assert_float32_close(result.maps, 2 * plain.maps, depth=12, fan_in=3 * 3 * 512)
    with pytest.raises(ConfigError, match="Valid keys: scale"):
        build_target({"kind": "brightest_output", "scael": 2})


def test_a_broken_bind_is_the_plugins_fault(net, x):
    class Wrong(Brightest):
        name = "wrong_kind"

        def bind(self, call):
            bound = super().bind(call)
            bound.columns = bound.columns[:1]
            return bound

    with pytest.raises(xai_core.errors.PluginError, match="bind returned 1 columns for 2 inputs"):
        xai_core.get_attributor("saliency").attribute(net, x, Wrong())


# --- detection: pytorch-grad-cam's FasterRCNNBoxScoreTarget --------------------------------------


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(0)
    handle = xai_core.load_model(
        "detection/fasterrcnn_mobilenet_v3_large_320_fpn", pretrained=False, box_score_thresh=0.0
    )
    for m in handle.module.modules():  # biases that tell the boxes apart
        if isinstance(m, nn.BatchNorm2d):
            m.bias.data.uniform_(-0.3, 0.3)
    return handle


@pytest.mark.parametrize("method", ["grad_cam", "eigen_cam"])
def test_detection_cams_match_pytorch_grad_cam(detector, method, monkeypatch):
    pgc = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam import eigen_cam
    from pytorch_grad_cam.utils.model_targets import FasterRCNNBoxScoreTarget
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection_with_sign_correction

    # The SVD's sign is arbitrary: our default `sign_correction` is pytorch-grad-cam's own.
    monkeypatch.setattr(eigen_cam, "get_2d_projection", get_2d_projection_with_sign_correction)

    torch.manual_seed(3)
    x = torch.rand(2, 3, 96, 96)
    layer = "backbone.body.16"
    target = xai_core.get_target("detection", detection=0)
    ours = xai_core.get_attributor(method, layer=layer).attribute(detector, x, target)
    module = detector.module
    with torch.no_grad():
        out = module(x)
    assert [c["label"] for c in ours.target_choices] == [int(o["labels"][0]) for o in out]
    np.testing.assert_allclose(ours.target_values.numpy(),
                               [1 + float(o["scores"][0]) for o in out], rtol=1e-5)
    cls = {"grad_cam": pgc.GradCAM, "eigen_cam": pgc.EigenCAM}[method]
    expected = []
    for i, choice in enumerate(ours.target_choices):
        reference = FasterRCNNBoxScoreTarget([choice["label"]], np.array([choice["box"]]))
        with cls(model=module, target_layers=[dict(module.named_modules())[layer]]) as cam:
            expected.append(cam(input_tensor=x[i : i + 1], targets=[reference])[0])
    # MobileNetV3 (~20 layers), the FPN, RPN and box head (~10 more), 960-channel layer, +3 for
    # the CAM: 8e-5 apart measured, within float32's bound for that depth.
    assert_float32_close(ours.maps, np.stack(expected), depth=30 + 3, fan_in=960)


def test_detection_box_reference_and_its_errors(detector):
    torch.manual_seed(3)
    x = torch.rand(1, 3, 96, 96)
    with torch.no_grad():
        first = detector.module(x)[0]
    box, label = first["boxes"][0].tolist(), int(first["labels"][0])
    given = xai_core.get_target("detection", box=box, label=label)
    result = xai_core.get_attributor("saliency").attribute(detector, x, given)
    assert abs(float(result.target_values[0]) - (1 + float(first["scores"][0]))) < 1e-5
    elsewhere = xai_core.get_target("detection", box=[0, 0, 2, 2], label=label, iou=0.9)
    missed = xai_core.get_attributor("saliency").attribute(detector, x, elsewhere)
    assert float(missed.target_values[0]) == 0 and float(missed.maps.abs().max()) == 0
    too_far = xai_core.get_target("detection", detection=10_000)
    with pytest.raises(TargetError, match="no detection 10000"):
        xai_core.get_attributor("saliency").attribute(detector, x, too_far)
    with pytest.raises(ConfigError, match="is required with box"):
        xai_core.get_target("detection", box=[0, 0, 8, 8])


@pytest.mark.slow
@pytest.mark.parametrize(
    "arch", ["retinanet_resnet50_fpn", "fcos_resnet50_fpn", "ssdlite320_mobilenet_v3_large",
             "ssd300_vgg16"],
)
def test_every_torchvision_detector_family_is_explained(arch):
    """RetinaNet, FCOS and SSD return torchvision's dicts too: the kind explains their top
    detection (finite: FCOS's degenerate boxes give no NaN through the IoU of the others)."""
    torch.manual_seed(0)
    handle = xai_core.load_model(f"detection/{arch}", pretrained=False, score_thresh=0.0)
    x = torch.rand(1, 3, 64, 64)
    result = xai_core.get_attributor("saliency").attribute(
        handle, x, xai_core.get_target("detection")
    )
    with torch.no_grad():
        top = handle.module(x)[0]
    assert result.target_choices[0]["label"] == int(top["labels"][0])
    assert abs(float(result.target_values[0]) - 1 - float(top["scores"][0])) < 1e-5
    assert torch.isfinite(result.maps).all()


def test_synthesizers_refuse_a_kind(net):
    with pytest.raises(TargetError, match="makes images of a class"):
        xai_core.get_synthesizer("fgsm").synthesize(
            net, xai_core.get_target("logit_difference", a=1, b=2), torch.rand(1, 3, 32, 32)
        )
