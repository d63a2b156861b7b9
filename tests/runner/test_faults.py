"""Faults around a run: a second run on the same folder, non-finite numbers, a crash in the
last stage, file modes, empty inputs. Each fails loudly and locally, never as a wrong result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xai_core.cli import main
from xai_core.errors import ConfigError
from xai_core.io import FILE_MODE, write_json
from xai_core.runner import run as run_module
from xai_core.runner.config import load_config
from xai_core.runner.ledger import remove_stale_temporaries
from xai_core.runner.lock import OutputLock
from xai_core.runner.run import run_experiment
from xai_core.runner.verify import strict_json, verify_run
from xai_core.store import load_items

TINY = ["model.name=timm/resnet10t", "model.pretrained=false", "workers=0", "figures=false"]


def _config(inputs: list[Path], out: Path, methods=("saliency",), *extra: str):
    return load_config(
        {"inputs": [str(p) for p in inputs], "methods": list(methods), "output_dir": str(out)},
        TINY + list(extra),
    )


def _photo(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (32, 36, 3), dtype=np.uint8)).save(path)
    return path


HOLDER = textwrap.dedent(
    """
    import sys, time
    from xai_core.runner.lock import OutputLock
    lock = OutputLock(sys.argv[1]).acquire()
    print("locked", flush=True)
    time.sleep(120)
    """
)


def test_second_run_on_a_folder_in_use_stops_at_once(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    pending = out / "maps" / ".x.npy.abc.tmp"  # the first run's file, about to be renamed
    pending.parent.mkdir()
    pending.write_bytes(b"half")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        config = _config([_photo(tmp_path / "a.png")], out)
        with pytest.raises(ConfigError, match=rf"in use by PID {holder.pid} since .*wait for it"):
            run_experiment(config)
        status = main([
            "explain", str(tmp_path / "a.png"), "-m", "saliency", "--out", str(out),
            "--model", "timm/resnet10t", "--set", "model.pretrained=false",
        ])
        assert status == 2
        err = capsys.readouterr().err
        assert f"is in use by PID {holder.pid}" in err and "Traceback" not in err
        assert pending.read_bytes() == b"half"
        assert not (out / "records").exists()
    finally:
        holder.kill()
        holder.wait()
    # The OS released the killed holder's lock: the folder is usable again.
    result = run_experiment(_config([tmp_path / "a.png"], out))
    assert result.results["complete"] is True
    assert not pending.exists()


def test_stale_temporaries_are_removed_only_under_the_lock(tmp_path):
    lock = OutputLock(tmp_path)
    with pytest.raises(RuntimeError, match="lock"):
        remove_stale_temporaries(tmp_path, lock)


def test_json_is_strict_and_says_what_was_not_finite(tmp_path):
    path = tmp_path / "x.json"
    write_json(path, {"gap": float("nan"), "gaps": [1.0, float("inf")], "n": np.float32(2)})
    data = strict_json(path.read_text())
    assert data["gap"] is None and data["gap_note"].startswith("nan")
    assert data["gaps"] == [1.0, None] and data["gaps_note"].startswith("inf")
    assert data["n"] == 2.0


def test_integrated_gradients_on_a_black_image_writes_strict_json(tmp_path):
    black = tmp_path / "black.png"
    Image.new("RGB", (36, 32)).save(black)
    out = tmp_path / "out"
    result = run_experiment(_config([black], out, ("integrated_gradients",),
                                    "methods.0.params.steps=4"))
    for path in [out / "results.json", *(out / "records").rglob("*.json")]:
        strict_json(path.read_text())  # raises on NaN / Infinity
    (item,) = load_items(out)
    assert item["error"] is None, item["error"]
    metadata = item["metadata"]
    assert metadata["completeness_gap_relative"] is None
    assert "not finite" in metadata["completeness_gap_relative_note"]
    assert result.results["complete"] is True


def test_complete_is_written_last(tmp_path, monkeypatch):
    out = tmp_path / "out"
    config = _config([_photo(tmp_path / "a.png")], out, ("saliency",), "figures=true")

    def crash(run_dir, results=None):
        raise KeyboardInterrupt("killed while building the report")

    monkeypatch.setattr(run_module, "build_report", crash)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config)
    results = json.loads((out / "results.json").read_text())
    assert results["complete"] is False
    assert not verify_run(out).ok
    monkeypatch.undo()
    finished = run_experiment(config)
    assert finished.results["complete"] is True
    assert (out / "report.html").is_file() and (out / "figures" / "grid.png").is_file()
    assert finished.results["wall_seconds"] > 0
    assert finished.results["compute_seconds"] > 0
    assert "compute" in (out / "report.html").read_text()
    assert verify_run(out).ok


def test_outputs_get_the_umask_mode_and_stay_atomic(tmp_path):
    out = tmp_path / "out"
    run_experiment(_config([_photo(tmp_path / "a.png")], out))
    files = [p for p in out.rglob("*") if p.is_file() and p.name != ".lock"]
    assert files and {p.stat().st_mode & 0o777 for p in files} == {FILE_MODE}
    assert not list(out.rglob("*.tmp"))
    script = (
        "import os, sys; os.umask(0o027)\n"
        "from xai_core.io import FILE_MODE, write_text\n"
        "write_text(sys.argv[1], 'x')\n"
        "print(oct(FILE_MODE), oct(os.stat(sys.argv[1]).st_mode & 0o777))\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "f.txt")],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    assert shown == ["0o640", "0o640"]


def test_empty_input_file_says_so(tmp_path):
    empty = tmp_path / "in" / "zero.png"
    empty.parent.mkdir()
    empty.write_bytes(b"")
    result = run_experiment(_config([empty, _photo(tmp_path / "in" / "ok.png")], tmp_path / "o"))
    errors = {item["key"]: item["error"] for item in result.items}
    assert "empty file (0 bytes)" in errors["zero"]
    assert errors["ok"] is None
    assert os.path.getsize(empty) == 0


def _explain_into(tmp_path, out) -> list[str]:
    return ["explain", str(_photo(tmp_path / "a.png")), "-m", "saliency", "--out", str(out),
            "--model", "timm/resnet10t", "--set", "model.pretrained=false"]


def test_an_output_dir_that_is_a_file_is_a_config_error(tmp_path, capsys):
    out = tmp_path / "taken"
    out.write_text("mine")
    assert main(_explain_into(tmp_path, out)) == 2
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and str(out) in err and "Traceback" not in err
    assert out.read_text() == "mine"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_output_dir_that_cannot_be_written_is_a_config_error(tmp_path, capsys):
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        assert main(_explain_into(tmp_path, parent / "out")) == 2
        err = capsys.readouterr().err
        assert "cannot be written" in err and "Traceback" not in err
    finally:
        parent.chmod(0o700)


def test_a_technique_refused_at_construction_leaves_finished_results_as_they_were(
    tmp_path, monkeypatch
):
    """A rule only a technique's constructor knows fails before results.json is rewritten."""
    out = tmp_path / "out"
    config = _config([_photo(tmp_path / "a.png")], out)
    run_experiment(config)
    finished = (out / "results.json").read_bytes()

    def refuse(*args, **kwargs):
        raise ConfigError("methods[0]: refused by its constructor")

    monkeypatch.setattr(run_module, "build_entries", refuse)
    with pytest.raises(ConfigError, match="refused by its constructor"):
        run_experiment(config, force=True)
    assert (out / "results.json").read_bytes() == finished
