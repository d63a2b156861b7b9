"""Hugging Face image classifiers as a model source (``hf/*``, issue 27): tiny models built from
configs offline, cross-checked against timm's ViT with the same weights; ``save_pretrained``
folders through ``load_model`` and a config run; the offline failure; the layer ``auto`` picks
on ViT, DeiT, Swin and ConvNeXt."""

from __future__ import annotations

import json
import sys
import time

import pytest
import torch

import xai_core
from tests.numerics import assert_float32_close
from xai_core.cli import main
from xai_core.contracts.model import ModelHandle
from xai_core.errors import ConfigError, ModelLoadError, UnknownNameError, XaiError
from xai_core.store import load_items

transformers = pytest.importorskip("transformers")

SIZE = 32
LABELS = {0: "cat", 1: "dog", 2: "bird"}


def _vit_config(**extra):
    return transformers.ViTConfig(
        image_size=SIZE, patch_size=8, num_hidden_layers=2, hidden_size=32,
        num_attention_heads=2, intermediate_size=64, layer_norm_eps=1e-6, num_labels=3, **extra
    )


def _tiny(config):
    torch.manual_seed(0)
    config.architectures = config.architectures or []  # transformers picks a class by it
    return transformers.AutoModelForImageClassification.from_config(config).eval()


def _timm_state_from_hf(hf: dict[str, torch.Tensor], depth: int) -> dict[str, torch.Tensor]:
    """timm ``VisionTransformer`` keys from HF ``ViTForImageClassification`` keys: the same
    tensors, with query, key and value stacked into timm's one ``qkv`` projection."""
    state = {
        "cls_token": hf["vit.embeddings.cls_token"],
        "pos_embed": hf["vit.embeddings.position_embeddings"],
        "patch_embed.proj.weight": hf["vit.embeddings.patch_embeddings.projection.weight"],
        "patch_embed.proj.bias": hf["vit.embeddings.patch_embeddings.projection.bias"],
        "norm.weight": hf["vit.layernorm.weight"],
        "norm.bias": hf["vit.layernorm.bias"],
        "head.weight": hf["classifier.weight"],
        "head.bias": hf["classifier.bias"],
    }
    for i in range(depth):
        src, dst = f"vit.layers.{i}.", f"blocks.{i}."
        pairs = {"norm1": "layernorm_before", "norm2": "layernorm_after",
                 "attn.proj": "attention.o_proj", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}
        for timm_name, hf_name in pairs.items():
            for kind in ("weight", "bias"):
                state[f"{dst}{timm_name}.{kind}"] = hf[f"{src}{hf_name}.{kind}"]
        for kind in ("weight", "bias"):
            state[f"{dst}attn.qkv.{kind}"] = torch.cat(
                [hf[f"{src}attention.{p}_proj.{kind}"] for p in "qkv"]
            )
    return state


@pytest.fixture
def vit_dir(tmp_path):
    """A ``save_pretrained`` folder: a tiny ViT with named classes and its image processor."""
    folder = tmp_path / "tiny-vit"
    _tiny(_vit_config(id2label=LABELS, label2id={v: k for k, v in LABELS.items()})) \
        .save_pretrained(folder)
    transformers.ViTImageProcessor(
        size={"height": SIZE, "width": SIZE}, image_mean=[0.5, 0.5, 0.5],
        image_std=[0.25, 0.25, 0.25], resample=3,
    ).save_pretrained(folder)
    return folder


def test_hf_vit_matches_timm_vit_with_the_same_weights(vit_dir):
    handle = xai_core.load_model(f"hf/{vit_dir}")
    reference = _timm_twin(handle)
    vit = reference.module
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    depth, fan_in = 2 * 4 + 2, 3 * 8 * 8  # blocks x (norm, attention, norm, MLP) + embed, head
    with torch.no_grad():
        expected = vit(x)
        assert_float32_close(handle.module(x), expected, depth, fan_in)
    # The same layer (the last block's input norm) is the automatic one on both.
    assert handle.last_conv_block() == "model.vit.layers.1.layernorm_before"
    assert reference.last_conv_block() == "blocks.1.norm1"
    target = torch.tensor([1, 2])
    grad_cam = xai_core.get_attributor("grad_cam")
    ours = grad_cam.attribute(handle, x, target).maps
    theirs = grad_cam.attribute(reference, x, target).maps
    assert ours.shape == (2, SIZE, SIZE) and float(theirs.abs().max()) > 0
    assert_float32_close(ours, theirs, depth + 2, fan_in)


