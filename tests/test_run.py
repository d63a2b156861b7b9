"""End-to-end runs: the demo config on the real offline model, outputs and atomic writes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from xai_core.io import atomic_open, write_json
from xai_core.runner.config import load_config
from xai_core.runner.inputs import load_image, resolve_inputs, sample_path
from xai_core.runner.run import run_experiment


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    config = load_config(
        "configs/demo.yaml", [f"output_dir={out}", "inputs=[sample:cat,sample:coffee]"]
    )
    config.methods = [m for m in config.methods if m.name == "saliency"]
    return run_experiment(config)


def test_demo_run_writes_every_output(demo_run):
    out = demo_run.output_dir
    results = json.loads((out / "results.json").read_text())
    assert results["complete"] and results["summary"]["failed"] == 0
    assert results["environment"]["torch"] == torch.__version__
    items = {(i["key"], i["label"]): i for i in results["items"]}
    cat = items[("cat", "saliency")]
    assert cat["predicted_label"] == "tiger cat" and cat["target"] == cat["predicted"] == 282
    assert 0 < cat["predicted_probability"] <= 1 and cat["seconds"] > 0
    assert cat["model"] == "efficientnet_lite0" and cat["error"] is None
    saliency = np.load(out / cat["files"]["map"])
    assert saliency.dtype == np.float32 and saliency.shape == (224, 224) and saliency.min() >= 0
    inputs = np.load(out / cat["files"]["input"])
    assert inputs.shape == (3, 224, 224) and inputs.dtype == np.float32
    from xai_core import load_model

    lite0 = load_model("efficientnet_lite0")
    # The saved input is exactly the model's own preprocessing of the photo.
    expected = lite0.preprocessing(load_image(sample_path("cat"))).numpy()
    np.testing.assert_allclose(inputs, expected, atol=1e-6)
    assert (out / cat["files"]["figure"]).is_file()
    assert (out / "figures" / "grid.png").is_file()
    assert (out / "config.yaml").read_text().count("saliency") >= 1
    assert not list(out.rglob("*.tmp")), "no temporary files left behind"


def test_saved_map_is_the_map_of_the_saved_input(demo_run, lite0):
    import xai_core

    out = demo_run.output_dir
    item = next(i for i in demo_run.items if i["key"] == "coffee" and i["label"] == "saliency")
    x = torch.from_numpy(np.load(out / item["files"]["input"]))[None]
    again = xai_core.get_attributor("saliency").attribute(lite0, x, item["target"]).maps[0]
    np.testing.assert_allclose(np.load(out / item["files"]["map"]), again.numpy(), atol=1e-6)


def test_atomic_writes_keep_the_old_file_on_failure(tmp_path):
    path = tmp_path / "results.json"
    write_json(path, {"ok": True})
    with pytest.raises(RuntimeError):
        with atomic_open(path, "w") as handle:
            handle.write('{"half": ')
            raise RuntimeError("crash mid-write")
    assert json.loads(path.read_text()) == {"ok": True}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_inputs_folders_globs_and_key_collisions(tmp_path):
    from PIL import Image

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        Image.new("RGB", (8, 8)).save(tmp_path / folder / "x y.png")
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    from_folder = resolve_inputs([str(tmp_path)])
    assert [i.key for i in from_folder] == ["a_x_y", "b_x_y"]
    from_glob = resolve_inputs([str(tmp_path / "*" / "*.png")])
    assert [i.key for i in from_glob] == ["x_y", "x_y-2"]


def test_grayscale_and_rgba_images_become_rgb(tmp_path):
    from PIL import Image

    Image.new("L", (5, 5), 7).save(tmp_path / "gray.png")
    Image.new("RGBA", (5, 5), (10, 20, 30, 0)).save(tmp_path / "clear.png")
    assert load_image(tmp_path / "gray.png").getpixel((0, 0)) == (7, 7, 7)
    assert load_image(tmp_path / "clear.png").getpixel((0, 0)) == (255, 255, 255)
    assert load_image(sample_path("camera")).mode == "RGB"
