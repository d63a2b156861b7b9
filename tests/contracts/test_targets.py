"""Targets (xai_core/contracts/targets.py, xai_core/runner/targets.py): ImageNet synonyms and
WordNet ids, ambiguous and unknown names, ``top-k``, several targets per image, the model-free
check of a config's target, and the class listing."""

from __future__ import annotations

import pytest
import torch

import xai_core
from xai_core.contracts.model import ModelHandle, imagenet_class_names
from xai_core.contracts.targets import (
    _imagenet_wordnet,
    check_target,
    class_index,
    class_vocabulary,
    list_classes,
    resolve_targets,
    top_k,
)
from xai_core.errors import TargetError

NAMES = imagenet_class_names()


@pytest.mark.parametrize(
    ("name", "index"),
    [
        ("lighthouse", 437),
        ("beacon light", 437),
        ("LightHouse", 437),
        ("beacon", 437),
        ("n02123159", 282),
        ("N02123159", 282),
        ("tiger cat", 282),
        ("tabby cat", 281),
        ("Cardigan Welsh corgi", 264),
        ("crane bird", 134),
        ("missile", 657),  # 744 is "projectile, missile": a head name beats a later synonym
        ("projectile", 744),
        (" goldfish ", 1),
        ("7", 7),
    ],
)
def test_imagenet_names_synonyms_and_wordnet_ids(name, index):
    assert class_index(name, NAMES, 1000) == index


@pytest.mark.parametrize(
    ("name", "candidates"),
    [("crane", ["134 n02012849: crane bird, crane", "517 n03126707: crane"]),
     ("cardigan", ["264 n02113186: Cardigan", "474 n02963159: cardigan"])],
)
def test_ambiguous_names_list_their_candidates(name, candidates):
    with pytest.raises(TargetError, match="ambiguous: 2 classes") as info:
        class_index(name, NAMES, 1000)
    for candidate in candidates:
        assert candidate in str(info.value)
    assert "WordNet id" in str(info.value)


def test_unknown_names_and_ids_name_close_matches():
    with pytest.raises(TargetError, match=r"'lighthose'; did you mean 'lighthouse'"):
        class_index("lighthose", NAMES, 1000)
    with pytest.raises(TargetError, match="xai list classes MODEL PATTERN"):
        class_index("no such thing at all", NAMES, 1000)
    with pytest.raises(TargetError, match="WordNet id 'n99999999' is not one of"):
        class_index("n99999999", NAMES, 1000)


def test_wordnet_data_matches_timms_own_api():
    from timm.data import ImageNetInfo

    wnids, synonyms = _imagenet_wordnet()
    info = ImageNetInfo()
    assert list(wnids) == info.label_names()
    assert [", ".join(s) for s in synonyms] == info.label_descriptions()
    vocabulary = class_vocabulary(NAMES)
    # The display name stays the model's own (the first synonym but for two torchvision names).
    assert vocabulary.classes[437].name == "beacon" and vocabulary.classes[437].wnid == wnids[437]
    assert vocabulary.classes[134].synonyms == ("crane bird", "crane")


def test_other_models_match_their_own_names_only():
    names = ["cat", "Dog", "bird"]
    assert class_index("dog", names, 3) == 1
    with pytest.raises(TargetError, match="did you mean 'bird'"):
        class_index("birds", names, 3)
    with pytest.raises(TargetError, match="no class names"):
        class_index("cat", None, 3)
    assert list_classes(names, "D*") == [class_vocabulary(names).classes[1]]
    assert list_classes(None, "x") == []


def test_top_k_parsing():
    assert top_k("top-3") == 3 and top_k("TOP5") == 3 + 2 and top_k(" top-1 ") == 1
    assert top_k("topaz") is None and top_k(3) is None
    with pytest.raises(TargetError, match="asks for no class"):
        top_k("top-0")


def _handle(classes: int = 10) -> ModelHandle:
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, classes))
    return ModelHandle("tiny", module, class_names=[f"c{i}" for i in range(classes)])