def test_a_save_pretrained_folder_loads_with_its_processor_and_labels(vit_dir):
    handle = xai_core.load_model(f"hf/{vit_dir}")
    assert handle.class_names == ["cat", "dog", "bird"] and handle.num_classes == 3
    p = handle.preprocessing
    assert (p.input_size, p.resize_size, p.interpolation) == ((SIZE, SIZE), SIZE, "bicubic")
    assert p.mean == (0.5, 0.5, 0.5) and p.std == (0.25, 0.25, 0.25)
    assert handle.info["weights"] == "pretrained" and handle.info["model_id"] == str(vit_dir)
    assert handle.info["source"] == "directory"
    assert handle.info["architecture"] == "ViTForImageClassification"
    assert handle.module(torch.zeros(1, 3, SIZE, SIZE)).shape == (1, 3)
    random = xai_core.load_model(f"hf/{vit_dir}", pretrained=False)
    assert random.info["weights"] == "random" and not random.trained
    assert not torch.equal(random.module.model.classifier.weight,
                           handle.module.model.classifier.weight)
    # A checkpoint in the transformers model's key names replaces the weights.
    torch.save(handle.module.model.state_dict(), vit_dir.parent / "w.pt")
    loaded = xai_core.load_model(f"hf/{vit_dir}", checkpoint=str(vit_dir.parent / "w.pt"))
    assert loaded.info["weights"] == "checkpoint"
    assert torch.equal(loaded.module.model.classifier.weight,
                       handle.module.model.classifier.weight)


def test_a_relative_folder_is_relative_to_the_working_directory(vit_dir, monkeypatch):
    monkeypatch.chdir(vit_dir.parent)
    handle = xai_core.load_model("hf/./tiny-vit")
    assert handle.class_names == ["cat", "dog", "bird"]
    monkeypatch.chdir(vit_dir)
    with pytest.raises(ConfigError, match=r"does not exist; a relative directory is relative "
                                          r"to the working directory"):
        xai_core.load_model("hf/./tiny-vit")


def test_a_config_run_with_saliency_and_grad_cam(vit_dir, tmp_path, capsys):
    out = tmp_path / "out"
    config = tmp_path / "experiment.yaml"
    config.write_text(json.dumps({
        "model": {"name": f"hf/{vit_dir}"}, "inputs": ["sample:cat"],
        "methods": ["saliency", "grad_cam"], "target": "dog", "workers": 0,
        "output_dir": str(out),
    }))
    assert main(["run", str(config)]) == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    assert results["complete"]
    assert [item["method"] for item in load_items(out, results)] == ["saliency", "grad_cam"]
    for item in load_items(out, results):
        assert item["error"] is None
        assert (item["target"], item["target_label"]) == (1, "dog")
        assert item["model"] == "hf/tiny-vit"  # the folder's name, not its whole path
    (model,) = results["models"]
    assert model["weights"] == "pretrained" and model["input_size"] == [SIZE, SIZE]


def test_layer_names_are_the_wrappers_in_listings_and_params(vit_dir, capsys):
    assert main(["list", "layers", f"hf/{vit_dir}"]) == 0
    out = capsys.readouterr().out
    auto = [line for line in out.splitlines() if "<- layer: auto" in line]
    assert len(auto) == 1 and auto[0].split()[0] == "model.vit.layers.1.layernorm_before"
    handle = xai_core.load_model(f"hf/{vit_dir}")
    x = torch.randn(1, 3, SIZE, SIZE)
    explicit = xai_core.get_attributor("grad_cam", layer="model.vit.layers.0.layernorm_before")
    assert explicit.attribute(handle, x, torch.tensor([0])).maps.shape == (1, SIZE, SIZE)
    with pytest.raises(UnknownNameError, match=r"did you mean 'model.vit.layers.0"):
        xai_core.get_attributor("grad_cam", layer="vit.layers.0").attribute(
            handle, x, torch.tensor([0]))


