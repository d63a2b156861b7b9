"""``xai_core.explain``, ``open_run`` and ``Explanations``: the Python call is the CLI's run (the
same folder, the same frame), in-memory models and images go through it, maps load lazily, and
failures stay visible."""

from __future__ import annotations

import html
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

import xai_core
from xai_core.errors import ConfigError, XaiError
from xai_core.report import explanations as explanations_module
from xai_core.report.figures import FigureOptions, render_map
from xai_core.runner.config import load_config
from xai_core.runner.run import run_experiment

IMAGES = ["sample:cat", "sample:coffee"]
METHODS = ["saliency", "grad_cam"]
#: The run both the CLI path and explain make: tiny, untrained, 48 px, no figures to draw.
SETTINGS = {"pretrained": False, "input_size": 48, "workers": 0, "figures": False}


def _config(folder) -> dict:
    return {
        "model": {"name": "timm/resnet10t", "pretrained": False, "input_size": 48},
        "inputs": IMAGES, "methods": METHODS, "metrics": ["sparseness"],
        "workers": 0, "figures": False, "output_dir": str(folder),
    }


@pytest.fixture(scope="module")
def cli_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    run_experiment(load_config(_config(folder)))
    return folder


@pytest.fixture(scope="module")
def explained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("explain")
    return xai_core.explain("timm/resnet10t", IMAGES, methods=METHODS, metrics=["sparseness"],
                            output_dir=folder, **SETTINGS)


@pytest.fixture(scope="module")
def module():
    import timm

    torch.manual_seed(0)
    return timm.create_model("resnet10t", pretrained=False)


def test_the_frame_has_a_row_per_image_and_method(explained):
    frame = explained.frame()
    assert len(frame) == 4
    assert list(zip(frame["image"], frame["method"])) == [
        (image, method) for image in IMAGES for method in METHODS
    ]
    for column in ("model", "image", "method", "target", "target_label", "predicted",
                   "predicted_label", "predicted_probability", "seconds", "error",
                   "metric_sparseness", "map_file", "input_file"):
        assert column in frame.columns, column
    assert set(frame["model"]) == {"timm/resnet10t"}
    assert frame["error"].isna().all()
    assert (frame["target"] == frame["predicted"]).all()  # target: predicted
    assert frame["metric_sparseness"].between(0, 1).all()
    assert explained.images == IMAGES and explained.methods == METHODS
    assert explained.failures == []


def test_open_run_on_a_cli_run_gives_the_same_frame(explained, cli_folder):
    # Only the timings differ: they are measured, not computed.
    pd.testing.assert_frame_equal(
        xai_core.open_run(cli_folder).frame().drop(columns="seconds"),
        explained.frame().drop(columns="seconds"),
    )
    # The object explain returns is open_run's over its folder.
    pd.testing.assert_frame_equal(xai_core.open_run(explained.folder).frame(), explained.frame())


def test_maps_are_read_only_when_used(cli_folder, monkeypatch):
    reads = []
    real = explanations_module.read_array
    monkeypatch.setattr(explanations_module, "read_array",
                        lambda path: reads.append(path) or real(path))
    ex = xai_core.open_run(cli_folder)
    ex.frame()
    assert reads == []
    first = ex.map("sample:cat", "saliency")
    assert first.shape == (48, 48) and first.dtype == np.float32
    assert ex.maps[("timm/resnet10t", "sample:cat", "saliency", ex[0].target)] is first
    assert len(reads) == 1  # read once, then kept
    np.testing.assert_array_equal(first, real(cli_folder / ex[0].record["files"]["map"]))
    with pytest.raises(XaiError, match="grad_cam"):
        ex.map("sample:cat", "gradcam")


