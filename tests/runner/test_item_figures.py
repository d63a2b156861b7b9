"""``figures: auto``: a figure per item for small runs, none beyond FIGURES_AUTO_IMAGES images
(the grid stays); ``figures`` values are checked at config time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xai_core.errors import ConfigError
from xai_core.runner import config as config_module
from xai_core.runner import run as run_module
from xai_core.runner.config import FIGURES_AUTO_IMAGES, load_config
from xai_core.runner.run import run_experiment

TINY = ["model.name=timm/resnet10t", "model.pretrained=false", "model.input_size=32",
        "workers=0"]


def _photos(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"p{i}.png"
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _config(inputs: list[Path], out: Path, *extra: str):
    return load_config(
        {"inputs": [str(p) for p in inputs], "methods": ["saliency"], "output_dir": str(out)},
        TINY + list(extra),
    )


def test_figures_default_to_auto_and_auto_follows_the_image_count():
    config = load_config({"inputs": ["x.png"], "methods": ["saliency"]}, check_names=False)
    assert config.figures == "auto"
    assert config.item_figures(FIGURES_AUTO_IMAGES) and not config.item_figures(
        FIGURES_AUTO_IMAGES + 1
    )
    for value, small, large in ((True, True, True), (False, False, False),
                                ("grid", False, False)):
        config.figures = value
        assert (config.item_figures(1), config.item_figures(10_000)) == (small, large)


@pytest.mark.parametrize("value", ["maybe", "autp", "on"])
def test_a_bad_figures_value_is_refused_at_config_time(value):
    with pytest.raises(ConfigError, match="'figures'") as error:
        load_config({"inputs": ["x.png"], "methods": ["saliency"], "figures": value},
                    check_names=False)
    message = str(error.value)
    assert "true" in message and "false" in message and "auto" in message
    if value == "autp":
        assert "did you mean 'auto'" in message


def test_a_number_is_not_a_figures_value():
    with pytest.raises(ConfigError, match="figures"):
        load_config({"inputs": ["x.png"], "methods": ["saliency"]}, ["figures=1"],
                    check_names=False)


@pytest.mark.slow
def test_auto_draws_item_figures_up_to_the_limit_and_none_beyond(tmp_path, monkeypatch):
    monkeypatch.setattr(config_module, "FIGURES_AUTO_IMAGES", 2)
    monkeypatch.setattr(run_module, "FIGURES_AUTO_IMAGES", 2)
    said: list[str] = []
    small = run_experiment(_config(_photos(tmp_path / "two", 2), tmp_path / "small"), said.append)
    assert all("figure" in item["files"] for item in small.items)
    for item in small.items:
        with Image.open(tmp_path / "small" / item["files"]["figure"]) as png:
            assert png.mode == "P"  # the PIL renderer's palette PNG
    assert not any("per-item figures" in line for line in said)

    large_out = tmp_path / "large"
    large = run_experiment(_config(_photos(tmp_path / "three", 3), large_out), said.append)
    assert len(large.items) == 3 and not large.failures
    assert not any("figure" in item["files"] for item in large.items)
    assert sorted(p.name for p in (large_out / "figures").iterdir()) == ["grid.png"]
    assert any("no per-item figures for 3 images (more than 2)" in line for line in said)

    # figures: true on the same folder draws them from the saved maps, recomputing nothing.
    forced = run_experiment(_config(_photos(tmp_path / "three", 3), large_out, "figures=true"))
    assert forced.results["summary"]["skipped"] == 3
    assert all((large_out / item["files"]["figure"]).is_file() for item in forced.items)


def test_figures_grid_draws_the_grid_alone_and_report_draws_the_rest_later(tmp_path):
    out = tmp_path / "out"
    config = _config(_photos(tmp_path / "in", 2), out, "figures=grid")
    result = run_experiment(config)
    assert not result.failures and all("figure" not in i["files"] for i in result.items)
    assert (out / "figures" / "grid.png").is_file()
    assert not list(out.glob("figures/p*/*.png"))
    from xai_core.cli import main

    assert main(["report", str(out), "figures=true"]) == 0
    assert sorted(p.name for p in out.glob("figures/p0/*.png")) == ["saliency.png"]