def test_resolve_top_k_is_input_major_most_probable_first():
    handle = _handle()
    x = torch.randn(3, 3, 4, 4)
    logits = handle.module(x)
    targets = resolve_targets("top-3", 3, handle, lambda: logits)
    assert targets.shape == (3, 3)
    assert torch.equal(targets, logits.topk(3, dim=1).indices)
    assert torch.equal(targets[:, 0], logits.argmax(dim=1))
    with pytest.raises(TargetError, match="asks for 11 classes of a model with 10"):
        resolve_targets("top-11", 3, handle, lambda: logits)
    with pytest.raises(TargetError, match="give it alone"):
        resolve_targets(["top-2", "c1", "c2"], 3, handle, lambda: logits)


def test_attributor_with_top_k_gives_k_maps_per_input():
    handle = _handle()
    x = torch.randn(2, 3, 4, 4)
    result = xai_core.get_attributor("saliency").attribute(handle, x, "top-2")
    assert result.maps.shape == (4, 4, 4)
    assert result.input_index.tolist() == [0, 0, 1, 1]
    with torch.no_grad():
        expected = handle.module(x).topk(2, dim=1).indices.flatten()
    assert torch.equal(result.targets, expected)
    single = xai_core.get_attributor("saliency").attribute(handle, x[1:], int(expected[3]))
    torch.testing.assert_close(result.maps[3], single.maps[0])


@pytest.mark.parametrize(
    "target",
    ["predicted", "top-5", "label", 281, "281", "lighthouse", "n02123159",
     ["predicted", "goldfish"], ["top-3", "lighthouse"], ["label", "tabby"]],
)
def test_check_target_accepts(target):
    check_target(target, NAMES)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("lighthose", "did you mean 'lighthouse'"),
        ("crane", "ambiguous"),
        (1000, "out of range"),
        ("top-1001", "asks for 1001 classes"),
        ([], "empty list"),
        (["top-2", "top-3"], "several top-k entries"),
        (["predicted", "top-3"], "both 'predicted' and 'top-3'"),
        (["tabby", 281], "same class twice"),
        (["tabby", ["goldfish"]], "not a single target"),
        (["tabby", "goldfsh"], "did you mean 'goldfish'"),
        (True, "boolean"),
    ],
)
def test_check_target_refuses_with_the_reason(target, message):
    with pytest.raises(TargetError, match=message):
        check_target(target, NAMES)


def test_check_target_without_class_names_checks_what_it_can():
    check_target("anything", None)  # names are known only once the model loads
    check_target(["a", 3], None, 10)
    with pytest.raises(TargetError, match="out of range"):
        check_target(12, None, 10)


def test_list_classes_rows_and_patterns():
    rows = list_classes(NAMES, "lighthouse")
    assert [(r.index, r.wnid) for r in rows] == [(437, "n02814860")]
    assert rows[0].synonyms == ("beacon", "lighthouse", "beacon light", "pharos")
    cats = list_classes(NAMES, "*cat")
    assert {281, 282, 283, 284, 285} <= {r.index for r in cats}
    assert all(any(s.lower().endswith("cat") for s in r.synonyms) for r in cats)
    assert [r.index for r in list_classes(NAMES, "N0212315?")] == [282]
    assert len(list_classes(NAMES)) == 1000 and list_classes(NAMES, "zzzz") == []


def _images(labels):
    from pathlib import Path

    from xai_core.runner.inputs import InputImage
    from xai_core.runner.state import ImageItem

    torch.manual_seed(1)
    return [
        ImageItem(InputImage(f"k{i}", f"x/{i}.png", Path(f"x/{i}.png"), label), index=i,
                  inputs=torch.randn(3, 4, 4))
        for i, label in enumerate(labels)
    ]


def test_assign_targets_predicted_top_k_lists_and_folder_labels():
    from xai_core.runner.targets import assign_targets, image_targets, predict

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 1000))
    handle = ModelHandle("tiny", module, class_names=NAMES)
    images = _images(["n02123159", "lighthouse", "no such class"])
    predict(images, handle, torch.device("cpu"))
    first = images[0].prediction
    assert [t["class"] for t in first["top5"]] == first["probabilities"].topk(5).indices.tolist()
    assert first["top5"][0] == {"class": first["predicted"], "label": first["predicted_label"],
                                "probability": pytest.approx(first["predicted_probability"])}
    assign_targets(images, ["label", "top-2"], handle)
    assert image_targets(images[0])[0] == 282 and image_targets(images[1])[0] == 437
    top2 = images[0].prediction["probabilities"].topk(2).indices.tolist()
    # Every image gets each spec's classes, repeats included, so items line up across images.
    assert image_targets(images[0]) == [282, *top2]
    assert images[0].target == 282
    assert images[2].error.startswith("folder label 'no such class': unknown class name")
    assign_targets(images[:2], "predicted", handle)
    assert image_targets(images[1]) == [images[1].prediction["predicted"]]
    with pytest.raises(TargetError, match="did you mean 'tabby'"):
        assign_targets(images[:2], "tabyy", handle)


