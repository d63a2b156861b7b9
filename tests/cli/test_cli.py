"""The xai command line: listings, runs, and one-line errors with exit status 2."""

from __future__ import annotations

import json

import pytest

from xai_core.cli import main
from xai_core.store import load_items


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_attributors_names_the_plugin(capsys):
    code, out, _ = run(capsys, "list", "attributors")
    assert code == 0
    assert any(line.split()[:2] == ["saliency", "[saliency]"] for line in out.splitlines())


def test_list_samples_and_models(capsys):
    _, out, _ = run(capsys, "list", "samples")
    assert "sample:cat" in out and "sample:coffee" in out
    _, out, _ = run(capsys, "list", "models", "timm/resnet1*")
    assert "timm/resnet18" in out.split()
    _, out, _ = run(capsys, "list", "models")
    assert "efficientnet_lite0" in out and "timm/*" in out


def test_config_prints_the_resolved_config(capsys):
    code, out, _ = run(capsys, "config", "configs/demo.yaml", "seed=3")
    assert code == 0 and "seed: 3" in out and "name: saliency" in out


def test_config_prints_only_the_model_block_that_applies(capsys, tmp_path):
    import yaml

    from xai_core.runner.config import load_config

    two = tmp_path / "two.yaml"
    two.write_text("models: [timm/resnet10t, torchvision/squeezenet1_1]\n"
                   "inputs: [x.png]\nmethods: [saliency]\n")
    code, out, _ = run(capsys, "config", str(two))
    printed = yaml.safe_load(out)
    assert code == 0 and "model" not in printed, out
    assert [m["name"] for m in printed["models"]] == ["timm/resnet10t", "torchvision/squeezenet1_1"]
    code, out, _ = run(capsys, "config", "configs/demo.yaml")
    printed = yaml.safe_load(out)
    assert code == 0 and "models" not in printed and printed["model"]["name"], out
    # What it prints is a config that means the same.
    for source in (two, "configs/demo.yaml"):
        again = tmp_path / "again.yaml"
        again.write_text(run(capsys, "config", str(source))[1])
        assert load_config(again) == load_config(source)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["explain", "sample:cat", "--method", "salincy"], "did you mean 'saliency'"),
        (
            ["explain", "sample:cat", "--method", "saliency", "--model", "timm/resnt18"],
            "did you mean 'timm/resnet18'",
        ),
        (
            ["explain", "sample:kat", "--method", "saliency"],
            "unknown sample 'kat'; did you mean 'cat'",
        ),
        (["explain", "no/such/file.png", "--method", "saliency"], "is not a file, folder, glob"),
        (["explain", "sample:cat", "--method", "saliency", "--target", "1000"], "out of range"),
        (
            ["explain", "sample:cat", "--method", "saliency", "--model", "timm/resnet10t"],
            "cannot download pretrained weights",
        ),
        (["run", "configs/demo.yaml", "sed=1"], "unknown config key 'sed'; did you mean 'seed'"),
        (["run", "configs/demo.yaml", "seed=x"], "'seed'"),
        (["run", "configs/missing.yaml"], "does not exist"),
    ],
)
def test_errors_are_one_line_and_exit_2(capsys, tmp_path, argv, message):
    code, out, err = run(capsys, *argv, *(["--out", str(tmp_path)] if argv[0] == "explain" else []))
    assert code == 2
    errors = [line for line in err.splitlines() if not line.startswith("[xai] ")]
    assert len(errors) == 1 and errors[0].startswith("error: ") and message in errors[0]
    assert "Traceback" not in err


def test_debug_shows_the_traceback(capsys):
    from xai_core.errors import UnknownNameError

    with pytest.raises(UnknownNameError):
        main(["--debug", "explain", "sample:cat", "--method", "nope"])


def test_debug_after_the_command_shows_the_traceback(capsys):
    from xai_core.errors import UnknownNameError

    with pytest.raises(UnknownNameError):
        main(["explain", "sample:cat", "--method", "nope", "--debug"])


def test_flags_may_stand_anywhere_among_the_overrides():
    from xai_core.cli import _parser

    parser = _parser([])
    args = parser.parse_args(["run", "cfg.yaml", "seed=1", "--force", "output_dir=x", "--debug"])
    assert args.config == "cfg.yaml" and args.overrides == ["seed=1", "output_dir=x"]
    assert args.force and args.debug
    args = parser.parse_args(["--debug", "config", "cfg.yaml", "seed=2"])
    assert args.debug and args.config == "cfg.yaml" and args.overrides == ["seed=2"]
    args = parser.parse_args(["run", "cfg.yaml"])
    assert not args.debug and not args.force and args.overrides == []
    args = parser.parse_args(["explain", "a.png", "--method", "saliency", "b.png"])
    assert args.images == ["a.png", "b.png"] and args.method == ["saliency"]


def test_unreadable_image_fails_its_item_not_the_run(capsys, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not a png")
    good = tmp_path / "cat.png"
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 100, 50)).save(good)
    out_dir = tmp_path / "out"
    code, out, _ = run(
        capsys, "explain", str(bad), str(good), "--method", "saliency", "--out", str(out_dir)
    )
    assert code == 1
    assert "1 of 2 item(s) succeeded, 1 failed" in out
    items = {i["key"]: i for i in load_items(out_dir)}
    assert "is not an image PIL can read" in items["broken"]["error"]
    assert items["cat"]["error"] is None and items["cat"]["files"]["map"]


# Finding things (issue 16): presets, classes, layers, examples, explain's repeatable options ----


