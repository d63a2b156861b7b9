"""Runs of models with other than three input channels: YAML configs through ``xai run``,
grayscale image files and ``.npy`` arrays as inputs, the RGB view figures show
(``display_channels``), and the config checks that refuse before any model loads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from xai_core.cli import main
from xai_core.errors import ConfigError, InputError
from xai_core.io import PHOTO_SUFFIX, read_array
from xai_core.report.figures import display_image
from xai_core.runner.config import load_config
from xai_core.runner.inputs import read_input, resolve_inputs
from xai_core.runner.run import run_experiment
from xai_core.store import load_items

METHODS = [
    "saliency",
    {"name": "integrated_gradients", "params": {"steps": 8}},
    "grad_cam",
    {"name": "occlusion", "params": {"window": 8, "stride": 8}},
]
LABELS = ["saliency", "integrated_gradients", "grad_cam", "occlusion"]


def _model(channels: int) -> dict:
    return {"name": "timm/resnet10t", "pretrained": False, "input_size": 32,
            "options": {"in_chans": channels, "num_classes": 4}}


def _yaml(tmp_path: Path, channels: int, inputs: list[str], **extra) -> Path:
    config = {"model": _model(channels), "inputs": inputs, "methods": METHODS, "workers": 0,
              "output_dir": str(tmp_path / "out"), **extra}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "RGB"
        return np.asarray(image, dtype=np.float32) / 255


def _view(out: Path, key: str, mean, std, channels=None) -> np.ndarray:
    """The RGB view of an item's saved input, from its normalized ``.npz``."""
    inputs = torch.from_numpy(read_array(out / "inputs" / f"{key}.npz"))
    mean = torch.tensor(mean).view(-1, 1, 1)
    std = torch.tensor(std).view(-1, 1, 1)
    return display_image(inputs * std + mean, channels)


def _check_outputs(out: Path, keys: list[str]) -> dict:
    results = json.loads((out / "results.json").read_text())
    assert results["complete"] is True
    assert [i.get("error") for i in load_items(out, results)] == [None] * len(keys) * len(LABELS)
    for key in keys:
        for label in LABELS:
            assert (out / "figures" / key / f"{label}.png").is_file()
    assert (out / "figures" / "grid.png").is_file()
    return results


def test_a_grayscale_model_runs_from_yaml_on_image_files(tmp_path, capsys):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 44), dtype=np.uint8)).save(tmp_path / "grey.png")
    colour = rng.integers(0, 255, (40, 44, 3), dtype=np.uint8)
    Image.fromarray(colour).save(tmp_path / "colour.png")
    config = _yaml(tmp_path, 1, [str(tmp_path / "grey.png"), str(tmp_path / "colour.png")])
    assert main(["run", str(config)]) == 0
    out = tmp_path / "out"
    _check_outputs(out, ["grey", "colour"])
    saved = read_array(out / "inputs" / "colour.npz")
    assert saved.shape == (1, 32, 32)  # image files are read as grayscale ("L")
    grey_stats = ((0.485 + 0.456 + 0.406) / 3,), ((0.229 + 0.224 + 0.225) / 3,)
    photo = _png(out / "inputs" / f"colour{PHOTO_SUFFIX}")
    assert np.allclose(photo[..., 0], photo[..., 1]) and np.allclose(photo[..., 0], photo[..., 2])
    assert np.abs(photo - _view(out, "colour", *grey_stats)).max() <= 0.5 / 255 + 1e-6


def _bands(tmp_path: Path) -> Path:
    folder = tmp_path / "bands"
    folder.mkdir()
    rng = np.random.default_rng(1)
    np.save(folder / "first.npy", rng.random((4, 36, 40)).astype(np.float32))  # [C, H, W]
    np.save(folder / "second.npy", rng.integers(0, 65535, (36, 40, 4), dtype=np.uint16))
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "photo.png")
    return folder


def test_a_4_channel_model_runs_from_yaml_on_npy_arrays(tmp_path):
    folder = _bands(tmp_path)
    config = _yaml(tmp_path, 4, [str(folder)])
    assert main(["run", str(config)]) == 0
    out = tmp_path / "out"
    _check_outputs(out, ["first", "second"])
    assert read_array(out / "inputs" / "second.npz").shape == (4, 32, 32)
    stats = ((0.449,) * 4, (0.226,) * 4)  # averaged RGB statistics, to 8-bit precision
    for key in ("first", "second"):  # by default the first three channels
        view = _view(out, key, *stats)
        assert np.abs(_png(out / "inputs" / f"{key}{PHOTO_SUFFIX}") - view).max() <= 1.5 / 255


def test_display_channels_picks_the_view(tmp_path):
    folder = _bands(tmp_path)
    config = _yaml(tmp_path, 4, [str(folder / "first.npy")], display_channels=[3, 2, 1])
    assert main(["run", str(config)]) == 0
    out = tmp_path / "out"
    photo = _png(out / "inputs" / f"first{PHOTO_SUFFIX}")
    inputs = read_array(out / "inputs" / "first.npz")
    pixels = inputs * 0.226 + 0.449
    assert np.abs(photo[..., 0] - np.clip(pixels[3], 0, 1)).max() <= 1.5 / 255
    assert np.abs(photo[..., 2] - np.clip(pixels[1], 0, 1)).max() <= 1.5 / 255