class _TenOutputs(torch.nn.Module):
    """A plain module with 10 outputs that counts its forward passes; no ``num_classes``
    unless ``known``: the number of classes is then known only from its output."""

    def __init__(self, known: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(), torch.nn.Linear(4, 10),
        )
        if known:
            self.num_classes = 10
        self.passes = 0

    def forward(self, x):
        self.passes += 1
        return self.net(x)


OUT_OF_RANGE = r"target class 99 is out of range for a model with 10 classes \(valid: 0\.\.9\)"
#: A technique with a shared forward pass, gradient ones without, CAM, perturbation ones.
METHODS = [
    ("saliency", {}),
    ("integrated_gradients", {"steps": 4}),
    ("grad_cam", {}),
    ("occlusion", {"window": 8, "stride": 8}),
    ("rise", {"n_masks": 8}),
]


@pytest.mark.parametrize(("method", "params"), METHODS)
def test_a_class_index_past_the_models_output_is_a_target_error(method, params):
    handle = ModelHandle("ten", _TenOutputs())
    assert handle.num_classes is None
    technique = xai_core.get_attributor(method, **params)
    x = torch.rand(2, 3, 16, 16)
    with pytest.raises(TargetError, match=OUT_OF_RANGE):
        technique.attribute(handle, x, target=99)
    with pytest.raises(TargetError, match=r"target class 10 .*\(valid: 0\.\.9\)"):
        technique.attribute(handle, x, target=[3, 10])
    with pytest.raises(TargetError, match=OUT_OF_RANGE):
        technique.attribute(handle, x, target=[[1, 99], [2, 3]])
    assert technique.attribute(handle, x, target=9).maps.shape == (2, 16, 16)


@pytest.mark.parametrize(("method", "params"), METHODS)
def test_the_range_check_costs_no_forward_pass(method, params):
    """Checked against the logits the technique computes anyway: as many passes as for a
    model that says how many classes it has."""
    x = torch.rand(2, 3, 16, 16)
    passes = []
    for known in (True, False):
        module = _TenOutputs(known)
        maps = xai_core.get_attributor(method, **params).attribute(module, x, target=[9, 2]).maps
        passes.append(module.passes)
    assert passes[0] == passes[1] and maps.shape == (2, 16, 16)


def test_a_synthesizer_names_the_valid_classes_too():
    handle = ModelHandle("ten", _TenOutputs())
    with pytest.raises(TargetError, match=OUT_OF_RANGE):
        xai_core.get_synthesizer("fgsm").synthesize(handle, 99, torch.rand(1, 3, 16, 16))


@pytest.mark.parametrize("known", [True, False])
@pytest.mark.parametrize("methods", [["saliency"], ["rise", "saliency"]])
def test_a_run_fails_naming_the_valid_classes(tmp_path, known, methods):
    """As for a model that says how many classes it has: the run fails before any map, with
    the valid range (the prediction pass gives the output's width)."""
    import types

    import numpy as np
    from PIL import Image

    from xai_core.runner.config import load_config
    from xai_core.runner.run import run_experiment

    module = types.ModuleType("tenzoo")

    @xai_core.hookimpl
    def register_models(register):
        register("ten", lambda **options: ModelHandle("ten", _TenOutputs(known)))

    module.register_models = register_models
    xai_core.register_plugin(module, name="tenzoo")
    pixels = np.random.default_rng(0).integers(0, 255, (20, 20, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "img.png")
    config = load_config({
        "model": {"name": "ten", "input_size": 16}, "inputs": [str(tmp_path / "img.png")],
        "methods": methods, "target": 99, "output_dir": str(tmp_path / "out"),
        "workers": 0, "figures": False,
    })
    with pytest.raises(TargetError, match=OUT_OF_RANGE):
        run_experiment(config)
