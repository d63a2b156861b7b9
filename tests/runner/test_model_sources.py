"""Models from a config's own code (issue 27): ``model.factory`` (a ``.py`` file beside the config,
or a module) and ``hub/...`` (torch.hub, a local directory with a ``hubconf.py`` here): runs end to
end, config-time checks before any code runs, and every error naming the problem and the fix."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch

import xai_core
from xai_core.cli import main
from xai_core.errors import ConfigError, ModelLoadError, UnknownNameError
from xai_core.models import sources
from xai_core.runner.config import load_config
from xai_core.runner.run import run_experiment
from xai_core.store import load_items

NETS = """
import torch
from torch import nn


class TinyCNN(nn.Module):
    def __init__(self, width=4, classes=3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
        )
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


def tiny_cnn(width=4, classes=3):
    torch.manual_seed(0)
    return TinyCNN(width, classes)


def broken(width=4):
    raise ValueError("width must be even")


def not_a_model():
    return {"weights": 1}
"""

HUBCONF = """
dependencies = ["torch"]

from nets import tiny_cnn


def tiny(width=4):
    return tiny_cnn(width=width)
"""


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def _yaml(folder: Path, model: dict | None, **extra) -> Path:
    config = {"inputs": ["sample:cat"], "methods": ["saliency"], "workers": 0, **extra}
    if model is not None:
        config["model"] = model
    return _write(folder, "experiment.yaml", json.dumps(config))  # JSON is YAML


@pytest.fixture
def project(tmp_path):
    """A folder with ``nets.py`` and ``labels.txt`` beside the config; tests run elsewhere."""
    folder = tmp_path / "project"
    _write(folder, "nets.py", NETS)
    _write(folder, "labels.txt", "cat\ndog\n\nbird\n")
    return folder


def _factory(**extra) -> dict:
    return {"factory": "nets.py:tiny_cnn", "args": {"width": 8}, "input_size": 32,
            "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "labels": "labels.txt", **extra}


def test_factory_config_runs_saliency_and_grad_cam_end_to_end(project, tmp_path, monkeypatch,
                                                              capsys):
    monkeypatch.chdir(tmp_path)  # the factory and labels files are found beside the config
    out = tmp_path / "out"
    config = _yaml(project, _factory(), methods=["saliency", "grad_cam"], target="dog",
                   output_dir=str(out))
    assert main(["run", str(config)]) == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    assert results["complete"]
    items = load_items(out, results)
    assert [item["method"] for item in items] == ["saliency", "grad_cam"]
    for item in items:
        assert item["error"] is None
        assert item["model"] == "tiny_cnn"  # the label defaults to the callable's name
        assert (item["target"], item["target_label"]) == (1, "dog")
        assert (out / item["files"]["figure"]).is_file()
    assert (out / "figures" / "grid.png").is_file()
    (model,) = results["models"]
    assert model["label"] == "tiny_cnn" and model["name"] == "factory"
    assert model["weights"] == "factory" and model["input_size"] == [32, 32]
    assert model["factory"] == f"{project / 'nets.py'}:tiny_cnn"
    # The saved config names the files absolutely: it runs again from the output folder, and
    # resumes (nothing to compute).
    assert main(["run", str(out / "config.yaml")]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["summary"]["skipped"] == 2


def test_edited_factory_code_redoes_the_maps(project, tmp_path):
    config = load_config(_yaml(project, _factory(), output_dir=str(tmp_path / "out")))
    run_experiment(config)
    assert run_experiment(config).results["summary"]["skipped"] == 1
    nets = project / "nets.py"
    nets.write_text(nets.read_text().replace("torch.manual_seed(0)", "torch.manual_seed(1)"))
    assert run_experiment(config).results["summary"]["skipped"] == 0


def test_handle_has_the_description_and_the_checkpoint(project, tmp_path):
    nets = f"{project}/nets.py:tiny_cnn"
    handle = xai_core.load_model("factory", **{**_factory(), "factory": nets,
                                               "labels": ["a", "b", "c"]})
    assert handle.class_names == ["a", "b", "c"] and handle.num_classes == 3
    assert handle.preprocessing.input_size == (32, 32)
    assert handle.preprocessing.mean == (0.5, 0.5, 0.5)
    assert handle.weights_description == "weights: factory"
    default = xai_core.load_model("factory", factory=nets, input_size=40)
    assert default.preprocessing.mean == (0.485, 0.456, 0.406) and default.class_names is None
    state = {k: torch.full_like(v, 0.25) for k, v in handle.module.state_dict().items()}
    torch.save(state, tmp_path / "w.pt")
    loaded = xai_core.load_model("factory", factory=nets, args={"width": 8}, input_size=32,
                                 checkpoint=str(tmp_path / "w.pt"))
    assert loaded.info["weights"] == "checkpoint"
    assert torch.equal(loaded.module.head.weight, state["head.weight"])


def test_two_factory_files_of_one_name_stay_apart(tmp_path):
    for name, classes in (("a", 2), ("b", 5)):
        _write(tmp_path / name, "nets.py", NETS.replace("classes=3", f"classes={classes}"))
    a = xai_core.load_model("factory", factory=f"{tmp_path}/a/nets.py:tiny_cnn", input_size=16)
    b = xai_core.load_model("factory", factory=f"{tmp_path}/b/nets.py:tiny_cnn", input_size=16)
    assert a.module(torch.zeros(1, 3, 16, 16)).shape[1] == 2
    assert b.module(torch.zeros(1, 3, 16, 16)).shape[1] == 5
    assert type(a.module).__module__ != type(b.module).__module__


def test_factory_from_an_importable_module(tmp_path, monkeypatch):
    _write(tmp_path / "mypkg", "__init__.py", "")
    _write(tmp_path / "mypkg", "models.py", NETS)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = load_config({"model": {"factory": "mypkg.models:tiny_cnn", "input_size": 24},
                          "methods": ["saliency"]})
    assert config.model.name == "factory" and config.model.run_label == "tiny_cnn"
    handle = xai_core.load_model("factory", **config.model.loader_options())
    assert handle.num_classes is None and handle.preprocessing.input_size == (24, 24)
    with pytest.raises(ConfigError, match=r"no module 'mypkg.nope' can be imported; install it"):
        load_config({"model": {"factory": "mypkg.nope:tiny_cnn", "input_size": 24},
                     "methods": ["saliency"]})


def test_config_check_refuses_a_missing_factory_file_before_any_model_builds(
    project, tmp_path, monkeypatch, capsys
):
    import xai_core.runner.run as run_module

    built = []
    monkeypatch.setattr(run_module, "load_model", lambda *a, **kw: built.append(a))
    config = _yaml(project, _factory(factory="netz.py:tiny_cnn"),
                   output_dir=str(tmp_path / "out"))
    assert main(["config", "--check", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"the file '{project / 'netz.py'}' does not exist" in err
    assert "relative to the config file's folder" in err
    assert main(["run", str(config)]) == 2
    assert not built and not (tmp_path / "out").exists()


def test_config_check_reads_the_factory_file_without_running_it(project):
    _write(project, "loud.py", "open('ran', 'w').write('x')\ndef make():\n    pass\n")
    with pytest.raises(ConfigError, match=r"defines no 'mkae'; did you mean 'make'\?"):
        load_config(_yaml(project, _factory(factory="loud.py:mkae")))
    load_config(_yaml(project, _factory(factory="loud.py:make")))
    assert not (project / "ran").exists()


@pytest.mark.parametrize(
    "model, message",
    [
        (_factory(factory="nets.py:tiny_cmn"),
         r"defines no 'tiny_cmn'; did you mean 'tiny_cnn'.* Name the function"),
        (_factory(factory="nets.py"), r"'nets.py'; write it as FILE.py:CALLABLE"),
        (_factory(input_size=None), r"needs `input_size`: the side in pixels"),
        (_factory(labels="classes.txt"),
         r"labels file '.*classes.txt' does not exist; give a text file with one class name"),
        (_factory(labels=["cat", "cat"]), r"lists 'cat' more than once"),
        (_factory(mean=[0.5, 0.5]), r"'model.mean': \[0.5, 0.5\]; give three numbers"),
        (_factory(std=[0.5, 0.0, 0.5]), r"every std must be > 0"),
        (_factory(pretrained=False), r"`pretrained: false` does not apply to factory"),
        (_factory(options={"num_classes": 3}),
         r"model options num_classes do not apply to factory .*as `args`"),
        (_factory(name="timm/resnet18"),
         r"gives both `name` \('timm/resnet18'\) and `factory`; a factory model needs no name"),
        ({"name": "timm/resnet10t", "pretrained": False, "labels": ["a", "b"], "mean": [0, 0, 0]},
         r"mean, labels apply only to a model built from code"),
        ({"name": "factory", "input_size": 32}, r"model 'factory' needs `factory: FILE.py"),
    ],
)
def test_config_errors_name_the_problem_and_the_fix(project, model, message):
    model = {k: v for k, v in model.items() if v is not None}
    with pytest.raises(ConfigError, match=message):
        load_config(_yaml(project, model))


def test_a_target_not_in_the_labels_fails_at_config_time(project):
    with pytest.raises(ConfigError, match=r"'target'.*'dgo'"):
        load_config(_yaml(project, _factory(), target="dgo"))


@pytest.mark.parametrize(
    "factory, message",
    [
        ("broken", r"factory .*nets.py:broken\(width=8\) raised ValueError: width must be even; "
                   r"fix the callable or its `args`"),
        ("not_a_model", r"returned dict, not a torch.nn.Module"),
        ("TinyCNN.nope", r"'TinyCNN' has no 'nope'"),
        # `from nets import *`: only importing the file tells what it defines
        ("star.py:tiny_cn", r"the module has no 'tiny_cn'; did you mean 'tiny_cnn'"),
    ],
)
def test_load_errors_say_what_was_called(project, factory, message):
    _write(project, "star.py", "from nets import *\n")
    args = {} if factory == "not_a_model" else {"width": 8}
    spec = f"{project}/{factory}" if ".py:" in factory else f"{project}/nets.py:{factory}"
    with pytest.raises(ModelLoadError, match=message):
        xai_core.load_model("factory", factory=spec, args=args, input_size=16)


def test_a_factory_file_that_fails_to_import_or_a_wrong_label_count(project):
    _write(project, "bad.py", "import not_a_module_anywhere\ndef make():\n    pass\n")
    with pytest.raises(ModelLoadError, match=r"running .*bad.py.* raised ModuleNotFoundError"):
        xai_core.load_model("factory", factory=f"{project}/bad.py:make", input_size=16)
    with pytest.raises(ModelLoadError, match=r"returns 3 logits but `labels` names 2 classes"):
        xai_core.load_model("factory", factory=f"{project}/nets.py:tiny_cnn", input_size=16,
                            labels=["a", "b"])


# --- torch.hub ---------------------------------------------------------------------------------


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    """torch.hub's cache in ``tmp_path`` (the real one is never touched)."""
    folder = tmp_path / "hub-cache"
    folder.mkdir()
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(folder))
    return folder