def test_an_unknown_id_offline_fails_fast_naming_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("XAI_CORE_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(ModelLoadError, match=(
        r"cannot load model of hf/someone/no-such-vit: it is not in the Hugging Face cache and "
        r"huggingface.co is not reachable \(offline\?\)\. Download it once"
    )):
        xai_core.load_model("hf/someone/no-such-vit")
    with pytest.raises(ModelLoadError, match=r"cannot load config of hf/someone/no-such-vit"):
        xai_core.load_model("hf/someone/no-such-vit", pretrained=False)
    assert time.monotonic() - start < 10


def test_a_model_id_in_the_cache_loads_offline(vit_dir, hub_cache, monkeypatch):
    """A Hub model id whose files are in the Hugging Face cache needs no network at all."""
    monkeypatch.setenv("XAI_CORE_OFFLINE", "1")
    cache = hub_cache(vit_dir, "someone/tiny-vit")
    handle = xai_core.load_model("hf/someone/tiny-vit", cache_dir=str(cache))
    assert handle.info["source"] == "huggingface" and handle.info["model_id"] == "someone/tiny-vit"
    assert handle.class_names == ["cat", "dog", "bird"]
    assert handle.preprocessing.std == (0.25, 0.25, 0.25)  # its processor, from the cache too


def test_config_check_refuses_a_missing_directory_before_any_model_builds(
    tmp_path, monkeypatch, capsys
):
    import xai_core.runner.run as run_module

    built = []
    monkeypatch.setattr(run_module, "load_model", lambda *a, **kw: built.append(a))
    config = tmp_path / "experiment.yaml"
    config.write_text(json.dumps({
        "model": {"name": "hf/./no-such-folder"}, "inputs": ["sample:cat"],
        "methods": ["saliency"], "output_dir": str(tmp_path / "out"),
    }))
    assert main(["config", "--check", str(config)]) == 2
    assert "relative to the working directory" in capsys.readouterr().err
    assert main(["run", str(config)]) == 2
    assert not built and not (tmp_path / "out").exists()


@pytest.mark.parametrize("name, message", [
    ("hf/./nowhere", r"does not exist; a relative directory is relative to the working"),
    ("hf/not a model id!", r"neither a directory nor a Hugging Face model id; write "
                           r"hf/<owner>/<name>"),
])
def test_config_errors_before_anything_loads(name, message):
    with pytest.raises(ConfigError, match=message):
        xai_core.load_model(name)


def test_a_folder_without_config_json(tmp_path):
    with pytest.raises(ConfigError, match=r"has no config.json; give a folder that "
                                          r"`model.save_pretrained\(folder\)` wrote"):
        xai_core.load_model(f"hf/{tmp_path}")


def test_without_transformers_the_error_names_the_extra(monkeypatch, vit_dir):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ModelLoadError, match=r"pip install xai-core\[hf\]"):
        xai_core.load_model(f"hf/{vit_dir}")


def _configs():
    return {
        "deit": (transformers.DeiTConfig(
            image_size=SIZE, patch_size=8, num_hidden_layers=2, hidden_size=32,
            num_attention_heads=2, intermediate_size=64, num_labels=3,
        ), "model.deit.layers.1.layernorm_before", "tokens 4x4 (+2 prefix)"),
        "swin": (transformers.SwinConfig(
            image_size=SIZE, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 2],
            window_size=4, num_labels=3,
        ), "model.swin.layernorm", "tokens 4x4"),
        "convnext": (transformers.ConvNextConfig(
            image_size=SIZE, num_stages=2, hidden_sizes=[16, 32], depths=[1, 1], num_labels=3,
        ), "model.convnext.encoder.stages.1", "NCHW 4x4"),
        "vit": (_vit_config(), "model.vit.layers.1.layernorm_before", "tokens 4x4 (+1 prefix)"),
    }