def test_list_presets_and_describe_a_preset(capsys):
    _, out, _ = run(capsys, "list", "presets")
    assert any(line.split()[:3] == ["smoothgrad", "[gradients]", "noise_tunnel:"]
               for line in out.splitlines())
    code, out, _ = run(capsys, "describe", "vargrad")
    assert code == 0 and "preset of noise_tunnel" in out and "type='vargrad'" in out


def test_list_classes_every_synonym_and_wordnet_id(capsys):
    code, out, _ = run(capsys, "list", "classes", "lighthouse")
    assert code == 0 and "437  n02814860  beacon, lighthouse" in out
    code, out, _ = run(capsys, "list", "classes", "timm/resnet10t", "n02123159")
    assert code == 0 and out.split()[:3] == ["282", "n02123159", "tiger"]
    code, _, err = run(capsys, "list", "classes", "timm/resnet1Ot", "cat")
    assert code == 2 and "did you mean" in err


def test_list_layers_marks_the_automatic_layer(capsys):
    code, out, _ = run(capsys, "list", "layers", "torchvision/squeezenet1_1")
    assert code == 0
    auto = [line.split()[0] for line in out.splitlines() if "<- layer: auto" in line]
    assert auto == ["features"]
    assert any(line.split()[:3] == ["classifier.1", "Conv2d", "1x1000x13x13"]
               for line in out.splitlines())


def test_examples_listed_printed_and_resolved(capsys):
    _, out, _ = run(capsys, "list", "examples")
    for name in ("demo", "benchmark", "dataset", "compare-backbones"):
        assert f"example:{name}" in out
    code, out, _ = run(capsys, "config", "--example", "compare-backbones")
    assert code == 0 and out.startswith("# Three offline ImageNet backbones")
    code, out, _ = run(capsys, "config", "example:compare-backbones", "seed=3")
    assert code == 0 and "efficientnet_lite2" in out and "seed: 3" in out
    code, _, err = run(capsys, "config", "--example", "dmeo")
    assert code == 2 and "did you mean 'demo'" in err


def test_misspelt_class_name_fails_before_any_model_loads(capsys, monkeypatch):
    import xai_core.models.loading as loading

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(loading, "load_model", no_loading)
    code, _, err = run(capsys, "explain", "sample:cat", "-m", "saliency", "--target", "ligthhouse")
    assert code == 2 and "unknown class name 'ligthhouse'; did you mean 'lighthouse'" in err
    code, _, err = run(capsys, "explain", "sample:cat", "-m", "saliency", "--target", "crane")
    assert code == 2 and "ambiguous" in err and "n02012849" in err


def test_explain_several_models_targets_and_params(capsys, tmp_path):
    out_dir = tmp_path / "out"
    code, out, err = run(
        capsys, "explain", "sample:cat", "-m", "saliency", "-m", "grad_cam",
        "--model", "timm/resnet10t", "--model", "torchvision/squeezenet1_1",
        "--target", "tabby", "--target", "n02123159",
        "--param", "grad_cam.upsample=nearest",
        "--set", "models.0.pretrained=false", "--set", "models.1.pretrained=false",
        "--set", "models.0.input_size=64", "--set", "models.1.input_size=64",
        "--set", "models.1.method_params={grad_cam: {layer: features.12}}",
        "--set", "workers=0", "--out", str(out_dir),
    )
    assert code == 0, err
    assert "RANDOM WEIGHTS" in out and "report:" in out
    data = json.loads((out_dir / "results.json").read_text())
    items = load_items(out_dir, data)
    assert {i["model"] for i in items} == {"timm/resnet10t", "torchvision/squeezenet1_1"}
    assert sorted({i["target"] for i in items}) == [281, 282]
    assert len(items) == 2 * 2 * 2
    cams = [i for i in items if i["label"] == "grad_cam"]
    assert all(i["metadata"]["upsample"] == "nearest" for i in cams if "upsample" in i["metadata"])
    assert (out_dir / "figures" / "compare" / "cat.png").is_file()


def test_param_names_a_method_of_the_command(capsys):
    code, _, err = run(capsys, "explain", "sample:cat", "-m", "grad_cam",
                       "--param", "grad_cm.layer=layer4")
    assert code == 2 and "did you mean 'grad_cam'" in err
    code, _, err = run(capsys, "explain", "sample:cat", "-m", "grad_cam", "--param", "grad_cam=1")
    assert code == 2 and "METHOD.KEY=VALUE" in err


@pytest.mark.slow
def test_help_and_listings_come_from_the_catalog_without_torch(tmp_path):
    """`xai list` in a fresh process: the first call builds the plugin catalog (loading the
    plugins), the next ones read it and never import torch; another plugin selection is
    another catalog."""
    import os
    import subprocess
    import sys

    probe = ("import sys; from xai_core.cli import main; main(['list', 'attributors']); "
             "print('torch loaded:', 'torch' in sys.modules)")

    def listing(**env):
        done = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300,
            env={**os.environ, "XAI_CORE_CACHE_DIR": str(tmp_path), **env},
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    first = listing()
    assert "saliency" in first and "lrp" in first and "torch loaded: True" in first
    assert len(list(tmp_path.glob("catalog-*.json"))) == 1
    second = listing()
    assert second.replace("True", "False") == second and "torch loaded: False" in second
    assert second.splitlines()[:-1] == first.splitlines()[:-1]
    only = listing(XAI_CORE_PLUGINS="saliency,cam")
    names = {line.split()[0] for line in only.splitlines()[:-1]}
    assert "saliency" in names and "grad_cam" in names and "lrp" not in names
