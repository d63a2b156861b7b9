"""Ground-truth masks in ``xai run`` (``masks:``, :mod:`xai_core.runner.masks`): the geometry a
mask shares with its image, binary and label files, finding each input's mask, config errors,
and runs whose localisation metrics score against the masks (one bad mask fails its items only).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from xai_core.contracts.model import Preprocessing
from xai_core.errors import ConfigError, MaskError
from xai_core.runner.config import load_config
from xai_core.runner.inputs import resolve_inputs
from xai_core.runner.masks import MaskSet, read_mask
from xai_core.runner.run import run_experiment

ROOT = Path(__file__).resolve().parents[2]


def _square_photo(folder: Path, name: str, size=(90, 60), box=(52, 14, 75, 41)) -> Path:
    """A grey photo of ``size`` (width, height) with a red square ``box``, and its mask."""
    folder.mkdir(parents=True, exist_ok=True)
    pixels = np.full((size[1], size[0], 3), 128, np.uint8)
    left, top, right, bottom = box
    pixels[top:bottom, left:right] = (255, 0, 0)
    Image.fromarray(pixels).save(folder / f"{name}.png")
    mask = np.zeros((size[1], size[0]), np.uint8)
    mask[top:bottom, left:right] = 255
    (folder / "masks").mkdir(exist_ok=True)
    Image.fromarray(mask).save(folder / "masks" / f"{name}.png")
    return folder / f"{name}.png"


@pytest.mark.parametrize("preprocessing", [
    Preprocessing(input_size=(32, 32), resize_size=40),
    Preprocessing(input_size=(24, 40), resize_size=44),  # a non-square crop
    Preprocessing(input_size=(48, 48), resize_size=48, interpolation="bicubic"),
])
def test_a_mask_lands_on_its_object_after_resize_and_crop(tmp_path, preprocessing):
    photo = _square_photo(tmp_path, "square")
    (source,) = resolve_inputs([str(photo)])
    mask = MaskSet(tmp_path / "masks").for_image(source, preprocessing)
    assert mask.dtype == torch.bool and tuple(mask.shape) == preprocessing.input_size
    pixels = preprocessing.to_pixels(Image.open(photo).convert("RGB"))
    red = (pixels[0] - pixels[1]) > 0.5  # the square, as the model sees it
    # The crop cut the square (it sits right of centre), so the geometry matters; the mask and
    # the interpolated square agree up to the square's blurred one-pixel edge.
    assert 0 < mask.float().mean() < 0.5
    assert (mask & red).sum() / (mask | red).sum() > 0.8
    rows, cols = torch.nonzero(mask, as_tuple=True)
    red_rows, red_cols = torch.nonzero(red, as_tuple=True)
    assert abs(rows.float().mean() - red_rows.float().mean()) < 0.6
    assert abs(cols.float().mean() - red_cols.float().mean()) < 0.6


def _save(array: np.ndarray, path: Path, mode: str | None = None) -> Path:
    Image.fromarray(array, mode).save(path)
    return path


def test_binary_masks_in_every_mode(tmp_path):
    square = np.zeros((6, 8), np.uint8)
    square[1:4, 2:6] = 200
    expected = square > 0
    grey = _save(square, tmp_path / "grey.png")
    assert (read_mask(grey) == expected).all()
    one = tmp_path / "one.png"
    Image.fromarray(expected).convert("1").save(one)
    assert Image.open(one).mode == "1" and (read_mask(one) == expected).all()
    colour = np.zeros((6, 8, 3), np.uint8)
    colour[1:4, 2:6] = (0, 0, 255)  # blue on black: any non-black colour is the object
    assert (read_mask(_save(colour, tmp_path / "rgb.png")) == expected).all()
    # A cut-out: the object is what is not transparent, whatever the colour under it.
    cutout = np.full((6, 8, 4), 255, np.uint8)
    cutout[..., 3] = np.where(expected, 255, 0)
    assert (read_mask(_save(cutout, tmp_path / "cutout.png", "RGBA")) == expected).all()
    opaque = np.zeros((6, 8, 4), np.uint8)
    opaque[..., 3] = 255
    opaque[1:4, 2:6, :3] = 255
    assert (read_mask(_save(opaque, tmp_path / "opaque.png", "RGBA")) == expected).all()
    # Labels pick classes in palette PNGs only; a binary mask ignores them.
    assert (read_mask(grey, [8]) == expected).all()
    with pytest.raises(MaskError, match="all background"):
        read_mask(_save(np.zeros((6, 8), np.uint8), tmp_path / "empty.png"))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(MaskError, match="broken.png.*not an image"):
        read_mask(tmp_path / "broken.png")


def _label_png(path: Path) -> Path:
    """A VOC-style label PNG: a cat (8) with a void border (255) beside a dog (12)."""
    labels = np.zeros((10, 12), np.uint8)
    labels[1:7, 1:7] = 255
    labels[2:6, 2:6] = 8
    labels[6:9, 8:11] = 12
    image = Image.fromarray(labels, "P")
    image.putpalette([v for i in range(256) for v in (i, 255 - i, i // 2)])
    image.save(path)
    return path


def test_label_pngs_pick_classes_and_void_is_background(tmp_path):
    path = _label_png(tmp_path / "voc.png")
    assert Image.open(path).mode == "P"
    cat = read_mask(path, [8])
    assert cat.sum() == 16 and cat[2:6, 2:6].all()  # the void border is not the object
    assert read_mask(path, [8, 12]).sum() == 16 + 9
    assert read_mask(path, [8, 255]).sum() == 36  # unless it is asked for
    with pytest.raises(MaskError, match=r"values 0, 8, 12, 255; set `masks.labels`"):
        read_mask(path)
    with pytest.raises(MaskError, match=r"no pixel of labels \[15\].*values 0, 8, 12, 255"):
        read_mask(path, [15])


def test_finding_masks_by_stem_class_folder_and_mapping(tmp_path):
    for label in ("tabby", "espresso"):
        (tmp_path / "data" / label).mkdir(parents=True)
        Image.new("RGB", (20, 10)).save(tmp_path / "data" / label / "a.jpg")
    (tmp_path / "masks" / "tabby").mkdir(parents=True)
    for where in ("masks/tabby/a.png", "masks/a.png", "elsewhere.png"):
        _save(np.full((10, 20), 255, np.uint8), tmp_path / where)
    by_label = {im.label: im for im in resolve_inputs([str(tmp_path / "data")])}
    masks = MaskSet(tmp_path / "masks")
    assert masks.path(by_label["tabby"]) == tmp_path / "masks" / "tabby" / "a.png"
    assert masks.path(by_label["espresso"]) == tmp_path / "masks" / "a.png"
    # An explicit mapping wins, and a key is any path of the same file.
    key = str(tmp_path / "data" / "tabby" / ".." / "tabby" / "a.jpg")
    mapped = MaskSet(tmp_path / "masks", {key: tmp_path / "elsewhere.png"})
    assert mapped.path(by_label["tabby"]) == tmp_path / "elsewhere.png"
    (cat,) = resolve_inputs(["sample:cat"])
    assert MaskSet(files={"sample:cat": "example:masks/cat.png"}).path(cat).is_file()
    with pytest.raises(MaskError) as missing:
        MaskSet(tmp_path / "masks", {"sample:cta": "x.png"}).path(cat)
    text = str(missing.value)
    assert "no ground-truth mask for input 'sample:cat'" in text
    assert str(tmp_path / "masks" / "cat.png") in text and "'sample:cta'" in text


def test_size_mismatch_empty_crop_and_digest(tmp_path):
    photo = _square_photo(tmp_path, "square")
    (source,) = resolve_inputs([str(photo)])
    masks = MaskSet(tmp_path / "masks")
    before = masks.digest(source)
    assert before is not None and len(before) == 64
    _save(np.full((30, 45), 255, np.uint8), tmp_path / "masks" / "square.png")
    assert masks.digest(source) != before
    with pytest.raises(MaskError, match=r"is 45x30 pixels but its image .* is 90x60"):
        masks.for_image(source, Preprocessing(input_size=(32, 32), resize_size=40))
    # An object in the margin that the centre crop cuts away cannot be scored.
    edge = np.zeros((60, 90), np.uint8)
    edge[:, :5] = 255
    _save(edge, tmp_path / "masks" / "square.png")
    with pytest.raises(MaskError, match="outside the model's centre crop"):
        masks.for_image(source, Preprocessing(input_size=(32, 32), resize_size=40))
    (tmp_path / "masks" / "square.png").unlink()
    assert masks.digest(source) is None


BASE = {"inputs": ["sample:cat"], "methods": ["saliency"]}


def test_config_shorthands_and_errors_before_any_model_loads(tmp_path):
    config = load_config({**BASE, "masks": "example:masks"}, ["masks.labels=8"])
    assert (config.masks.folder, config.masks.files, config.masks.labels) == (
        "example:masks", {}, [8])
    assert MaskSet.from_config(load_config(BASE).masks) is None
    assert MaskSet.from_config(config.masks).folder == ROOT / "configs" / "masks"
    with pytest.raises(ConfigError, match=r"'masks.fodler'; did you mean 'folder'\? Valid keys: "
                                          r"folder, files, labels"):
        load_config({**BASE, "masks": {"fodler": "x"}})
    with pytest.raises(ConfigError, match=r"'masks.folder': '.*nowhere' does not exist"):
        load_config({**BASE, "masks": str(tmp_path / "nowhere")})
    with pytest.raises(ConfigError, match=r"masks.files.*'sample:cat': '.*gone.png'"):
        load_config({**BASE, "masks": {"files": {"sample:cat": str(tmp_path / "gone.png")}}})
    with pytest.raises(ConfigError, match=r"masks.labels\[1\]': 256 is not a palette index"):
        load_config({**BASE, "masks": {"folder": str(tmp_path), "labels": [8, 256]}})


def test_shipped_masks_fit_their_photos():
    masks = MaskSet("example:masks", labels=[8])
    for source in resolve_inputs(["sample:cat", "sample:coffee"]):
        mask = masks.for_image(source, Preprocessing())
        assert 0.2 < mask.float().mean() < 0.98
    assert Image.open(ROOT / "configs" / "masks" / "cat.png").mode == "P"
    assert Image.open(ROOT / "configs" / "masks" / "coffee.png").mode == "1"


def _tiny_run(tmp_path: Path, masks, inputs, metrics=("pointing_game", "relevance_mass")):
    config = load_config({
        "model": {"name": "timm/resnet10t", "pretrained": False, "input_size": 48},
        "inputs": inputs,
        "masks": masks,
        "methods": ["saliency", "grad_cam"],
        "metrics": list(metrics),
        "output_dir": str(tmp_path / "out"),
        "workers": 0,
        "figures": False,
    })
    return run_experiment(config)


def test_run_scores_photos_against_masks_and_a_bad_mask_fails_only_its_items(tmp_path):
    lost = _square_photo(tmp_path / "lost", "lost")  # no mask where the config looks
    odd = _square_photo(tmp_path / "odd", "odd")
    _save(np.full((10, 10), 255, np.uint8), tmp_path / "odd" / "small.png")
    small = str(tmp_path / "odd" / "small.png")
    result = _tiny_run(
        tmp_path,
        {"folder": "example:masks", "labels": [8], "files": {str(odd): small}},
        ["sample:cat", "sample:coffee", str(lost), str(odd)],
    )
    by = {(item["key"], item["label"]): item for item in result.items}
    assert len(by) == 8 and result.results["complete"]
    for key in ("cat", "coffee"):
        for label in ("saliency", "grad_cam"):
            item = by[(key, label)]
            assert item["error"] is None and not item.get("metric_errors")
            scores = item["metrics"]
            assert 0 <= scores["pointing_game"] <= 1 and math.isfinite(scores["pointing_game"])
            assert 0 < scores["relevance_mass"] < 1
    for label in ("saliency", "grad_cam"):
        missing = by[("lost", label)]
        assert "MaskError: no ground-truth mask for input" in missing["error"]
        assert str(ROOT / "configs" / "masks" / "lost.png") in missing["error"]
        assert not missing["files"] and not missing.get("metrics")
        mismatch = by[("odd", label)]
        assert "is 10x10 pixels but its image" in mismatch["error"] and "90x60" in mismatch["error"]
    assert result.results["summary"]["failed"] == 4


def test_without_masks_the_metric_error_names_the_config_key(tmp_path):
    result = _tiny_run(tmp_path, None, ["sample:cat"], metrics=("pointing_game",))
    item = result.items[0]
    assert item["error"] is None and item["metrics"]["pointing_game"] is None
    assert "set `masks:` in the config" in item["metric_errors"]["pointing_game"]
    assert "docs/masks.md" in item["metric_errors"]["pointing_game"]
