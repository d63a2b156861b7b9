"""CLIP as a zero-shot classifier (``hf/<CLIP>`` with ``labels``, issue 27): a tiny CLIP with
random weights and a character-level tokenizer, built and saved offline; its logits against
``transformers``' own ``get_image_features`` / ``get_text_features``, techniques and a config run
on it, ``embedding_similarity`` to a ``text:`` reference against Captum, and the errors."""

from __future__ import annotations

import json
import string

import pytest
import torch

import xai_core
from tests.numerics import assert_float32_close
from xai_core.cli import main
from xai_core.errors import ConfigError, TargetError
from xai_core.report.figures import attribution_title
from xai_core.store import load_items

transformers = pytest.importorskip("transformers")
captum_attr = pytest.importorskip("captum.attr")

SIZE = 32
LABELS = ["cat", "dog", "bird"]
#: blocks x (norm, attention, norm, MLP) + embedding, projection, similarity.
DEPTH, FAN_IN = 2 * 4 + 3, 3 * 8 * 8


def _tokenizer():
    """A CLIP tokenizer of single characters (no merges): every prompt tokenises offline."""
    chars = list(string.ascii_lowercase) + list(".,'")
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({f"{c}</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return transformers.CLIPTokenizer(vocab=vocab, merges=[])


def _clip_config(tokenizer):
    common = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
              "num_attention_heads": 2}
    text = transformers.CLIPTextConfig(
        vocab_size=len(tokenizer), max_position_embeddings=40, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **common,
    )
    vision = transformers.CLIPVisionConfig(image_size=SIZE, patch_size=8, **common)
    return transformers.CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(),
                                   projection_dim=16)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """A ``save_pretrained`` folder of a tiny CLIP: model, tokenizer and image processor."""
    folder = tmp_path_factory.mktemp("clip") / "tiny-clip"
    tokenizer = _tokenizer()
    torch.manual_seed(0)
    transformers.CLIPModel(_clip_config(tokenizer)).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    transformers.CLIPImageProcessor(size=SIZE, crop_size=SIZE).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def handle(clip_dir):
    return xai_core.load_model(f"hf/{clip_dir}", labels=LABELS)


@pytest.fixture
def x():
    return torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


def _features(output):
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _reference_model(clip_dir):
    return transformers.CLIPModel.from_pretrained(clip_dir, local_files_only=True).eval()


