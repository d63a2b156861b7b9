"""Dataset-scale runs: every kind of bad input, resume after SIGKILL, and torchrun sharding."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from numerics import assert_float32_close
from PIL import Image

from xai_core.io import read_array
from xai_core.runner.config import load_config
from xai_core.runner.ledger import readable
from xai_core.runner.run import run_experiment
from xai_core.store import load_items

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# A small random-weight model keeps these runs quick; the runner is what is under test.
TINY = ["model.name=timm/resnet10t", "model.pretrained=false"]


def _photo(seed: int, size=(48, 40)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def make_bad_folder(root: Path) -> dict[str, bool]:
    """Every awkward case; the value says whether the image should be explained."""
    root.mkdir(parents=True, exist_ok=True)
    expected = {}
    _photo(1).save(root / "good.jpg")
    expected["good"] = True
    _photo(2).convert("L").save(root / "gray.png")
    expected["gray"] = True
    _photo(3).convert("RGBA").save(root / "rgba.png")
    expected["rgba"] = True
    _photo(4).convert("CMYK").save(root / "cmyk.jpg")
    expected["cmyk"] = True
    _photo(5).convert("P").save(root / "palette.png")
    expected["palette"] = True
    deep = (np.random.default_rng(6).integers(0, 65535, (30, 40))).astype(np.uint16)
    Image.fromarray(deep).save(root / "sixteen.png")
    expected["sixteen"] = True
    _photo(7, (2, 2)).save(root / "tiny.png")
    expected["tiny"] = False  # under 8 px a side: upscaled 88x, refused (runner.inputs)
    _photo(8, (2000, 20)).save(root / "wide.png")
    expected["wide"] = False
    (root / "zero.png").write_bytes(b"")
    expected["zero"] = False
    (root / "text.jpg").write_text("not an image at all")
    expected["text"] = False
    good = (root / "good.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(good[: len(good) // 3])
    expected["truncated"] = False
    # A decompression bomb: a tiny file that claims a huge canvas.
    Image.new("1", (30000, 30000)).save(root / "bomb.png")
    expected["bomb"] = False
    return expected


def test_bad_inputs_fail_alone(tmp_path):
    expected = make_bad_folder(tmp_path / "in")
    config = load_config(
        {
            "inputs": [str(tmp_path / "in")],
            "methods": ["saliency"],
            "output_dir": str(tmp_path / "out"),
        },
        TINY + ["workers=0"],
    )
    result = run_experiment(config)
    items = {item["key"]: item for item in result.items}
    assert set(items) == set(expected)
    for key, ok in expected.items():
        if ok:
            assert items[key]["error"] is None, (key, items[key]["error"])
            assert readable(result.output_dir / items[key]["files"]["map"])
        else:
            assert items[key]["error"], key
    assert "aspect ratio" in items["wide"]["error"]
    assert "too large" in items["bomb"]["error"]
    assert "empty file (0 bytes)" in items["zero"]["error"]
    assert result.results["summary"]["failed"] == sum(not ok for ok in expected.values())


def _images(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        _photo(100 + i, (40 + i, 36)).save(folder / f"img{i:02d}.png")


def _xai(*args, env=None, **kwargs):
    return subprocess.Popen(
        [str(BIN / "xai"), *args],
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.mark.slow
def test_sigkill_then_resume_finishes_every_item_exactly_once(tmp_path):
    _images(tmp_path / "in", 24)
    out = tmp_path / "out"
    args = [
        "run",
        "configs/demo.yaml",
        f"inputs=[{tmp_path / 'in'}]",
        "methods=[saliency]",
        "metrics=[]",
        f"output_dir={out}",
        "batch_size=2",
        "workers=0",
        *TINY,
    ]
    process = _xai(*args, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline:
        if (
            len(list((out / "records").rglob("*.json"))) >= 4
            if (out / "records").is_dir()
            else False
        ):
            break
        if process.poll() is not None:
            pytest.fail(f"run ended before it could be killed: {process.communicate()}")
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = len(list((out / "records").rglob("*.json")))
    assert 0 < finished < 24, "the kill must land halfway"

    again = _xai(*args)
    stdout, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr
    assert f"skipped {finished}" in stderr or f"{finished} already done" in stderr

    results = json.loads((out / "results.json").read_text())
    keys = [(item["key"], item["label"]) for item in load_items(out, results)]
    assert len(keys) == len(set(keys)) == 24
    for item in load_items(out, results):
        assert item["error"] is None
        for rel in item["files"].values():
            assert readable(out / rel), rel
    assert not list(out.rglob(".*.tmp"))


def test_force_recomputes_and_corrupt_outputs_are_redone(tmp_path):
    _images(tmp_path / "in", 3)
    base = {
        "inputs": [str(tmp_path / "in")],
        "methods": ["saliency"],
        "output_dir": str(tmp_path / "out"),
    }
    first = run_experiment(load_config(base, TINY + ["workers=0"]))
    assert first.results["summary"]["skipped"] == 0
    victim = first.output_dir / first.items[0]["files"]["map"]
    victim.write_bytes(b"garbage")
    second = run_experiment(load_config(base, TINY + ["workers=0"]))
    assert second.results["summary"]["skipped"] == 2
    assert readable(victim)
    third = run_experiment(load_config(base, TINY + ["workers=0"]), force=True)
    assert third.results["summary"]["skipped"] == 0


def test_imagefolder_labels_become_targets_and_list_files_work(tmp_path):
    for label in ("tabby", "7"):
        (tmp_path / "tree" / label).mkdir(parents=True)
        _photo(hash(label) % 100).save(tmp_path / "tree" / label / "a.png")
    listing = tmp_path / "inputs.txt"
    listing.write_text("# two photos\ntree/tabby/a.png\n\nsample:cat\n")
    config = load_config(
        {
            "inputs": [str(tmp_path / "tree")],
            "methods": ["saliency"],
            "target": "label",
            "output_dir": str(tmp_path / "out"),
        },
        TINY + ["workers=0"],
    )
    items = {item["key"]: item for item in run_experiment(config).items}
    assert items["tabby_a"]["target"] == 281 and items["7_a"]["target"] == 7
    from xai_core.runner.inputs import resolve_inputs

    assert [i.key for i in resolve_inputs([str(listing)])] == ["a", "cat"]


def test_outputs_stay_inside_the_output_dir(tmp_path):
    folder = tmp_path / "in" / ".." / "in"
    (tmp_path / "in").mkdir()
    _photo(1).save(tmp_path / "in" / "..evil name;rm -rf.png")
    config = load_config(
        {
            "inputs": [str(folder)],
            "methods": [{"name": "saliency", "label": "../../escape"}],
            "output_dir": str(tmp_path / "out"),
        },
        TINY + ["workers=0"],
    )
    result = run_experiment(config)
    out = (tmp_path / "out").resolve()
    for item in result.items:
        for rel in item["files"].values():
            assert (out / rel).resolve().is_relative_to(out)
    assert not (tmp_path / "escape.npy").exists()


@pytest.mark.slow
def test_torchrun_two_processes_match_one(tmp_path):
    _images(tmp_path / "in", 6)
    common = [
        "configs/demo.yaml",
        f"inputs=[{tmp_path / 'in'}]",
        "methods=[saliency]",
        "metrics=[]",
        "workers=0",
        "storage.dtype=float32",  # the maps as computed: compared to float32 rounding below
        *TINY,
    ]
    single = _xai("run", *common, f"output_dir={tmp_path / 'one'}")
    assert single.wait(timeout=600) == 0, single.communicate()
    launcher = subprocess.run(
        [
            str(BIN / "torchrun"),
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "xai_core.cli",
            "run",
            *common,
            f"output_dir={tmp_path / 'two'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert launcher.returncode == 0, launcher.stderr[-3000:]

    def items(folder):
        data = json.loads((tmp_path / folder / "results.json").read_text())
        return {(i["key"], i["label"]): i for i in load_items(tmp_path / folder, data)}

    one, two = items("one"), items("two")
    assert one.keys() == two.keys() and len(one) == 6
    for key, item in one.items():
        other = two[key]
        for field in ("target", "predicted", "files", "error"):
            assert item[field] == other[field], (key, field)
        # Two processes batch other images together: the maps agree to float32 rounding
        # through ResNet-10-T (12 layers, 3x3x512 reductions), as in tests/runner/test_compare.py.
        assert_float32_close(
            read_array(tmp_path / "two" / other["files"]["map"]),
            read_array(tmp_path / "one" / item["files"]["map"]),
            depth=12, fan_in=3 * 3 * 512,
        )
    ranks = {i["rank"] for i in two.values()}
    assert ranks == {0, 1}


def test_force_replaces_records_one_at_a_time_and_loses_none(tmp_path, monkeypatch):
    """A --force run that dies midway (here: its third record write fails) leaves every finished
    record of the old run on disk, old or new; the rerun completes. Records were deleted up front
    before, so a kill twenty items into --force over a finished folder lost the other sixty."""
    from xai_core.errors import WriteError
    from xai_core.runner import ledger as ledger_module

    _images(tmp_path / "in", 4)
    base = {"inputs": [str(tmp_path / "in")], "methods": ["saliency"],
            "output_dir": str(tmp_path / "out")}
    first = run_experiment(load_config(base, TINY + ["workers=0", "batch_size=1"]))
    records = sorted((first.output_dir / "records").rglob("*.json"))
    assert len(records) == 4
    before = {path: path.read_bytes() for path in records}
    real_write, calls = ledger_module.Ledger.write, []

    def dying_write(self, *args, **kwargs):
        calls.append(args)
        if len(calls) == 3:
            raise OSError("No space left on device")
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(ledger_module.Ledger, "write", dying_write)
    with pytest.raises(WriteError, match="No space left"):
        run_experiment(load_config(base, TINY + ["workers=0", "batch_size=1"]), force=True)
    monkeypatch.undo()
    after = sorted((first.output_dir / "records").rglob("*.json"))
    assert after == records
    # Two rewritten (same settings, so the same bytes up to digests), the last two untouched.
    assert sum(path.read_bytes() == before[path] for path in after) >= 2
    again = run_experiment(load_config(base, TINY + ["workers=0", "batch_size=1"]))
    assert not again.failures and len(again.items) == 4
