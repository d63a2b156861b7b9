"""Sinks in a run (xai_core/runner/sinks.py, the config's ``sinks``): checked at config time,
called once per finished run after results.json is complete, a failing one loud (recorded,
non-zero exit) without harming the run's outputs; ``xai list sinks`` / ``xai describe``."""

from __future__ import annotations

import json
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

import xai_core
from xai_core.cli import main
from xai_core.errors import ConfigError, PluginError, UnknownNameError
from xai_core.runner.config import load_config
from xai_core.runner.verify import verify_run

TINY = {
    "model": {"name": "timm/resnet10t", "pretrained": False, "input_size": 32},
    "inputs": ["sample:cat", "sample:coffee"],
    "methods": ["saliency"],
    "metrics": ["sparseness"],
    "workers": 0,
    "figures": False,
}


class Recorder(xai_core.Sink):
    """Appends what it was given, one JSON line per call, to ``path``."""

    name = "recorder"
    summary = "test sink: records each run it is given"

    @dataclass
    class Params:
        path: str = "recorded.jsonl"

    def log(self, run):
        complete = json.loads((run.folder / "results.json").read_text())["complete"]
        line = {"name": run.name, "items": len(run.items), "means": run.metric_means(),
                "scores": [(s.series, s.step, s.value) for s in run.item_scores()],
                "complete": complete, "model": run.config["model"]["name"]}
        with open(self.params.path, "a") as handle:
            handle.write(json.dumps(line) + "\n")
        return {"path": self.params.path}


class Broken(xai_core.Sink):
    name = "broken"
    summary = "test sink: the tracker is down"

    def log(self, run):
        raise RuntimeError("tracker at http://nowhere refused the connection")


class NeedsLibrary(xai_core.Sink):
    name = "needs_library"
    requires = ("xai_no_such_tracker_library",)
    install = "pip install 'xai-core[nosuch]'"

    def log(self, run):
        raise AssertionError("never called: the config is refused")


@pytest.fixture
def test_sinks():
    module = types.ModuleType("test_sinks")

    @xai_core.hookimpl
    def register_sinks(register):
        for cls in (Recorder, Broken, NeedsLibrary):
            register(cls)

    module.register_sinks = register_sinks
    xai_core.register_plugin(module, name="test_sinks")


def _config(tmp_path: Path, sinks: list) -> dict:
    return {**TINY, "output_dir": str(tmp_path / "run"), "sinks": sinks}


def test_unknown_sink_is_refused_with_close_matches():
    with pytest.raises(UnknownNameError, match="unknown sink 'tensorbord'.*tensorboard"):
        load_config({**TINY, "methods": ["saliency"], "sinks": ["tensorbord"]})


def test_bad_sink_params_are_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"sinks\[0\]\.params\.image") as bad_key:
        load_config({**TINY, "sinks": [{"name": "tensorboard", "params": {"image": 3}}]})
    assert "images" in str(bad_key.value)  # the close match
    with pytest.raises(ConfigError, match=r"sinks\[1\]\.params\.mode"):
        load_config({**TINY, "sinks": ["tensorboard", {"name": "wandb",
                                                       "params": {"mode": "onlin"}}]})
    with pytest.raises(ConfigError, match="tensorboard appear more than once"):
        load_config({**TINY, "sinks": ["tensorboard", "tensorboard"]})


def test_missing_library_is_a_config_error_naming_the_extra(test_sinks):
    with pytest.raises(ConfigError, match=r"sink 'needs_library' needs "
                       r"xai_no_such_tracker_library.*pip install 'xai-core\[nosuch\]'"):
        load_config({**TINY, "sinks": ["needs_library"]})


def test_a_built_in_sink_without_its_library_names_the_extra(monkeypatch):
    from xai_core_plugins.sinks import TensorBoardSink

    monkeypatch.setattr(TensorBoardSink, "requires", ("xai_tensorboard_uninstalled",))
    with pytest.raises(ConfigError, match=r"pip install 'xai-core\[tensorboard\]'"):
        load_config({**TINY, "sinks": ["tensorboard"]})


