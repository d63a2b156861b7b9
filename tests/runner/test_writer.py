"""The run's background writer (order, bounds, failures) and its time accounting."""

from __future__ import annotations

import threading
import time

import pytest

from xai_core.io import recording_digests, write_text
from xai_core.runner.timing import PHASES, Phases
from xai_core.runner.writer import WriteError, Writer


def test_writes_run_in_submission_order_in_another_thread(tmp_path):
    seen: list[tuple[int, str]] = []
    with Writer(pending=4) as writer:
        for i in range(20):
            writer.submit(lambda i=i: seen.append((i, threading.current_thread().name)))
        writer.flush()
        assert [i for i, _ in seen] == list(range(20))
    assert all(name.startswith("xai-writer") for _, name in seen)


def test_writes_see_the_callers_digest_recorder(tmp_path):
    # Records read the digests of their files from the run's recorder (a context variable).
    with recording_digests() as written, Writer() as writer:
        writer.submit(write_text, tmp_path / "a.txt", "hello")
        writer.flush()
    assert str(tmp_path / "a.txt") in written


def test_a_failed_write_stops_later_writes_and_is_raised_in_the_run(tmp_path):
    def fail() -> None:
        raise OSError("disk full")

    record = tmp_path / "record.json"
    with pytest.raises(WriteError, match="disk full"):
        with Writer() as writer:
            writer.submit(write_text, tmp_path / "map.npy", "x")
            writer.submit(fail)
            writer.submit(write_text, record, "{}")  # a record after its failed file
            writer.flush()
    assert (tmp_path / "map.npy").is_file()
    assert not record.exists(), "no record may be written after a failed write"


def test_submit_blocks_when_pending_writes_are_full():
    gate = threading.Event()
    with Writer(pending=2) as writer:
        writer.submit(gate.wait)
        writer.submit(lambda: None)
        blocked = threading.Thread(target=writer.submit, args=(lambda: None,))
        blocked.start()
        blocked.join(0.2)
        assert blocked.is_alive(), "a third write waits while two are pending"
        gate.set()
        blocked.join(5)
        assert not blocked.is_alive()


def test_threads_zero_writes_at_once_and_counts_as_writing():
    phases = Phases()
    done = []
    writer = Writer(threads=0, phases=phases)
    writer.submit(lambda: (time.sleep(0.05), done.append(1)))
    assert done == [1]
    assert phases.breakdown()["writing"] >= 0.04


def test_phases_count_each_second_once():
    phases = Phases()
    with phases("model"):
        time.sleep(0.05)
        with phases("writing"):  # inside another phase: counted as the outer one
            time.sleep(0.02)
    breakdown = phases.breakdown()
    assert breakdown["model"] >= 0.07 and breakdown["writing"] == 0
    assert set(PHASES) <= set(breakdown) and breakdown["wall"] >= breakdown["model"]
    with pytest.raises(ValueError, match="unknown phase 'modle'"):
        with phases("modle"):
            pass


def test_a_run_whose_map_write_fails_stops_loudly_and_resumes(tmp_path, monkeypatch):
    import json

    import numpy as np
    from PIL import Image

    import xai_core.runner.attribution as attribution
    from xai_core.errors import WriteError as UserWriteError
    from xai_core.runner.config import load_config
    from xai_core.runner.run import run_experiment

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(4):
        pixels = np.random.default_rng(i).integers(0, 255, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"p{i}.png")
    config = load_config(
        {"inputs": [str(folder)], "model": {"name": "timm/resnet10t", "pretrained": False},
         "methods": ["saliency"], "output_dir": str(tmp_path / "out"), "figures": False,
         "workers": 0, "batch_size": 2}
    )
    real = attribution.write_array
    calls = []

    def failing(path, array, dtype):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(path, array, dtype)

    monkeypatch.setattr(attribution, "write_array", failing)
    with pytest.raises(UserWriteError, match="No space left on device.*run the same command"):
        run_experiment(config)
    records = tmp_path / "out" / "records"
    recorded = {p.parent.name for p in records.rglob("saliency.json")}
    failed = calls[2].parent.name
    assert failed not in recorded, "no record for an item whose map was not written"
    monkeypatch.setattr(attribution, "write_array", real)
    result = run_experiment(config)
    assert not result.failures and len(result.items) == 4
    assert json.loads((tmp_path / "out" / "results.json").read_text())["complete"]