def test_plot_draws_images_down_and_methods_across(explained):
    fig = explained.plot()
    assert isinstance(fig, Figure)
    # Per row: the photo, then per method its map and its colour key.
    assert len(fig.axes) == 2 * (1 + 2 * len(METHODS))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[1] == "saliency" and titles[3] == "grad_cam"
    assert titles[0].startswith("cat\ntarget: ")
    assert len(explained.plot(methods=["grad_cam"], images=["coffee"]).axes) == 3
    with pytest.raises(XaiError, match="did you mean 'grad_cam'"):
        explained.plot(methods=["gradcam"])


def test_plot_opacity_and_overlay(explained):
    item = explained.select("sample:cat", "saliency")[0]
    photo_axis, map_axis = explained.plot(images=["cat"], methods=["saliency"]).axes[:2]
    photo = photo_axis.get_images()[0].get_array()
    np.testing.assert_allclose(photo, item.photo)
    # opacity 0: the overlay is the photo; overlay=False: the map's own colours.
    clear = explained.plot(images=["cat"], methods=["saliency"], opacity=0.0).axes[1]
    np.testing.assert_allclose(clear.get_images()[0].get_array(), item.photo, atol=1e-6)
    alone = explained.plot(images=["cat"], methods=["saliency"], overlay=False).axes[1]
    np.testing.assert_allclose(alone.get_images()[0].get_array(),
                               render_map(item.map, FigureOptions()).rgb)
    assert not np.allclose(map_axis.get_images()[0].get_array(), photo)
    with pytest.raises(ConfigError, match="overlay_alpha"):
        explained.plot(opacity=2)


def test_the_inline_view_holds_the_figure_and_a_table(explained):
    page = explained._repr_html_()
    assert "<img src='data:image/png;base64," in page
    assert "<table>" in page and page.count("<tr>") == 1 + len(explained)
    assert "sample:coffee" in page and "metric_sparseness" in page


def test_a_module_pil_images_and_tensors(module, tmp_path):
    lines = []
    torch.manual_seed(1)
    images = [Image.new("RGB", (60, 50), (200, 30, 30)), torch.rand(3, 40, 40),
              torch.rand(3, 4, 4)]  # the last one is too small to explain: its items fail
    ex = xai_core.explain(module, images, methods=["saliency"], input_size=32, figures=False,
                          output_dir=tmp_path, progress=lines.append)
    frame = ex.frame()
    assert list(frame["model"]) == ["ResNet"] * 3
    assert [name.rpartition("/")[2] for name in frame["image"]] == [
        "image_0.png", "image_1.npy", "image_2.npy"]
    assert frame["error"].isna().tolist() == [True, True, False]
    assert [f.key for f in ex.failures] == ["image_2"]
    error = ex.failures[0].error
    assert "pixels" in error and error == frame["error"][2]
    # Shown inline and in the figure, never dropped.
    page = ex._repr_html_()
    assert "1 item(s) failed" in page and html.escape(error) in page
    texts = [t.get_text() for ax in ex.plot().axes for t in ax.texts]
    assert any(t.startswith("failed:") for t in texts)
    assert ex.map("image_0", "saliency").shape == (32, 32)
    assert any("using the given model ResNet" in line for line in lines)
    # The tensor was written as it was given (pixels in [0, 1], preprocessed by the run).
    np.testing.assert_array_equal(np.load(tmp_path / "given" / "image_1.npy"), images[1].numpy())
    # The saved config names the model as passed from Python: no config file can load it.
    with pytest.raises(ConfigError, match="passed from Python"):
        load_config(tmp_path / "config.yaml")
    # The same weights resume; other weights redo the items.
    lines.clear()
    xai_core.explain(module, images[:2], methods=["saliency"], input_size=32, figures=False,
                     output_dir=tmp_path, progress=lines.append)
    assert any("skipped 2 item(s)" in line for line in lines)
    lines.clear()
    with torch.no_grad():
        module.fc.bias.add_(1.0)
    xai_core.explain(module, images[:2], methods=["saliency"], input_size=32, figures=False,
                     output_dir=tmp_path, progress=lines.append)
    assert not any("skipped" in line for line in lines)