def test_a_folder_gives_arrays_only_to_a_model_of_other_channels(tmp_path):
    folder = _bands(tmp_path)
    Image.fromarray(np.zeros((9, 9, 3), dtype=np.uint8)).save(folder / "rgb.png")
    assert [i.key for i in resolve_inputs([str(folder)])] == ["rgb"]
    assert [i.key for i in resolve_inputs([str(folder)], arrays=True)] == [
        "first", "rgb", "second"
    ]


def test_an_image_file_for_a_4_channel_model_fails_its_item_with_the_fix(tmp_path):
    _bands(tmp_path)
    config = load_config({"model": _model(4), "inputs": [str(tmp_path / "photo.png")],
                          "methods": ["saliency"], "workers": 0, "figures": False,
                          "output_dir": str(tmp_path / "out")})
    result = run_experiment(config)
    error = result.items[0]["error"]
    assert "takes 4 channels" in error and ".npy array [4, H, W] or [H, W, 4]" in error


def test_read_input_checks_an_array_against_the_model(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.ones((5, 9, 9), dtype=np.float32))
    with pytest.raises(InputError, match=r"shape \(5, 9, 9\).*takes 4 channel.*\[4, H, W\]"):
        read_input(path, 4)
    np.save(path, np.full((4, 9, 9), 3.0, dtype=np.float32))
    with pytest.raises(InputError, match=r"values in \[3, 3\].*scale raw bands"):
        read_input(path, 4)
    np.save(path, np.full((9, 9), 128, dtype=np.uint8))
    pixels, _ = read_input(path, 1)
    assert pixels.shape == (1, 9, 9) and float(pixels[0, 0, 0]) == pytest.approx(128 / 255)


def test_an_rgb_only_technique_is_refused_at_config_check(tmp_path, monkeypatch):
    import xai_core.models.loading as loading

    def no_loading(*args, **kwargs):
        raise AssertionError("the check must not load the model")

    monkeypatch.setattr(loading, "load_model", no_loading)
    with pytest.raises(ConfigError, match=(
        r"methods\[1\].*'feature_visualization' needs RGB.*'timm/resnet10t' takes 1 channel"
    )):
        load_config({"model": _model(1), "inputs": ["x.png"], "output_dir": str(tmp_path),
                     "methods": ["saliency", "feature_visualization"]})


@pytest.mark.parametrize(("display", "message"), [
    ([0, 1], r"give 1 channel index .* or 3"),
    ([0, 1, 4], r"names channel\(s\) 4, but the model takes 4 channel"),
])
def test_bad_display_channels_are_refused_at_config_check(tmp_path, display, message):
    with pytest.raises(ConfigError, match=message):
        load_config({"model": _model(4), "inputs": ["x.npy"], "methods": ["saliency"],
                     "output_dir": str(tmp_path), "display_channels": display})


def test_synthesizers_run_on_a_4_channel_model_with_rgb_views(tmp_path):
    folder = _bands(tmp_path)
    config = load_config({
        "model": _model(4), "inputs": [str(folder / "first.npy")], "workers": 0,
        "output_dir": str(tmp_path / "out"), "target": 1, "display_channels": [2],
        "methods": [{"name": "fooling", "params": {"max_iterations": 2}},
                    {"name": "class_visualization",
                     "params": {"steps": 2, "classes": [1], "record_every": 1}}],
    })
    result = run_experiment(config)
    assert [i.get("error") for i in result.items] == [None, None]
    out = result.output_dir
    for item in result.items:
        assert read_array(out / item["files"]["array"]).shape == (4, 32, 32)
        image = _png(out / item["files"]["image"])  # the grayscale view of channel 2
        assert np.array_equal(image[..., 0], image[..., 1])
        assert (out / item["files"]["figure"]).is_file()


def test_a_model_whose_channels_show_only_once_loaded_is_checked_then(tmp_path):
    """A plugin model with no ImageNet classes and no ``in_chans`` option: its channel count
    (2, from its first convolution) is checked against the config once, as it loads."""
    import types

    import xai_core
    from xai_core.contracts.model import as_model_handle

    def two_bands(**options):
        torch.manual_seed(0)
        module = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.ReLU(),
                                     torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                     torch.nn.Linear(4, 3))
        return as_model_handle(module)

    plugin = types.ModuleType("bandzoo")

    @xai_core.hookimpl
    def register_models(register):
        register("two_bands", two_bands)

    plugin.register_models = register_models
    xai_core.register_plugin(plugin, name="bandzoo")
    np.save(tmp_path / "a.npy", np.random.default_rng(0).random((2, 16, 16)))
    base = {"model": {"name": "two_bands", "input_size": 16}, "inputs": [str(tmp_path / "a.npy")],
            "workers": 0, "output_dir": str(tmp_path / "out")}
    config = load_config({**base, "methods": ["saliency"], "display_channels": [2]})
    with pytest.raises(ConfigError, match=r"names channel\(s\) 2, but the model takes 2"):
        run_experiment(config)
    config = load_config({**base, "methods": ["feature_visualization"]})
    with pytest.raises(ConfigError, match=r"feature_visualization.*takes 2 channel"):
        run_experiment(config)
    result = run_experiment(load_config({**base, "methods": ["saliency"]}))
    assert result.items[0].get("error") is None
    assert read_array(result.output_dir / "inputs" / "a.npz").shape == (2, 16, 16)
