"""Target kinds in runs: YAML and command-line forms, checks before any model loads, records,
titles and the report, resume, and an image a kind cannot explain failing alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from xai_core.errors import ConfigError, UnknownNameError
from xai_core.runner.config import load_config
from xai_core.runner.run import run_experiment
from xai_core.store import load_items

TINY = {"name": "timm/resnet10t", "pretrained": False, "input_size": 48}


def _config(tmp_path: Path, target, model=None, methods=("saliency", "grad_cam"), metrics=()):
    return load_config({
        "model": model or TINY,
        "inputs": ["sample:cat", "sample:coffee"],
        "target": target,
        "methods": list(methods),
        "metrics": list(metrics),
        "output_dir": str(tmp_path / "out"),
        "workers": 0,
    })


def test_a_logit_difference_run_records_what_it_explained(tmp_path):
    config = _config(
        tmp_path, {"kind": "logit_difference", "a": "tabby", "b": "tiger_cat"},
        metrics=[{"name": "deletion", "params": {"output": "logit"}}],
    )
    result = run_experiment(config)
    assert result.results["summary"] == {"items": 4, "failed": 0, "skipped": 0}
    for item in result.items:
        assert item["target"] == [281, 282] and item["target_label"] == "tabby - tiger cat"
        assert item["target_value_name"] == "logit" and np.isfinite(item["target_value"])
        assert item.get("predicted") is None and item.get("top5") is None
        assert np.isfinite(item["metrics"]["deletion"])
    out = tmp_path / "out"
    saved = json.loads((out / "results.json").read_text())
    assert load_items(out, saved)[0]["target_label"] == "tabby - tiger cat"
    # The report's page draws its images from report/data.js.
    assert '"tabby - tiger cat, logit' in (out / "report" / "data.js").read_text()
    again = run_experiment(config)  # resumes: every item is reused
    assert again.results["summary"]["skipped"] == 4


def test_multilabel_predicted_fails_only_the_image_with_no_label(tmp_path):
    # A random 5-label head: sigmoids near 0.5, some over it on one photo and none on the
    # other (seed 0).
    model = {**TINY, "options": {"num_classes": 5}}
    config = _config(tmp_path, {"kind": "multilabel", "threshold": 0.5}, model=model)
    result = run_experiment(config)
    by_image: dict[str, list] = {}
    for item in result.items:
        by_image.setdefault(item["key"], []).append(item)
    ok = [k for k, items in by_image.items() if all(i["error"] is None for i in items)]
    failed = [k for k, items in by_image.items() if any(i["error"] for i in items)]
    for key in failed:
        assert all("chose no target for this image" in i["error"] for i in by_image[key])
    for key in ok:
        for item in by_image[key]:
            assert item["target_label"].startswith("label ")
            assert item["target_value_name"] == "logit"
            assert 0.5 < item["target_probability"] < 1
    assert ok and failed and result.results["summary"]["failed"] == 2 * len(failed)


def test_segmentation_run_on_a_torchvision_segmenter(tmp_path):
    model = {"name": "segmentation/lraspp_mobilenet_v3_large", "pretrained": False,
             "input_size": 64}
    config = _config(tmp_path, {"kind": "segmentation", "region": "all", "label": 0},
                     model=model, methods=("saliency", "occlusion"))
    result = run_experiment(config)
    assert result.results["summary"]["failed"] == 0
    assert {i["target_label"] for i in result.items} == {"__background__ over 4096 px"}
    assert all(i["target_value_name"] == "logit sum" for i in result.items)


def test_detection_run_on_a_torchvision_detector(tmp_path):
    model = {"name": "detection/fasterrcnn_mobilenet_v3_large_320_fpn", "pretrained": False,
             "input_size": 64, "options": {"box_score_thresh": 0.0}}
    cam = {"name": "grad_cam", "params": {"layer": "backbone.body.16"}}
    config = _config(tmp_path, {"kind": "detection", "detection": 0}, model=model,
                     methods=("saliency", cam))
    result = run_experiment(config)
    assert result.results["summary"]["failed"] == 0
    for item in result.items:
        assert item["target_label"].startswith("detection 0 ")
        assert item["target_value_name"] == "iou + score" and item["target_value"] > 1
        assert set(item["target"]) == {"box", "label"}


@pytest.mark.parametrize(
    "target, extra, message",
    [
        ({"kind": "segmentation"}, {}, "'segmentation' explains segmentation models, but "
         "'timm/resnet10t' is a classification model"),
        ({"kind": "detection"}, {}, "target kind 'detection' explains detection models"),
        ({"kind": "logit_difference", "a": 1, "b": 2}, {"metrics": ["deletion"]},
         "metrics[0].params.output': deletion reads the target's probability (output: "
         "probability, its default)"),
        ({"kind": "logit_difference", "a": 1, "b": 2}, {"methods": ["fooling"]},
         "is a synthesizer"),
        ({"kind": "regression", "output": "tabby"}, {"model": {"name": "efficientnet_lite0"}},
         None),
        ({"kind": "logit_difference", "a": "tabbby", "b": 2},
         {"model": {"name": "efficientnet_lite0"}}, "did you mean 'tabby'"),
        ({"kind": "multilabel", "treshold": 0.3}, {}, "Valid keys: label, threshold, score"),
    ],
)
def test_a_bad_target_kind_is_refused_before_anything_runs(tmp_path, target, extra, message):
    values = {
        "model": TINY, "inputs": ["sample:cat"], "methods": ["saliency"], "target": target,
        "output_dir": str(tmp_path / "out"), **extra,
    }
    if message is None:  # a name among the model's outputs is fine
        load_config(values)
        return
    with pytest.raises(ConfigError) as caught:
        load_config(values)
    assert message in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_an_unknown_kind_names_the_close_ones(tmp_path):
    with pytest.raises(UnknownNameError, match="did you mean 'logit_difference'"):
        load_config({"model": TINY, "inputs": ["sample:cat"], "methods": ["saliency"],
                     "target": {"kind": "logit_diff"}, "output_dir": str(tmp_path / "o")})


def test_explain_takes_a_kind_on_the_command_line(tmp_path, capsys):
    from xai_core.cli import main

    code = main([
        "explain", "sample:cat", "--method", "saliency", "--model", "timm/resnet10t",
        "--target", "logit_difference:a=tabby,b=tiger_cat", "--out", str(tmp_path / "o"),
        "--set", "model.pretrained=false", "--set", "model.input_size=48",
    ])
    assert code == 0
    assert "target (timm/resnet10t, cat): tabby - tiger cat, logit" in capsys.readouterr().out
    assert main(["list", "targets"]) == 0
    listing = capsys.readouterr().out
    for kind in ("class", "multilabel", "regression", "logit_difference", "segmentation",
                 "channel", "neuron", "embedding_similarity"):
        assert kind in listing


def _model_passes(config) -> int:
    """Forward passes of the run's whole model (timm's ResNet) during ``run_experiment``."""
    import torch

    calls = [0]

    def count(module, args):
        if type(module).__name__ == "ResNet":
            calls[0] += 1

    removable = torch.nn.modules.module.register_module_forward_pre_hook(count)
    try:
        run_experiment(config, force=True)
    finally:
        removable.remove()
    return calls[0]


def test_a_kind_adds_no_forward_pass_over_the_class_target(tmp_path):
    methods = ("saliency", "grad_cam", "integrated_gradients")
    kind = {"kind": "logit_difference", "a": 1, "b": 2}
    passes = {
        name: _model_passes(_config(tmp_path / name, target, methods=methods))
        for name, target in (("class", "predicted"), ("kind", kind))
    }
    assert passes["class"] == passes["kind"] > 0


def test_a_method_that_cannot_explain_the_model_fails_the_run_once(tmp_path):
    """Attention methods on a CNN: refused once the model is known, before any item."""
    config = _config(tmp_path, "predicted", methods=("saliency", "attention_rollout"))
    with pytest.raises(ConfigError, match="methods 'attention_rollout': model .* has no "
                       "transformer blocks"):
        run_experiment(config)
    assert not list((tmp_path / "out").glob("maps/*/*.npz"))


def test_a_cam_refuses_a_model_without_a_spatial_layer():
    import torch

    import xai_core
    from xai_core.contracts.model import as_model_handle
    from xai_core.errors import XaiError

    mlp = as_model_handle(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4)))
    mlp.preprocessing = xai_core.Preprocessing(input_size=(8, 8), resize_size=8)
    with pytest.raises(XaiError):
        xai_core.get_attributor("grad_cam").check_model(mlp)
    xai_core.get_attributor("saliency").check_model(mlp)  # any model
