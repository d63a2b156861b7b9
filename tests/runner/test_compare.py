"""Several models in one experiment (`models:`): per-model overrides, outputs per model, the
comparison figures, resume and torchrun sharding over (model, image)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numerics import assert_float32_close
from PIL import Image

from xai_core.errors import ConfigError
from xai_core.io import read_array
from xai_core.runner.config import load_config
from xai_core.runner.run import run_experiment
from xai_core.runner.verify import verify_run
from xai_core.store import load_items

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SQUEEZE_LAYER = "features.12"


def _models(input_size: int = 48) -> list[dict]:
    return [
        {"name": "timm/resnet10t", "pretrained": False, "input_size": input_size},
        {
            "name": "torchvision/squeezenet1_1",
            "pretrained": False,
            "input_size": input_size,
            "label": "squeeze",
            "method_params": {"grad_cam": {"layer": SQUEEZE_LAYER}},
        },
    ]


def _images(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        pixels = rng.integers(0, 255, (40, 44 + i, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i}.png")
    return folder


def _config(tmp_path: Path, out: str = "out", **extra):
    return load_config({
        "models": _models(),
        "inputs": [str(_images(tmp_path / "in", 2))],
        "methods": ["saliency", "grad_cam"],
        "output_dir": str(tmp_path / out),
        "workers": 0,
        **extra,
    })


def test_both_model_and_models_is_refused():
    with pytest.raises(ConfigError, match="both `model` and `models`"):
        load_config({"model": {"name": "timm/resnet10t"}, "models": ["timm/resnet18"],
                     "inputs": ["x.png"], "methods": ["saliency"]})


def test_duplicate_model_labels_and_bad_overrides_are_refused():
    base = {"inputs": ["x.png"], "methods": ["saliency", "grad_cam"]}
    with pytest.raises(ConfigError, match="appear more than once.*distinct `label`"):
        load_config({**base, "models": ["timm/resnet10t", "timm/resnet10t"]})
    with pytest.raises(ConfigError, match="method_params.grad_cm.*did you mean 'grad_cam'"):
        load_config({**base, "models": [{"name": "timm/resnet10t",
                                         "method_params": {"grad_cm": {"layer": "x"}}}]})
    with pytest.raises(ConfigError, match="with method_params of model 'timm_resnet10t'.*layr"):
        load_config({**base, "models": [{"name": "timm/resnet10t",
                                         "method_params": {"grad_cam": {"layr": "x"}}}]})


def test_names_shorthand_and_model_list():
    config = load_config({"models": ["timm/resnet10t", "torchvision/squeezenet1_1"],
                          "inputs": ["x.png"], "methods": ["saliency"]})
    assert [m.name for m in config.model_list] == ["timm/resnet10t", "torchvision/squeezenet1_1"]
    assert config.compares_models
    single = load_config({"model": "timm/resnet10t", "inputs": ["x.png"], "methods": ["saliency"]})
    assert [m.name for m in single.model_list] == ["timm/resnet10t"]
    assert not single.compares_models


def test_every_method_on_every_model_with_overrides_and_comparison(tmp_path):
    result = run_experiment(_config(tmp_path))
    out = result.output_dir
    assert not result.failures
    by = {(i["model"], i["key"], i["label"]): i for i in result.items}
    assert len(by) == 2 * 2 * 2
    for (model, key, label), item in by.items():
        folder = "timm_resnet10t" if model == "timm/resnet10t" else "squeeze"
        assert item["files"]["map"] == f"{folder}/maps/{key}/{label}.npz"
        assert read_array(out / item["files"]["map"]).shape == (48, 48)
    # the per-model override reached squeezenet's grad_cam only
    assert by[("squeeze", "img0", "grad_cam")]["metadata"]["layer"] == SQUEEZE_LAYER
    assert by[("timm/resnet10t", "img0", "grad_cam")]["metadata"]["layer"] != SQUEEZE_LAYER
    data = json.loads((out / "results.json").read_text())
    assert data["complete"] and [m["label"] for m in data["models"]] == ["timm/resnet10t",
                                                                         "squeeze"]
    assert all(m["weights"] == "random" for m in data["models"])
    assert all(item.get("random_weights") for item in result.items)
    assert data["comparisons"] == ["figures/compare/img0.png", "figures/compare/img1.png"]
    for rel in data["comparisons"]:
        with Image.open(out / rel) as figure:
            assert figure.size[0] > figure.size[1] / 2  # two rows, three columns
    # resume: nothing to redo; a removed map of one model is the only item redone
    again = run_experiment(_config(tmp_path))
    assert again.results["summary"]["skipped"] == 8
    victim = by[("squeeze", "img1", "saliency")]["files"]["map"]
    (out / victim).unlink()
    third = run_experiment(_config(tmp_path))
    assert third.results["summary"]["skipped"] == 7
    assert (out / victim).is_file()


def test_verify_finds_each_models_records_and_a_missing_map(tmp_path):
    config = load_config({
        "models": _models(32),
        "inputs": [str(_images(tmp_path / "in", 1))],
        "methods": ["saliency", "grad_cam"],
        "output_dir": str(tmp_path / "out"),
        "workers": 0,
    })
    out = run_experiment(config).output_dir
    found = verify_run(out)
    assert found.ok, found.problems
    (out / "squeeze" / "maps" / "img0" / "saliency.npz").unlink()
    found = verify_run(out)
    assert [p for p in found.problems if "squeeze/maps/img0/saliency.npz" in p], found.problems
    assert not [p for p in found.problems if "records/" in p], found.problems


@pytest.mark.slow
def test_torchrun_two_ranks_over_two_models_match_one(tmp_path):
    folder = _images(tmp_path / "in", 3)
    config = {
        "models": _models(40),
        "inputs": [str(folder)],
        "methods": ["saliency", {"name": "grad_cam", "params": {"upsample": "nearest"}}],
        "workers": 0,
        "storage": {"dtype": "float32"},  # the maps as computed: compared to float32 rounding
    }
    path = tmp_path / "compare.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    single = subprocess.run(
        [str(BIN / "xai"), "run", str(path), f"output_dir={tmp_path / 'one'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    launcher = subprocess.run(
        [str(BIN / "torchrun"), "--standalone", "--nproc-per-node", "2", "-m", "xai_core.cli",
         "run", str(path), f"output_dir={tmp_path / 'two'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert launcher.returncode == 0, launcher.stderr[-3000:]

    def items(name):
        data = json.loads((tmp_path / name / "results.json").read_text())
        return {(i["model"], i["key"], i["label"]): i for i in load_items(tmp_path / name, data)}

    one, two = items("one"), items("two")
    assert one.keys() == two.keys() and len(one) == 2 * 3 * 2
    for key, item in one.items():
        assert item["files"] == two[key]["files"]
        # Two ranks batch other images together: sums run in another order, so the maps agree
        # to float32 rounding through the network (ResNet-10-T: ~12 layers, 3x3x512 reductions).
        reference = read_array(tmp_path / "one" / item["files"]["map"])
        assert_float32_close(
            read_array(tmp_path / "two" / two[key]["files"]["map"]), reference,
            depth=12, fan_in=3 * 3 * 512,
        )
    assert {i["rank"] for i in two.values()} == {0, 1}
    for model in ("timm/resnet10t", "squeeze"):
        assert {i["rank"] for k, i in two.items() if k[0] == model} == {0, 1}


def test_compare_backbones_example_small(tmp_path):
    """example:compare-backbones as shipped, on one photo with two methods: the three offline
    EfficientNet-Lite models at their own input sizes, side by side."""
    config = load_config("example:compare-backbones", [
        "inputs=[sample:cat]", "methods=[saliency, grad_cam]", "metrics=[]", "workers=0",
        f"output_dir={tmp_path / 'cb'}",
    ])
    result = run_experiment(config)
    assert not result.failures
    models = result.results["models"]
    assert [m["label"] for m in models] == [
        "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    assert [m["input_size"] for m in models] == [[224, 224], [240, 240], [260, 260]]
    assert all(m["weights"] != "random" for m in models)
    assert not any(item.get("random_weights") for item in result.items)
    for item in result.items:
        side = {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}
        shape = read_array(result.output_dir / item["files"]["map"]).shape
        assert shape == (side[item["model"]],) * 2
        assert item["predicted_label"] in ("tiger cat", "tabby", "Egyptian cat")
    assert result.results["comparisons"] == ["figures/compare/cat.png"]
    assert (result.output_dir / "report.html").is_file()


def test_metric_tables_keep_models_apart():
    from xai_core.report.tables import metrics_table, table_markdown

    items = [
        {"label": "saliency", "model": "a", "metrics": {"deletion": 0.2}},
        {"label": "saliency", "model": "b", "metrics": {"deletion": 0.6}},
        {"label": "saliency", "model": "a", "metrics": {"deletion": 0.4}},
    ]
    table = metrics_table(items, {"deletion": False})
    rows = {row["method"]: row for row in table["rows"]}
    assert rows["saliency (a)"]["deletion"]["mean"] == pytest.approx(0.3)
    assert rows["saliency (b)"]["deletion"]["mean"] == pytest.approx(0.6)
    assert (rows["saliency (b)"]["model"], rows["saliency (b)"]["label"]) == ("b", "saliency")
    assert "| saliency (a) | **0.300 ± 0.100** |" in table_markdown(table)
    # one model: rows are plain method labels, as before
    assert [r["method"] for r in metrics_table(items[:1])["rows"]] == ["saliency"]