def test_a_batch_tensor_is_one_image_per_row(module):
    batch = torch.rand(2, 3, 36, 36)
    with xai_core.explain(module, batch, methods="saliency", input_size=32,
                          figures=False) as ex:
        folder = ex.folder
        assert [item.key for item in ex] == ["image_0", "image_1"]
        assert folder.is_dir() and folder.name.startswith("xai-explain-")
        # Each image preprocessed like a file: resized to the model's 32 px.
        assert ex[1].photo.shape == (32, 32, 3)
    assert not folder.exists()  # the temporary folder went with the object


def test_a_target_kind_object(module):
    kind = xai_core.get_target("logit_difference", a=3, b=7)
    ex = xai_core.explain(module, torch.rand(3, 32, 32), methods="saliency", target=kind,
                          input_size=32, figures=False)
    row = ex.frame().iloc[0]
    assert (row["target"], row["target_label"]) == ("[3, 7]", "tiger shark - cock")
    assert row["target_value_name"] == "logit" and np.isfinite(row["target_value"])
    assert row["error"] is None
    assert xai_core.explain(module, torch.rand(3, 32, 32), methods="saliency", target=5,
                            input_size=32, figures=False).frame()["target"].tolist() == [5]


def test_errors_are_the_configs_and_come_first(module, tmp_path):
    with pytest.raises(XaiError, match="did you mean 'saliency'"):
        xai_core.explain(module, ["sample:cat"], methods=["salency"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match="did you mean 'batch_size'"):
        xai_core.explain(module, ["sample:cat"], batchsize=2, output_dir=tmp_path)
    with pytest.raises(ConfigError, match="brings its own weights"):
        xai_core.explain(module, ["sample:cat"], pretrained=False, output_dir=tmp_path)
    with pytest.raises(XaiError, match=r"values in \[0, 1\]"):
        xai_core.explain(module, torch.randn(3, 32, 32) * 3, output_dir=tmp_path)
    with pytest.raises(XaiError, match=r"\[B, C, H, W\]"):
        xai_core.explain(module, torch.rand(1, 1, 3, 32, 32), output_dir=tmp_path)
    with pytest.raises(ConfigError, match="callable target"):
        xai_core.explain(module, ["sample:cat"], target=xai_core.ScoreFunction(lambda z: z[:, 0]),
                         output_dir=tmp_path)
    with pytest.raises(XaiError, match="sample"):
        xai_core.explain("timm/resnet10t", ["sample:dog"], pretrained=False, output_dir=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing was written for a refused call


def test_frame_names_the_extra_without_pandas(explained, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "pandas", None)
    with pytest.raises(XaiError, match=r"pip install 'xai-core\[table\]'"):
        explained.frame()


@pytest.mark.slow
def test_explain_the_real_model():
    ex = xai_core.explain("efficientnet_lite0", ["sample:cat", "sample:coffee"],
                          methods=["saliency", "grad_cam"])
    frame = ex.frame()
    assert len(frame) == 4
    assert list(zip(frame["image"], frame["method"])) == [
        (image, method) for image in ["sample:cat", "sample:coffee"]
        for method in ["saliency", "grad_cam"]
    ]
    assert set(frame["model"]) == {"efficientnet_lite0"}
    assert frame["error"].isna().all()
    labels = dict(zip(frame["image"], frame["predicted_label"]))
    assert "cat" in labels["sample:cat"] and labels["sample:coffee"] == "espresso"
    assert (frame["target"] == frame["predicted"]).all()


def test_open_run_refuses_a_folder_without_a_run_and_warns_of_an_unfinished_one(
    cli_folder, tmp_path
):
    with pytest.raises(XaiError, match="holds no results.json"):
        xai_core.open_run(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(cli_folder, copy)
    results = json.loads((copy / "results.json").read_text())
    (copy / "results.json").write_text(json.dumps({**results, "complete": False}))
    with pytest.warns(UserWarning, match="did not finish"):
        ex = xai_core.open_run(copy)
    assert not ex.complete and "did not finish" in ex._repr_html_()
