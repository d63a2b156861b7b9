"""Compact storage: float16 maps, inputs once per image, records as the item store, the tidy
table (``results.parquet``, ``xai table``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from numerics import FLOAT16_STORED
from PIL import Image

from xai_core.cli import main
from xai_core.io import PHOTO_SUFFIX, read_array, write_array
from xai_core.runner.config import load_config
from xai_core.runner.inputs import stored_input
from xai_core.runner.run import run_experiment
from xai_core.store import COLUMNS, TABLE, load_items, tidy_rows

TINY = {"model": {"name": "timm/resnet10t", "pretrained": False, "input_size": 32},
        "workers": 0, "figures": False, "batch_size": 4}


def _photos(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        pixels = rng.integers(0, 255, (40, 36, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"p{i:02d}.png")
    return folder


def _config(tmp_path: Path, out: str = "out", n: int = 3, **extra):
    return load_config({
        **TINY, "inputs": [str(_photos(tmp_path / "in", n))], "methods": ["saliency", "grad_cam"],
        "metrics": ["sparseness"], "output_dir": str(tmp_path / out), **extra,
    })


@pytest.mark.parametrize("scale", [1e-9, 1.0, 3e7])
def test_a_float16_array_keeps_2_to_the_minus_11_of_its_largest_magnitude(tmp_path, scale):
    rng = np.random.default_rng(1)
    values = (rng.standard_normal((24, 20)) * scale).astype(np.float32)
    write_array(tmp_path / "a.npz", values)
    back = read_array(tmp_path / "a.npz")
    assert back.dtype == np.float32 and back.shape == values.shape
    error = np.abs(back - values).max()
    assert 0 < error <= FLOAT16_STORED * np.abs(values).max()
    # Readable with numpy alone (as write_array's docstring and docs/run-folder.md say).
    with np.load(tmp_path / "a.npz") as archive:
        assert archive["planes"].dtype == np.uint8 and archive["planes"].shape == (2, 24, 20)
        assert str(archive["dtype"]) == "float16"
        alone = np.ascontiguousarray(np.moveaxis(archive["planes"], 0, -1)).view("<f2")[..., 0]
        assert np.array_equal(alone * archive["scale"], back)


def test_byte_planes_deflate_a_smooth_map_better_and_old_npz_files_still_read(tmp_path):
    # A CAM-like map: smooth, so its sign and exponent bytes repeat across neighbours.
    y, x = np.mgrid[0:224, 0:224] / 224.0
    smooth = (np.exp(-((x - 0.4) ** 2 + (y - 0.6) ** 2) * 8)).astype(np.float32)
    write_array(tmp_path / "planes.npz", smooth)
    # The layout of runs before byte planes: the scaled float16 values as one member.
    scaled = (smooth / np.float32(1.0)).astype(np.float16)
    np.savez_compressed(tmp_path / "old.npz", scaled=scaled, scale=np.float32(1.0))
    assert (tmp_path / "planes.npz").stat().st_size < 0.8 * (tmp_path / "old.npz").stat().st_size
    assert np.array_equal(read_array(tmp_path / "old.npz"), read_array(tmp_path / "planes.npz"))


def test_a_float32_array_is_kept_exactly_and_non_finite_values_survive(tmp_path):
    values = np.array([[1.5e-30, -2.0, np.nan], [np.inf, 0.0, 7e30]], dtype=np.float32)
    write_array(tmp_path / "a.npz", values, "float32")
    assert np.array_equal(read_array(tmp_path / "a.npz"), values, equal_nan=True)
    write_array(tmp_path / "b.npz", values)
    back = read_array(tmp_path / "b.npz")
    assert np.isnan(back[0, 2]) and np.isinf(back[1, 0]) and back[1, 2] == pytest.approx(7e30, 1e-3)
    with pytest.raises(ValueError, match="float16, float32"):
        write_array(tmp_path / "c.npz", values, "int8")


def test_a_photo_is_lossless_webp_and_the_png_of_an_older_run_is_still_found(tmp_path):
    from xai_core.io import PHOTO_SUFFIXES, WEBP, photo_beside, write_photo

    pixels = np.random.default_rng(2).integers(0, 256, (3, 20, 24)).astype(np.float32) / 255
    new = tmp_path / "new" / f"a{PHOTO_SUFFIX}"
    write_photo(new, pixels)
    with Image.open(new) as photo:
        assert photo.format == ("WEBP" if WEBP else "PNG")
        assert np.array_equal(np.asarray(photo.convert("RGB")), np.rint(pixels * 255).transpose(
            1, 2, 0).astype(np.uint8))
    assert photo_beside(tmp_path / "new" / "a.npz") == new
    old = tmp_path / "old" / "a.png"
    write_photo(old, pixels)  # a run before WebP kept PNG photos
    assert photo_beside(tmp_path / "old" / "a.npz") == old == photo_beside(old)
    assert ".png" in PHOTO_SUFFIXES


def test_storage_dtype_is_checked_before_anything_runs(tmp_path):
    from xai_core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"storage.dtype.*'float16', 'float32'"):
        _config(tmp_path, storage={"dtype": "bfloat16"})


def test_a_run_stores_float16_maps_within_precision_of_float32_and_photos_once(tmp_path):
    half = run_experiment(_config(tmp_path, "half"))
    full = run_experiment(_config(tmp_path, "full", storage={"dtype": "float32"}))
    assert not half.failures and not full.failures
    for a, b in zip(half.items, full.items):
        assert a["files"]["map"].endswith(".npz")
        stored = read_array(half.output_dir / a["files"]["map"])
        exact = read_array(full.output_dir / b["files"]["map"])
        assert np.abs(stored - exact).max() <= FLOAT16_STORED * np.abs(exact).max()
    # An RGB photo's input is its lossless photo alone: normalized, the tensor the maps were
    # computed on.
    out = half.output_dir
    names = [f"p0{k}{PHOTO_SUFFIX}" for k in range(3)]
    assert sorted(p.name for p in (out / "inputs").iterdir()) == names
    assert {i["files"]["input"] for i in half.items} == {f"inputs/{n}" for n in names}
    from xai_core import load_model

    handle = load_model("timm/resnet10t", pretrained=False).preprocessing.at_size(32)
    with Image.open(tmp_path / "in" / "p01.png") as photo:
        expected = handle(photo.convert("RGB"))
    assert torch.equal(stored_input(out / f"inputs/p01{PHOTO_SUFFIX}", handle), expected)
    # A saliency map is noise at float16 (about 2 bytes a pixel); a CAM compresses further.
    sizes = {i["label"]: (out / i["files"]["map"]).stat().st_size for i in half.items}
    assert sizes["grad_cam"] < sizes["saliency"] < 32 * 32 * 2 + 600


def test_results_json_indexes_the_records_and_the_table_has_a_row_per_item(tmp_path):
    result = run_experiment(_config(tmp_path))
    out = result.output_dir
    results = json.loads((out / "results.json").read_text())
    assert "items" not in results and results["summary"]["items"] == 6
    (entry,) = results["index"]
    assert entry == {"records": "records", "keys": ["p00", "p01", "p02"],
                     "labels": ["saliency", "grad_cam"], "run_labels": []}
    assert load_items(out) == result.items
    pandas = pytest.importorskip("pandas")
    frame = pandas.read_parquet(out / TABLE)
    assert results["table"] == TABLE and len(frame) == 6
    assert list(frame.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert {"metric_sparseness", "map_file", "input_file"} <= set(frame.columns)
    assert list(frame["method"]) == ["saliency", "grad_cam"] * 3
    assert (frame["predicted"] == frame["target"]).all() and frame["seconds"].gt(0).all()
    first = result.items[0]
    assert frame["metric_sparseness"][0] == pytest.approx(first["metrics"]["sparseness"])


def test_xai_table_prints_markdown_and_exports_csv_and_parquet(tmp_path, capsys):
    out = run_experiment(_config(tmp_path, n=2)).output_dir
    assert main(["table", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| model | image | key |") and len(lines) == 2 + 4
    assert main(["table", str(out), "--format", "csv", "-o", str(tmp_path / "t.csv")]) == 0
    pandas = pytest.importorskip("pandas")
    csv = pandas.read_csv(tmp_path / "t.csv")
    assert list(csv["key"]) == ["p00", "p00", "p01", "p01"]
    assert main(["table", str(out), "--format", "parquet", "-o", str(tmp_path / "t.parquet")]) == 0
    parquet = pandas.read_parquet(tmp_path / "t.parquet")
    assert list(parquet["metric_sparseness"]) == pytest.approx(list(csv["metric_sparseness"]))
    assert main(["table", str(out), "--format", "parquet"]) == 2
    assert "--output" in capsys.readouterr().err
    assert main(["table", str(tmp_path / "nothing")]) == 2
    assert "holds no results.json" in capsys.readouterr().err


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


def test_resuming_a_finished_run_rewrites_no_record_and_not_the_table(tmp_path):
    config = _config(tmp_path, n=4)
    run_experiment(config)
    out = Path(config.output_dir)
    before = _snapshot(out)
    again = run_experiment(config)
    assert again.results["summary"]["skipped"] == 8
    after = _snapshot(out)
    rewritten = sorted(rel for rel, stamp in after.items() if before.get(rel) != stamp)
    assert not [rel for rel in rewritten if rel.startswith(("records", "maps", "inputs"))]
    assert TABLE not in rewritten
    # What is rewritten is the summary and the report, whose size does not grow with the items
    # (results.json's index: a key per image).
    assert "results.json" in rewritten
    assert (out / "results.json").stat().st_size < 20_000


def test_one_new_image_writes_its_records_only(tmp_path):
    config = _config(tmp_path, n=3)
    run_experiment(config)
    out = Path(config.output_dir)
    before = _snapshot(out)
    _photos(tmp_path / "in", 4)  # the same three photos and one more
    again = run_experiment(config)
    assert again.results["summary"]["skipped"] == 6 and len(again.items) == 8
    after = _snapshot(out)
    records = sorted(r for r, s in after.items() if r.startswith("records") and before.get(r) != s)
    assert records == ["records/p03/grad_cam.json", "records/p03/saliency.json"]
    assert len(load_items(out)) == 8


def test_tidy_rows_give_every_row_every_column_and_one_type_per_column(tmp_path):
    items = [
        {"model": "m", "image": "a.png", "key": "a", "label": "s", "method": "saliency",
         "kind": "attributor", "target": 3, "metrics": {"x": 0.5},
         "files": {"map": "maps/a/s.npz"}},
        {"model": "m", "image": "b.png", "key": "b", "label": "s", "method": "saliency",
         "kind": "attributor", "target": [3, 5], "error": "boom", "files": {}},
    ]
    rows = tidy_rows(items)
    assert rows[0].keys() == rows[1].keys()
    assert rows[1]["target"] == "[3, 5]" and rows[1]["metric_x"] is None
    assert rows[1]["map_file"] is None and rows[1]["error"] == "boom"
    pytest.importorskip("pyarrow")
    from xai_core.store import write_table

    assert write_table(tmp_path, rows)
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / TABLE)
    assert table.column("target").to_pylist() == ["3", "[3, 5]"]
    # Written once: the same rows again leave the file alone.
    stamp = os.stat(tmp_path / TABLE).st_mtime_ns
    assert write_table(tmp_path, rows) and os.stat(tmp_path / TABLE).st_mtime_ns == stamp
