"""The ground-truth set, its committed model, the control maps and ``xai benchmark``."""

from __future__ import annotations

import json

import pytest
import torch
from xai_core_plugins.groundtruth.benchmark import model_accuracy, run_benchmark
from xai_core_plugins.groundtruth.controls import CONTROLS
from xai_core_plugins.groundtruth.data import (
    BENCHMARK_SEED,
    CLASS_NAMES,
    DISTRACTOR_NAMES,
    generate,
)
from xai_core_plugins.groundtruth.model import weights_path

import xai_core
from xai_core.cli import main
from xai_core.errors import ConfigError
from xai_core.runner.config import load_config


def test_the_set_is_reproducible_and_item_i_does_not_depend_on_the_set_size():
    small, large = generate(3, seed=5), generate(6, seed=5)
    assert torch.equal(small.images, large.images[:3])
    assert torch.equal(small.masks, large.masks[:3])
    assert not torch.equal(generate(3, seed=6).images, small.images)
    assert small.images.shape == (3, 3, 64, 64) and small.masks.dtype == torch.bool
    assert 0.0 <= small.images.min() and small.images.max() <= 1.0


def test_masks_are_exactly_the_pixels_the_object_changed():
    data = generate(32, seed=3)
    changed = (data.images != data.backgrounds).any(dim=1)
    assert torch.equal(changed, data.masks)
    assert (data.masks.flatten(1).sum(dim=1) > 20).all()


def test_distractors_are_equally_frequent_in_every_class():
    data = generate(800, seed=4)
    for label in range(len(CLASS_NAMES)):
        kinds = data.distractors[data.labels == label].flatten()
        assert len(kinds) > 250
        for kind in range(len(DISTRACTOR_NAMES)):
            assert 0.4 < (kinds == kind).float().mean() < 0.6


def test_committed_model_is_accurate_and_only_uses_the_object():
    """The >=95% held-out accuracy and the leakage check, on images training never saw."""
    assert weights_path().is_file()
    handle = xai_core.load_model("groundtruth_cnn")
    assert handle.class_names == list(CLASS_NAMES)
    data = generate(300, seed=BENCHMARK_SEED)
    assert model_accuracy(handle, data.images, data.labels, 100) >= 0.95
    # Leaving the object out (same background, same distractors) drops it to chance.
    assert model_accuracy(handle, data.backgrounds, data.labels, 100) < 0.25 + 0.1
    assert weights_path().stat().st_size < 200 * 1024


def test_controls_know_nothing_about_the_model():
    handle = xai_core.load_model("groundtruth_cnn", pretrained=False)
    data = generate(2, seed=1)
    x = handle.normalize(data.images)
    random = CONTROLS["random"]().attribute(handle, x, [0, 1]).maps
    assert torch.equal(random, CONTROLS["random"]().attribute(handle, x, [2, 3]).maps)
    gauss = CONTROLS["centre_gaussian"]().attribute(handle, x, [0, 1]).maps
    assert torch.equal(gauss[0], gauss[1])
    assert gauss[0, 31:33, 31:33].min() == gauss.max()
    flat = handle.normalize(torch.full((1, 3, 64, 64), 0.5))
    assert CONTROLS["edges"]().attribute(handle, flat, [0]).maps.abs().max() == 0
    edges = CONTROLS["edges"]().attribute(handle, x, [0, 1]).maps
    # The object's outline is an edge: some of its pixels are among the strongest.
    assert (edges[0][data.masks[0]].max() > edges[0].quantile(0.9)).item()


def small_config(tmp_path, **extra):
    values = {
        "model": {"name": "groundtruth_cnn"},
        "methods": ["saliency"],
        "metrics": [
            "pointing_game",
            "relevance_mass",
            {"name": "deletion", "params": {"steps": 4}},
            "cascading_randomization",
        ],
        "benchmark": {"images": 6, "sanity_images": 2},
        "output_dir": str(tmp_path / "bench"),
        "batch_size": 4,
    }
    values.update(extra)
    return load_config(values)


def test_benchmark_writes_the_table_with_control_rows_and_plots(tmp_path):
    result = run_benchmark(small_config(tmp_path))
    out = tmp_path / "bench"
    methods = [row["method"] for row in result.table["rows"]]
    assert methods == ["saliency", *(cls.name for cls in CONTROLS.values())]
    assert result.table["metrics"] == [
        "pointing_game", "relevance_mass", "deletion", "cascading_randomization"
    ]
    assert result.table["rows"][0]["pointing_game"]["n"] == 6
    # The sanity check only runs on the first `sanity_images` images.
    assert result.table["rows"][0]["cascading_randomization"]["n"] == 2
    # A map that ignores the model stays perfectly correlated through the cascade.
    assert result.table["rows"][1]["cascading_randomization"]["mean"] == pytest.approx(1.0)
    summary = json.loads((out / "benchmark.json").read_text())
    assert summary["dataset"]["accuracy"] >= 0.8
    assert summary["cascade"]["layers"][0] == "head"
    assert "| control: random |" in (out / "benchmark.md").read_text()
    for name in ("benchmark.png", "cascade.png", "examples.png", "items.json"):
        assert (out / name).is_file(), name


def test_benchmark_config_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="centre_gaussian"):
        small_config(tmp_path, benchmark={"controls": ["centre_gausian"]})
    with pytest.raises(ConfigError, match="no metrics"):
        run_benchmark(small_config(tmp_path, metrics=[]))


def test_cli_benchmark_prints_the_table(tmp_path, capsys):
    config = tmp_path / "bench.yaml"
    config.write_text(
        "model: {name: groundtruth_cnn}\nmethods: [saliency]\nmetrics: [relevance_rank]\n"
        f"benchmark: {{images: 4, controls: [random]}}\noutput_dir: {tmp_path / 'out'}\n"
    )
    assert main(["benchmark", str(config)]) == 0
    out = capsys.readouterr().out
    assert "| saliency |" in out and "| control: random |" in out
    assert (tmp_path / "out" / "benchmark.md").is_file()


def test_the_shipped_benchmark_config_is_valid():
    config = load_config("configs/benchmark.yaml")
    assert config.model.name == "groundtruth_cnn"
    assert {m.name for m in config.metrics} >= {"pointing_game", "cascading_randomization"}


def test_benchmark_models_axis_trained_beside_random_weights(tmp_path):
    values = {
        "models": [
            {"name": "groundtruth_cnn", "label": "trained"},
            {"name": "groundtruth_cnn", "label": "random", "pretrained": False},
        ],
        "methods": ["saliency"],
        "metrics": ["relevance_mass"],
        "benchmark": {"images": 6, "controls": ["random"], "sanity_images": 0},
        "output_dir": str(tmp_path / "bench"),
        "batch_size": 4,
    }
    result = run_benchmark(load_config(values))
    tables = result.table["models"]
    assert list(tables) == ["trained", "random"]
    summary = json.loads((tmp_path / "bench" / "benchmark.json").read_text())
    assert summary["datasets"]["trained"]["accuracy"] >= 0.8
    assert summary["datasets"]["random"]["accuracy"] < 0.6
    text = (tmp_path / "bench" / "benchmark.md").read_text()
    assert "## Model `trained`" in text and "## Model `random`" in text
    for label in ("trained", "random"):
        assert (tmp_path / "bench" / label / "benchmark.md").is_file()
