"""The model registry: built-in offline model, timm and torchvision families, checkpoints."""

from __future__ import annotations

import time

import pytest
import torch

import xai_core
from xai_core.errors import ModelLoadError, UnknownNameError
from xai_core.runner.inputs import load_image, sample_path


def test_efficientnet_lite0_recognises_the_sample_photos(lite0):
    assert lite0.module.training is False
    assert lite0.preprocessing.mean == (0.5, 0.5, 0.5)
    assert lite0.preprocessing.input_size == (224, 224)
    for name, label in [("cat", "tiger cat"), ("coffee", "espresso")]:
        x = lite0.preprocessing(load_image(sample_path(name)))[None]
        with torch.no_grad():
            predicted = int(lite0.module(x).argmax())
        assert lite0.label(predicted) == label


def test_lite0_checkpoint_shape_mismatch_fails_loudly():
    from xai_core.contracts.model import load_state_in_order

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    state = {
        "a.weight": torch.zeros(4, 3),
        "a.bias": torch.zeros(4),
        "b.weight": torch.zeros(3, 4),
        "b.bias": torch.zeros(2),
    }
    with pytest.raises(ModelLoadError, match=r"'b.weight' has shape \(3, 4\).*'1.weight'"):
        load_state_in_order(model, state, "test checkpoint")
    with pytest.raises(ModelLoadError, match="holds 1 tensors but the model has 4"):
        load_state_in_order(model, {"x": torch.zeros(1)}, "test checkpoint")


def test_timm_and_torchvision_families():
    timm_model = xai_core.load_model("timm/resnet10t", pretrained=False)
    assert timm_model.name == "timm/resnet10t"
    assert timm_model.num_classes == 1000 and timm_model.label(281) == "tabby"
    tv = xai_core.load_model("torchvision/mobilenet_v3_small", pretrained=False)
    assert tv.preprocessing.resize_size == 256 and tv.preprocessing.input_size == (224, 224)
    assert tv.class_names is not None and len(tv.class_names) == 1000
    assert tv.last_conv_block().startswith("features")


def test_list_models_with_pattern():
    names = xai_core.list_models("timm/resnet1*")
    assert "timm/resnet18" in names and all(n.startswith("timm/resnet1") for n in names)
    assert "efficientnet_lite0" in xai_core.list_models()
    assert "torchvision/resnet18" in xai_core.list_models("torchvision/*")


def test_unknown_model_names_close_matches():
    with pytest.raises(UnknownNameError, match="did you mean.*efficientnet_lite0"):
        xai_core.load_model("efficientnet_lite")
    with pytest.raises(UnknownNameError, match="timm/resnet18"):
        xai_core.load_model("timm/resnet181", pretrained=False)


def test_pretrained_offline_fails_fast_with_alternatives(monkeypatch):
    monkeypatch.delenv("XAI_CORE_OFFLINE", raising=False)
    from xai_core.models import network as models

    if models._can_reach("huggingface.co", 3.0):
        pytest.skip("this machine can reach the hub; the offline path is not exercised")
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match="efficientnet_lite0.*checkpoint=PATH"):
        xai_core.load_model("timm/resnet10t", pretrained=True)
    assert time.perf_counter() - start < 10


def test_checkpoint_round_trip_and_mismatch(tmp_path):
    source = xai_core.load_model("timm/resnet10t", pretrained=False)
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": source.module.state_dict()}, path)
    loaded = xai_core.load_model("timm/resnet10t", checkpoint=str(path))
    assert loaded.info["weights"] == "checkpoint"
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), source.module(x))
    with pytest.raises(ModelLoadError, match="does not fit the model"):
        xai_core.load_model("timm/resnet14t", checkpoint=str(path))
    with pytest.raises(ModelLoadError, match="does not exist"):
        xai_core.load_model("timm/resnet10t", checkpoint=str(tmp_path / "missing.pth"))


def test_checkpoint_loading_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "obj": object()}, path)
    with pytest.raises(ModelLoadError, match="weights-only"):
        xai_core.load_model("timm/resnet10t", checkpoint=str(path))


def test_last_conv_block_is_the_last_spatial_block(tiny_resnet):
    assert tiny_resnet.last_conv_block() == "layer4"


def test_a_family_member_is_reachable_through_its_plugin():
    handle = xai_core.load_model("models:timm/resnet10t", pretrained=False)
    assert handle.info["architecture"] == "resnet10t"
    with pytest.raises(UnknownNameError, match="did you mean 'timm/resnet10t'"):
        xai_core.load_model("saliency:timm/resnet10t", pretrained=False)
