"""The built-in sinks (plugins/sinks/) against the real libraries, offline: a tiny run with
``sinks: [tensorboard, mlflow, wandb]``, read back with each library's own reader
(TensorBoard's ``EventAccumulator``, ``mlflow.get_run``, W&B's record protobufs from the
offline run's ``.wandb`` file)."""

from __future__ import annotations

import glob
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xai_core.contracts.sink import SinkRun
from xai_core.io import PHOTO_SUFFIX
from xai_core.runner.config import load_config
from xai_core.runner.run import run_experiment
from xai_core.runner.verify import verify_run
from xai_core.store import load_items

pytestmark = pytest.mark.slow  # each library's import and a tiny run: 5-20 s on 2 cores

TINY = {
    "model": {"name": "timm/resnet10t", "pretrained": False, "input_size": 48},
    "inputs": ["sample:cat", "sample:coffee"],
    "methods": ["saliency"],
    "metrics": ["sparseness"],
    "workers": 0,
}


def _run(out: Path, sinks: list, **extra):
    config = load_config({**TINY, "output_dir": str(out), "sinks": sinks, **extra})
    return run_experiment(config)


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """One finished run logged to all three trackers, with its figures drawn."""
    out = tmp_path_factory.mktemp("tracked") / "run"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WANDB_MODE", "offline")  # besides the sink's own default: no network
        env.setenv("WANDB_SILENT", "true")
        result = _run(out, ["tensorboard", "mlflow", "wandb"])
    return out, result


def _sink(result, name: str) -> dict:
    (record,) = [s for s in result.results["sinks"] if s["name"] == name]
    assert record["ok"], record.get("traceback")
    return record


def _item_values(out: Path) -> list[float]:
    return [item["metrics"]["sparseness"] for item in load_items(out)]


def _mean(result) -> float:
    (row,) = result.results["metrics"]["rows"]
    return row["sparseness"]["mean"]


def test_every_sink_is_recorded_and_the_run_stays_intact(tracked):
    out, result = tracked
    saved = json.loads((out / "results.json").read_text())
    assert saved["complete"] is True
    assert [s["name"] for s in saved["sinks"]] == ["tensorboard", "mlflow", "wandb"]
    assert all(s["ok"] and s["error"] is None for s in saved["sinks"])
    assert not result.failed_sinks
    assert verify_run(out).ok


