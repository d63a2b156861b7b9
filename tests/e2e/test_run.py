"""End-to-end runs: the demo config on the real offline model, outputs and atomic writes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from numerics import assert_stored_close

from xai_core.io import PHOTO_SUFFIX, atomic_open, read_array, write_json
from xai_core.runner.config import load_config
from xai_core.runner.inputs import load_image, resolve_inputs, sample_path, stored_input
from xai_core.runner.run import run_experiment
from xai_core.store import load_items


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    config = load_config(
        "configs/demo.yaml",
        [f"output_dir={out}", "inputs=[sample:cat,sample:coffee]", "figures=true"],
    )
    config.methods = [m for m in config.methods if m.name == "saliency"]
    return run_experiment(config)


def test_demo_run_writes_every_output(demo_run):
    out = demo_run.output_dir
    results = json.loads((out / "results.json").read_text())
    assert results["complete"] and results["summary"]["failed"] == 0
    assert results["environment"]["torch"] == torch.__version__
    items = {(i["key"], i["label"]): i for i in load_items(out, results)}
    cat = items[("cat", "saliency")]
    assert cat["predicted_label"] == "tiger cat" and cat["target"] == cat["predicted"] == 282
    assert 0 < cat["predicted_probability"] <= 1 and cat["seconds"] > 0
    assert cat["model"] == "efficientnet_lite0" and cat["error"] is None
    saliency = read_array(out / cat["files"]["map"])
    assert saliency.dtype == np.float32 and saliency.shape == (224, 224) and saliency.min() >= 0
    from xai_core import load_model

    lite0 = load_model("efficientnet_lite0")
    # A photo's input is stored once, as its lossless 8-bit photo: normalized, it is bit for
    # bit the model's own preprocessing of the photo (no float array is kept beside it).
    assert cat["files"]["input"] == f"inputs/cat{PHOTO_SUFFIX}"
    assert not (out / "inputs/cat.npz").exists()
    inputs = stored_input(out / cat["files"]["input"], lite0.preprocessing)
    assert inputs.shape == (3, 224, 224) and inputs.dtype == torch.float32
    expected = lite0.preprocessing(load_image(sample_path("cat")))
    assert torch.equal(inputs, expected)
    assert (out / cat["files"]["figure"]).is_file()
    assert (out / "figures" / "grid.png").is_file()
    assert (out / "config.yaml").read_text().count("saliency") >= 1
    assert not list(out.rglob("*.tmp")), "no temporary files left behind"


def test_saved_map_is_the_map_of_the_saved_input(demo_run, lite0):
    import xai_core

    out = demo_run.output_dir
    item = next(i for i in demo_run.items if i["key"] == "coffee" and i["label"] == "saliency")
    x = stored_input(out / item["files"]["input"], lite0.preprocessing)[None]
    again = xai_core.get_attributor("saliency").attribute(lite0, x, item["target"]).maps[0]
    # The run batched it with other photos (Lite0's backward chain rounds otherwise) and stored
    # it as float16 (the default `storage`).
    assert_stored_close(read_array(out / item["files"]["map"]), again.numpy(), depth=50,
                        fan_in=1280)


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


def test_inputs_smaller_than_the_minimum_fail_their_item_with_a_message(tmp_path):
    from PIL import Image

    from xai_core.runner.inputs import MIN_IMAGE_SIDE

    assert MIN_IMAGE_SIDE == 8
    Image.new("RGB", (1, 1), (200, 10, 10)).save(tmp_path / "dot.png")
    Image.new("RGB", (40, 7), (10, 200, 10)).save(tmp_path / "strip.png")
    Image.new("RGB", (8, 8), (10, 10, 200)).save(tmp_path / "small.png")
    config = load_config({
        "model": {"name": "timm/resnet10t", "pretrained": False, "input_size": 32},
        "inputs": [str(tmp_path / n) for n in ("dot.png", "strip.png", "small.png")],
        "methods": ["saliency"], "output_dir": str(tmp_path / "out"), "workers": 0,
        "figures": False,
    })
    items = {item["key"]: item for item in run_experiment(config).items}
    assert "image of 1x1 pixels is smaller than 8 pixels" in items["dot"]["error"]
    assert "would upscale it 32x to 32x32" in items["dot"]["error"]
    assert "image of 40x7 pixels is smaller than 8 pixels" in items["strip"]["error"]
    assert items["small"]["error"] is None


def _tiny_target_run(tmp_path, target, methods=("saliency",), out="out"):
    """Two random photos through a random-weight timm ResNet at 48 pixels."""
    from PIL import Image

    folder = tmp_path / "in"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (40, 44, 3), dtype=np.uint8)).save(
            folder / f"img{i}.png"
        )
    config = load_config({
        "model": {"name": "timm/resnet10t", "pretrained": False, "input_size": 48},
        "inputs": [str(folder)],
        "methods": list(methods),
        "target": target,
        "output_dir": str(tmp_path / out),
        "workers": 0,
        "figures": False,
    })
    return run_experiment(config)


def test_top_k_target_gives_k_items_per_image_and_method(tmp_path):
    result = _tiny_target_run(tmp_path, "top-3", methods=("saliency", "grad_cam"))
    assert result.results["summary"]["failed"] == 0
    items = [i for i in result.items if i["key"] == "img0" and i["label"] == "grad_cam"]
    assert [i["target_rank"] for i in items] == [1, 2, 3]
    top5 = items[0]["top5"]
    assert len(top5) == 5 and set(top5[0]) == {"class", "label", "probability"}
    assert [i["target"] for i in items] == [t["class"] for t in top5[:3]]
    assert items[0]["target"] == items[0]["predicted"]
    probabilities = [i["target_probability"] for i in items]
    assert probabilities == sorted(probabilities, reverse=True)
    assert probabilities == pytest.approx([t["probability"] for t in top5[:3]])
    files = [i["files"]["map"] for i in items]
    assert len(set(files)) == 3
    for item in items:
        name = f"{item['target_rank']}_{item['target_label'].replace(' ', '_')}"
        assert item["files"]["map"].endswith(f"maps/img0/grad_cam.{name}.npz")
    saliency = [i for i in result.items if i["key"] == "img1" and i["label"] == "saliency"]
    assert len(saliency) == 3 and len({i["files"]["map"] for i in saliency}) == 3
    # Each map is the map of its own target: the same call on the saved input, that target alone.
    import xai_core
    from xai_core.runner.environment import seed_everything

    seed_everything(0)  # the run's seed: the same random weights
    handle = xai_core.load_model("timm/resnet10t", pretrained=False)
    out = result.output_dir
    x = stored_input(out / saliency[2]["files"]["input"], handle.preprocessing)[None]
    alone = xai_core.get_attributor("saliency").attribute(handle, x, saliency[2]["target"]).maps[0]
    # Batched with its other targets in the run: within ResNet-10-T's float32 bound, and
    # float16's rounding of the stored map.
    assert_stored_close(read_array(out / saliency[2]["files"]["map"]), alone.numpy(), depth=12,
                        fan_in=3 * 3 * 512)


def test_a_list_target_explains_every_image_for_each_entry(tmp_path):
    result = _tiny_target_run(tmp_path, ["predicted", "goldfish", 7])
    assert result.results["summary"]["failed"] == 0
    for key in ("img0", "img1"):
        items = [i for i in result.items if i["key"] == key]
        assert [i["target_rank"] for i in items] == [1, 2, 3]
        assert items[0]["target"] == items[0]["predicted"]
        assert [i["target"] for i in items[1:]] == [1, 7]
        assert [i["target_label"] for i in items[1:]] == ["goldfish", "cock"]
        maps = [read_array(result.output_dir / i["files"]["map"]) for i in items]
        assert not np.allclose(maps[1], maps[2])  # different classes, different maps


def test_a_single_target_keeps_its_file_names(tmp_path):
    result = _tiny_target_run(tmp_path, "lighthouse")
    item = next(i for i in result.items if i["key"] == "img0")
    assert (item["target"], item["target_label"]) == (437, "beacon")
    assert item["files"]["map"].endswith("maps/img0/saliency.npz")
    assert item["target_rank"] == 1 and len(item["top5"]) == 5


def test_a_misspelt_target_fails_the_run_naming_close_matches(tmp_path):
    from xai_core.errors import XaiError

    # At config time for ImageNet models (ConfigError), else when the model has loaded.
    with pytest.raises(XaiError, match="did you mean 'lighthouse'"):
        _tiny_target_run(tmp_path, ["predicted", "lighthose"])