def _hub_repo(folder: Path) -> Path:
    _write(folder, "nets.py", NETS)
    _write(folder, "hubconf.py", HUBCONF)
    return folder


def test_local_hub_directory_model_loads_and_runs(project, tmp_path, monkeypatch):
    _hub_repo(project / "hubrepo")
    monkeypatch.chdir(tmp_path)
    model = {"name": "hub/hubrepo:tiny", "options": {"source": "local"}, "args": {"width": 6},
             "input_size": 32, "labels": "labels.txt"}
    config = load_config(_yaml(project, model, methods=["saliency", "grad_cam"],
                               output_dir=str(tmp_path / "out")))
    assert config.model.name == f"hub/{project / 'hubrepo'}:tiny"
    result = run_experiment(config)
    assert [item["error"] for item in result.items] == [None, None]
    assert {item["model"] for item in result.items} == {"tiny"}
    assert result.results["model"]["weights"] == "torch.hub"
    assert (tmp_path / "out" / "figures" / "grid.png").is_file()


@pytest.mark.parametrize(
    "model, message",
    [
        ({"name": "hub/nowhere:tiny", "options": {"source": "local"}},
         r"'.*nowhere/hubconf.py' does not exist; with options: \{source: local\}"),
        ({"name": "hub/hubrepo:tiyn", "options": {"source": "local"}},
         r"defines no 'tiyn'; did you mean 'tiny'\?"),
        ({"name": "hub/hubrepo", "options": {"source": "local"}}, r"names no entrypoint"),
        ({"name": "hub/hubrepo:tiny", "options": {"source": "locl"}},
         r"'model.options.source': 'locl'; did you mean 'local'\?"),
        ({"name": "hub/hubrepo:tiny", "options": {"source": "local", "width": 3}},
         r"model options width do not apply to a hub model .*as `args`"),
        ({"name": "hub/justone:tiny"}, r"'justone' is not <owner>/<repo>"),
        ({"name": "hub/owner/repo:tiny", "input_size": None}, r"needs `input_size`"),
    ],
)
def test_hub_config_errors(project, model, message):
    _hub_repo(project / "hubrepo")
    model = {"input_size": 32, **model}
    model = {k: v for k, v in model.items() if v is not None}
    with pytest.raises(ConfigError, match=message):
        load_config(_yaml(project, model))