def _text_features(model, texts):
    tokens = _tokenizer()(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        text = _features(model.get_text_features(**tokens))
    return text / text.norm(dim=-1, keepdim=True)


def test_logits_are_the_scaled_cosines_of_image_and_prompt_embeddings(clip_dir, handle, x):
    model = _reference_model(clip_dir)
    text = _text_features(model, [f"a photo of a {label}." for label in LABELS])
    with torch.no_grad():
        image = _features(model.get_image_features(pixel_values=x))
        image = image / image.norm(dim=-1, keepdim=True)
        expected = model.logit_scale.exp() * image @ text.T
        assert_float32_close(handle.module(x), expected, DEPTH, FAN_IN)
    assert handle.class_names == LABELS and handle.num_classes == 3
    assert handle.info["prompts"] == ["a photo of a cat.", "a photo of a dog.",
                                      "a photo of a bird."]
    assert handle.info["architecture"] == "CLIPModel"
    assert "text_embeddings" in dict(handle.module.named_buffers())
    p = handle.preprocessing
    assert (p.input_size, p.resize_size, p.interpolation) == ((SIZE, SIZE), SIZE, "bicubic")
    assert p.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
    # Another template, and the labels as written.
    own = xai_core.load_model(f"hf/{clip_dir}", labels=LABELS, prompt="{}")
    assert own.info["prompts"] == LABELS
    assert_float32_close(own.module.text_embeddings, _text_features(model, LABELS), DEPTH, 32)


def test_saliency_and_grad_cam_explain_a_prompt(handle, x):
    target = torch.tensor([0, 2])
    assert handle.last_conv_block() == "model.vision_model.encoder.layers.1.layer_norm1"
    saliency = xai_core.get_attributor("saliency").attribute(handle, x, target)
    grad_cam = xai_core.get_attributor("grad_cam").attribute(handle, x, target)
    for result in (saliency, grad_cam):
        assert result.maps.shape == (2, SIZE, SIZE)
        assert torch.isfinite(result.maps).all() and float(result.maps.abs().max()) > 0


def test_a_config_run_with_labels_and_a_prompt_template(clip_dir, tmp_path, capsys):
    out = tmp_path / "out"
    (tmp_path / "prompts.txt").write_text("tabby cat\nlabrador\n")
    config = tmp_path / "experiment.yaml"
    config.write_text(json.dumps({
        "model": {"name": f"hf/{clip_dir}", "labels": "prompts.txt",
                  "options": {"prompt": "a blurry photo of a {}."}},
        "inputs": ["sample:cat"], "methods": ["saliency", "grad_cam"], "target": "labrador",
        "workers": 0, "output_dir": str(out),
    }))
    assert main(["run", str(config)]) == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    assert results["complete"]
    for item in load_items(out, results):
        assert item["error"] is None
        assert (item["target"], item["target_label"]) == (1, "labrador")
        assert attribution_title(item["method"], item).startswith(
            f"{item['method']}: target: labrador (")
    # A target no prompt has fails at config time.
    config.write_text(config.read_text().replace('"labrador"', '"poodle"'))
    assert main(["config", "--check", str(config)]) == 2
    assert "poodle" in capsys.readouterr().err


def test_similarity_to_a_text_matches_captum_on_the_same_cosine(clip_dir, handle, x):
    model = _reference_model(clip_dir)
    reference = _text_features(model, ["a photo of a cat"])[0]
    target = xai_core.get_target("embedding_similarity", reference="text:a photo of a cat")
    ours = xai_core.get_attributor("saliency", abs=False, reduction="sum").attribute(
        handle, x, target
    )

    def forward(t):
        image = _features(model.get_image_features(pixel_values=t))
        return torch.nn.functional.cosine_similarity(image, reference[None], dim=1)

    theirs = captum_attr.Saliency(forward).attribute(x.clone(), abs=False).sum(1)
    assert float(theirs.abs().max()) > 0
    assert_float32_close(ours.maps, theirs, DEPTH + 2, FAN_IN)
    with torch.no_grad():
        assert_float32_close(ours.target_values, forward(x), DEPTH, FAN_IN)
    assert ours.target_labels[0] == "similarity to text:a photo of a cat"
    # An image reference on CLIP compares image embeddings too: an image with itself is 1.
    same = xai_core.get_target("embedding_similarity", reference=x[0])
    values = xai_core.get_attributor("saliency").attribute(handle, x[:1], same).target_values
    assert abs(float(values[0]) - 1) < 1e-5


def test_a_clip_model_without_labels_is_refused_at_config_time(clip_dir, tmp_path, capsys):
    config = tmp_path / "experiment.yaml"
    config.write_text(json.dumps({
        "model": {"name": f"hf/{clip_dir}"}, "inputs": ["sample:cat"],
        "methods": ["saliency"], "output_dir": str(tmp_path / "out"),
    }))
    assert main(["config", "--check", str(config)]) == 2
    err = capsys.readouterr().err
    assert "is a CLIP model" in err and "give the class prompts as the model's `labels`" in err
    with pytest.raises(ConfigError, match=r"is a CLIP model.*labels: \[cat, dog\]"):
        xai_core.load_model(f"hf/{clip_dir}")
    with pytest.raises(ConfigError, match=r"options.prompt 'a photo' is not a prompt template"):
        xai_core.load_model(f"hf/{clip_dir}", labels=LABELS, prompt="a photo")


def _vit_dir(tmp_path):
    folder = tmp_path / "tiny-vit"
    torch.manual_seed(0)
    config = transformers.ViTConfig(image_size=SIZE, patch_size=8, num_hidden_layers=1,
                                    hidden_size=32, num_attention_heads=2, intermediate_size=64,
                                    num_labels=3)
    config.architectures = []
    transformers.AutoModelForImageClassification.from_config(config).save_pretrained(folder)
    return folder


def test_labels_and_text_references_need_a_clip_model(tmp_path, capsys, x):
    vit = _vit_dir(tmp_path)
    config = tmp_path / "experiment.yaml"
    config.write_text(json.dumps({
        "model": {"name": f"hf/{vit}", "labels": ["a", "b", "c"]}, "inputs": ["sample:cat"],
        "methods": ["saliency"], "output_dir": str(tmp_path / "out"),
    }))
    assert main(["config", "--check", str(config)]) == 2
    assert "is a vit model, which brings its own classes: labels apply only to a CLIP " \
        "model" in capsys.readouterr().err
    handle = xai_core.load_model(f"hf/{vit}")
    target = xai_core.get_target("embedding_similarity", reference="text:a photo of a cat")
    with pytest.raises(TargetError, match=r"needs a model that embeds text \(a CLIP model"):
        xai_core.get_attributor("saliency").attribute(handle, x, target)
    with pytest.raises(ConfigError, match=r"has no text; write text:PROMPT"):
        xai_core.get_target("embedding_similarity", reference="text:  ")


def test_a_cached_hub_clip_is_checked_without_any_network(clip_dir, hub_cache, monkeypatch):
    """A Hub id whose config is in the Hugging Face cache: its type is read from the cache, so a
    missing ``labels`` fails the config check, and with labels it loads offline."""
    from xai_core.models.loading import check_model_options

    monkeypatch.setenv("XAI_CORE_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = hub_cache(clip_dir, "someone/tiny-clip")
    with pytest.raises(ConfigError, match=r"hf/someone/tiny-clip is a CLIP model"):
        check_model_options("hf/someone/tiny-clip", cache_dir=str(cache))
    handle = xai_core.load_model("hf/someone/tiny-clip", cache_dir=str(cache), labels=LABELS)
    assert handle.class_names == LABELS and handle.info["source"] == "huggingface"


def test_a_text_reference_compares_with_the_image_embedding_only(handle, x):
    target = xai_core.get_target("embedding_similarity", reference="text:a cat",
                                 layer="model.vision_model.post_layernorm")
    with pytest.raises(TargetError, match=r"compares with the model's image embedding \(layer "
                                          r"'embedding'\), not with layer"):
        xai_core.get_attributor("saliency").attribute(handle, x, target)