def test_tensorboard_event_file_holds_scalars_and_pictures(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, result = tracked
    log_dir = Path(_sink(result, "tensorboard")["logged"]["log_dir"])
    assert log_dir.parent == out / "tensorboard"
    events = EventAccumulator(str(log_dir), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    (mean,) = events.Scalars("mean/saliency/sparseness")
    assert mean.value == pytest.approx(_mean(result), rel=1e-6)
    per_item = events.Scalars("items/saliency/sparseness")
    assert [e.step for e in per_item] == [0, 1]
    assert [e.value for e in per_item] == pytest.approx(_item_values(out), rel=1e-6)
    images = events.Tags()["images"]
    assert sorted(images) == ["pictures/cat/saliency", "pictures/coffee/saliency"]
    (picture,) = events.Images("pictures/cat/saliency")
    figure = Image.open(out / "figures" / "cat" / "saliency.png")
    assert (picture.width, picture.height) == figure.size  # the run's own figure
    (text,) = events.Tensors("config/text_summary")
    assert b"name: timm/resnet10t" in text.tensor_proto.string_val[0]


def test_mlflow_run_holds_params_metrics_and_artifacts(tracked, monkeypatch):
    import mlflow
    from mlflow.tracking import MlflowClient

    out, result = tracked
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 reading a file store
    logged = _sink(result, "mlflow")["logged"]
    assert logged["tracking_uri"] == (out / "mlruns").resolve().as_uri()
    client = MlflowClient(tracking_uri=logged["tracking_uri"])
    mlflow.set_tracking_uri(logged["tracking_uri"])
    run = mlflow.get_run(logged["run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "run"
    assert run.data.params["model.name"] == "timm/resnet10t"
    assert json.loads(run.data.params["inputs"]) == ["sample:cat", "sample:coffee"]
    assert run.data.metrics["mean/saliency/sparseness"] == pytest.approx(_mean(result))
    history = client.get_metric_history(logged["run_id"], "items/saliency/sparseness")
    history = sorted((m.step, m.value) for m in history)
    assert [step for step, _ in history] == [0, 1]
    assert [value for _, value in history] == pytest.approx(_item_values(out))
    artifacts = {f.path for f in client.list_artifacts(logged["run_id"])}
    assert {"results.json", "config.yaml", "metrics.md", "pictures"} <= artifacts
    pictures = {f.path for f in client.list_artifacts(logged["run_id"], "pictures/cat")}
    assert pictures == {"pictures/cat/saliency.png"}
    local = Path(client.download_artifacts(logged["run_id"], "results.json"))
    assert json.loads(local.read_text())["complete"] is True


def _wandb_records(path: str):
    """The records of a ``.wandb`` file: a 7-byte header (``:W&B``, magic, version), then
    LevelDB-log chunks (crc32, length, type) in 32 KiB blocks, each record a ``Record``
    protobuf."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B"
    offset, pending = 7, b""
    while offset + 7 <= len(data):
        left = 32768 - offset % 32768
        if left < 7:  # a block's tail too short for a chunk header is padding
            offset += left
            continue
        length, kind = struct.unpack("<HB", data[offset + 4 : offset + 7])
        chunk, offset = data[offset + 7 : offset + 7 + length], offset + 7 + length
        if kind == 0:
            continue
        pending += chunk
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def _values(items) -> dict:
    """W&B's key -> JSON value pairs (a nested key as ``a/b``)."""
    return {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items}


def test_wandb_offline_run_holds_config_metrics_and_pictures(tracked):
    out, result = tracked
    logged = _sink(result, "wandb")["logged"]
    assert logged["mode"] == "offline"
    (path,) = glob.glob(str(out / "wandb" / f"offline-run-*-{logged['id']}" / "*.wandb"))
    assert logged["dir"] == str(Path(path).parent) and logged["pictures"] == 2
    history, summary, config = {}, {}, {}
    for record in _wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.setdefault(record.history.step.num, {}).update(_values(record.history.item))
        elif kind == "summary":
            summary.update(_values(record.summary.update))
        elif kind == "run":
            config.update({i.key: json.loads(i.value_json) for i in record.run.config.update})
    assert config["model"]["name"] == "timm/resnet10t"
    assert sorted(history) == [0, 1]
    values = [history[step]["items/saliency/sparseness"] for step in sorted(history)]
    assert values == pytest.approx(_item_values(out))
    assert summary["mean/saliency/sparseness"] == pytest.approx(_mean(result))
    assert summary["pictures/cat/saliency/_type"] == "image-file"  # nested keys, flattened
    media = Path(path).parent / "files" / summary["pictures/cat/saliency/path"]
    assert Image.open(media).size == Image.open(out / "figures" / "cat" / "saliency.png").size


def test_without_figures_pictures_are_the_maps_on_the_photos(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "plain"
    result = _run(out, [{"name": "tensorboard", "params": {"images": 1}}], figures=False)
    log_dir = _sink(result, "tensorboard")["logged"]["log_dir"]
    events = EventAccumulator(log_dir, size_guidance={"images": 0})
    events.Reload()
    assert events.Tags()["images"] == ["pictures/cat/saliency"]  # capped at `images`
    (picture,) = events.Images("pictures/cat/saliency")
    assert (picture.width, picture.height) == (48, 48)  # the model's input size
    drawn = SinkRun.from_folder(out).picture(load_items(out)[0])
    assert drawn is None  # no figure and no renderer: nothing to show
    photo = np.asarray(Image.open(out / "inputs" / f"cat{PHOTO_SUFFIX}").convert("RGB"))
    from xai_core.runner.sinks import render_item

    rendered = render_item(out, load_items(out)[0])
    assert rendered.shape == photo.shape and rendered.dtype == np.uint8
    assert not np.array_equal(rendered, photo)  # the map is drawn on it


def test_mlflow_server_down_fails_the_sink_loudly(tmp_path):
    import socket

    with socket.socket() as probe:  # a local port nobody listens on: refused, no network
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = {"name": "mlflow", "params": {"tracking_uri": f"http://127.0.0.1:{port}",
                                         "http_retries": 0}}
    result = _run(tmp_path / "run", [sink, "tensorboard"], figures=False)
    (failed,) = result.failed_sinks
    assert failed["name"] == "mlflow" and failed["error"].startswith("MlflowException")
    assert f"127.0.0.1:{port}" in failed["error"]
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["complete"] is True and saved["sinks"][1]["ok"]  # tensorboard still logged
    import os

    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ  # set for the call only