def _no_hub_load(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("torch.hub.load must not be called")

    monkeypatch.setattr(torch.hub, "load", refuse)


def test_github_hub_offline_and_not_cached_fails_fast(hub_dir, monkeypatch):
    _no_hub_load(monkeypatch)
    monkeypatch.setenv("XAI_CORE_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match=(
        r"torch.hub could not fetch someone/nets \(offline\?\); .*clone it and use source: local"
    )):
        xai_core.load_model("hub/someone/nets:tiny", input_size=32)


def test_github_hub_repo_not_trusted_is_refused_before_anything_downloads(hub_dir, monkeypatch):
    _no_hub_load(monkeypatch)
    monkeypatch.setattr(sources, "reachable", lambda host: True)
    with pytest.raises(ModelLoadError, match=r"someone/nets is not trusted.*trust_repo: true"):
        xai_core.load_model("hub/someone/nets:tiny", input_size=32)


def test_github_hub_repo_in_the_cache_loads_offline(hub_dir, monkeypatch):
    monkeypatch.setenv("XAI_CORE_OFFLINE", "1")
    _hub_repo(hub_dir / "someone_nets_main")
    handle = xai_core.load_model("hub/someone/nets:tiny", args={"width": 5}, input_size=32)
    assert handle.info["hub"] == "someone/nets" and handle.info["entrypoint"] == "tiny"
    assert handle.module.head.in_features == 5