@pytest.mark.parametrize("family", ["vit", "deit", "swin", "convnext"])
def test_grad_cam_with_layer_auto_on_a_config_only_folder(family, tmp_path):
    config, layer, layout = _configs()[family]
    config.save_pretrained(tmp_path)  # a config alone: no weights, no image processor
    handle = xai_core.load_model(f"hf/{tmp_path}", pretrained=False)
    # Without an image processor: the config's image size and ImageNet's statistics.
    assert handle.preprocessing.input_size == (SIZE, SIZE)
    assert handle.preprocessing.mean == (0.485, 0.456, 0.406) and handle.class_names is None
    assert handle.num_classes == 3
    assert handle.last_conv_block() == layer
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    result = xai_core.get_attributor("grad_cam").attribute(handle, x, torch.tensor([0, 2]))
    maps = result.maps
    assert (result.metadata["layer"], result.metadata["layer_auto"]) == (layer, True)
    assert result.metadata["layer_layout"] == layout
    assert maps.shape == (2, SIZE, SIZE) and torch.isfinite(maps).all()
    assert float(maps.amax()) > 0


def _timm_twin(handle):
    """timm's ViT with the weights of the HF ViT ``handle``, as a handle of the same input."""
    import timm

    vit = timm.create_model(
        "vit_base_patch16_224", pretrained=False, img_size=SIZE, patch_size=8, embed_dim=32,
        depth=2, num_heads=2, mlp_ratio=2.0, num_classes=3,
    ).eval()
    vit.load_state_dict(_timm_state_from_hf(handle.module.model.state_dict(), 2), strict=True)
    return ModelHandle("timm-vit", vit, handle.preprocessing)


@pytest.mark.parametrize("method", ["attention_rollout", "attention_gradients"])
def test_attention_methods_on_hf_vit_match_timm(method, vit_dir):
    handle = xai_core.load_model(f"hf/{vit_dir}")
    config = handle.module.model.config
    before = config._attn_implementation
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    target = torch.tensor([0, 2])
    attributor = xai_core.get_attributor(method, normalize="none")
    ours = attributor.attribute(handle, x, target)
    theirs = attributor.attribute(_timm_twin(handle), x, target)
    assert ours.metadata["prefix_tokens"] == 1 and ours.metadata["grid"] == "4x4"
    assert float(theirs.maps.abs().max()) > 0
    assert_float32_close(ours.maps, theirs.maps, 2 * 4 + 4, 3 * 8 * 8)
    assert config._attn_implementation == before  # eager only for the call


def test_attention_on_hf_deit_reads_its_two_prefix_tokens(tmp_path):
    config, _, _ = _configs()["deit"]
    config.save_pretrained(tmp_path)
    handle = xai_core.load_model(f"hf/{tmp_path}", pretrained=False)
    result = xai_core.get_attributor("attention_rollout", tokens="prefix_mean").attribute(
        handle, torch.randn(1, 3, SIZE, SIZE), torch.tensor([1]))
    assert result.metadata["prefix_tokens"] == 2 and result.metadata["blocks"] == 2
    assert result.maps.shape == (1, SIZE, SIZE) and torch.isfinite(result.maps).all()


@pytest.mark.parametrize("family", ["swin", "convnext"])
def test_attention_methods_refuse_other_hf_models_before_running(family, tmp_path):
    config, _, _ = _configs()[family]
    config.save_pretrained(tmp_path)
    handle = xai_core.load_model(f"hf/{tmp_path}", pretrained=False)
    calls = []
    handle.module.register_forward_hook(lambda *a: calls.append(1))
    for method in ("attention_rollout", "attention_gradients"):
        with pytest.raises(XaiError, match=r"is a Hugging Face \w+For\w+, whose attention the "
                                           r"attention methods cannot read.*grad_cam"):
            xai_core.get_attributor(method).attribute(
                handle, torch.zeros(1, 3, SIZE, SIZE), torch.tensor([0]))
    assert not calls