def test_a_sink_class_without_log_is_refused(test_sinks):
    class NoLog(xai_core.Sink):
        name = "no_log"

    module = types.ModuleType("half_sinks")
    module.register_sinks = xai_core.hookimpl(lambda register: register(NoLog))
    xai_core.register_plugin(module, name="half_sinks")
    with pytest.raises(PluginError, match="does not implement log"):
        xai_core.list_sinks()


def test_sinks_see_the_finished_run_and_log_again_on_rerun(tmp_path, test_sinks):
    recorded = tmp_path / "recorded.jsonl"
    config = _config(tmp_path, [{"name": "recorder", "params": {"path": str(recorded)}}])
    from xai_core.runner.run import run_experiment

    first = run_experiment(load_config(config))
    again = run_experiment(load_config(config))
    assert again.results["summary"]["skipped"] == 2  # nothing recomputed, logged again
    lines = [json.loads(line) for line in recorded.read_text().splitlines()]
    assert len(lines) == 2
    seen = lines[0]
    assert seen["complete"] is True and seen["items"] == 2 and seen["name"] == "run"
    assert seen["model"] == "timm/resnet10t"
    (row,) = first.results["metrics"]["rows"]
    assert seen["means"] == {"saliency": {"sparseness": row["sparseness"]["mean"]}}
    values = [i["metrics"]["sparseness"] for i in first.items]
    assert seen["scores"] == [["saliency", 0, values[0]], ["saliency", 1, values[1]]]
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["sinks"][0]["ok"] and saved["sinks"][0]["logged"] == {"path": str(recorded)}


def test_a_failing_sink_fails_the_command_not_the_run(tmp_path, test_sinks, capsys):
    recorded = tmp_path / "recorded.jsonl"
    config = _config(tmp_path, ["broken", {"name": "recorder", "params": {"path": str(recorded)}}])
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    assert main(["run", str(path)]) == 1
    out, err = capsys.readouterr()
    assert "done: 2 of 2 item(s) succeeded" in out
    assert ("error: sink 'broken' failed: RuntimeError: tracker at http://nowhere refused the "
            "connection") in err
    assert "sink:    recorder: path " in out  # the other sink still ran
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["complete"] is True and saved["summary"]["failed"] == 0
    broken, recorder = saved["sinks"]
    assert not broken["ok"] and broken["error"].startswith("RuntimeError: tracker at")
    assert "Traceback" in broken["traceback"] and recorder["ok"]
    assert len(recorded.read_text().splitlines()) == 1
    assert verify_run(tmp_path / "run").ok  # the run's own outputs are intact


@pytest.mark.slow  # figures and the report, drawn twice
def test_a_restyle_logs_nothing(tmp_path, test_sinks):
    recorded = tmp_path / "recorded.jsonl"
    config = _config(tmp_path, [{"name": "recorder", "params": {"path": str(recorded)}}])
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps({**config, "figures": True}))
    assert main(["run", str(path)]) == 0
    assert main(["report", str(tmp_path / "run"), "figure.cmap=viridis"]) == 0
    assert len(recorded.read_text().splitlines()) == 1


def test_list_and_describe_sinks(capsys, test_sinks):
    assert "needs_library" in xai_core.list_sinks()  # loads the plugin registered here
    assert main(["list", "sinks"]) == 0
    listed = capsys.readouterr().out.splitlines()
    for name in ("tensorboard", "mlflow", "wandb"):
        (line,) = [line for line in listed if line.startswith(f"{name} ")]
        assert "[sinks]" in line and "not installed" not in line  # the test extra has them
    (line,) = [line for line in listed if line.startswith("needs_library ")]
    assert line.endswith("(not installed: pip install 'xai-core[nosuch]')")
    assert main(["describe", "mlflow"]) == 0
    described = capsys.readouterr().out
    assert "mlflow (sink)" in described and "tracking_uri: str = 'mlruns'" in described
    assert "needs:          mlflow" in described