def test_the_model_listing_names_both_sources(capsys):
    assert main(["list", "models"]) == 0
    out = capsys.readouterr().out
    assert "factory" in out.split() and "hub/*" in out.split()
    with pytest.raises(UnknownNameError):
        xai_core.load_model("factroy")


def test_the_shipped_example_runs_from_anywhere(tmp_path, monkeypatch):
    """``example:own_model`` finds ``own_model_net.py`` beside it, whatever the working folder."""
    monkeypatch.chdir(tmp_path)
    config = load_config("example:own_model", [f"output_dir={tmp_path / 'out'}",
                                               "inputs=[sample:cat]", "workers=0"])
    assert config.model.run_label == "tiny_cnn" and config.model.labels[0] == "cat"
    result = run_experiment(config)
    assert [item["error"] for item in result.items] == [None, None]
    assert (tmp_path / "out" / "figures" / "grid.png").is_file()


def test_a_factory_model_beside_a_registered_one_in_a_comparison(project, tmp_path):
    models = [
        {**_factory(), "label": "mine", "method_params": {"grad_cam": {"layer": "features.2"}}},
        {"name": "timm/resnet10t", "pretrained": False, "input_size": 32},
    ]
    config = load_config(_yaml(project, None, models=models, methods=["saliency", "grad_cam"],
                               output_dir=str(tmp_path / "out")))
    assert [m.run_label for m in config.models] == ["mine", "timm_resnet10t"]
    result = run_experiment(config)
    assert all(item["error"] is None for item in result.items)
    assert {item["model"] for item in result.items} == {"mine", "timm/resnet10t"}
    mine = [i for i in result.items if i["model"] == "mine" and i["method"] == "grad_cam"]
    assert mine[0]["label"] == "grad_cam"
    assert (tmp_path / "out" / "figures" / "compare" / "cat.png").is_file()


def test_registered_models_keep_the_fingerprint_of_runs_made_before_model_sources():
    """Records of earlier runs fingerprinted ``asdict(model)`` without the keys of models from
    code: unset, they stay out of the identity, so those runs still resume."""
    from xai_core.runner.config import CODE_KEYS, ModelConfig

    model = ModelConfig(name="timm/resnet10t", options={"num_classes": 10})
    identity = model.identity()
    assert not set(CODE_KEYS) & set(identity)
    assert identity == {
        "name": "timm/resnet10t", "pretrained": True, "checkpoint": None,
        "options": {"num_classes": 10}, "label": None, "input_size": None, "method_params": {},
    }
    assert ModelConfig(factory="nets.py:build").identity()["factory"] == "nets.py:build"
