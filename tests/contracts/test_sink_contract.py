"""``SinkRun`` (xai_core/contracts/sink.py): what a sink is given, read from a run folder written
here by hand (results.json with its items and metrics table, figure PNGs)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from xai_core.contracts.sink import Sink, SinkRun, flat_config
from xai_core.errors import ConfigError


def _item(model, label, key, sparseness, **extra):
    return {"model": model, "label": label, "key": key, "image": f"sample:{key}",
            "metrics": {"sparseness": sparseness, "deletion": None},
            "files": {"figure": f"figures/{model}/{key}/{label}.png"}, "error": None, **extra}


@pytest.fixture
def folder(tmp_path):
    items = [
        _item("a", "saliency", "cat", 0.5),
        _item("a", "saliency", "cat", 0.25, target=2),   # a second target of the same image
        _item("b", "saliency", "cat", 0.75),
        _item("a", "saliency", "dog", float("nan")),     # not finite: not a score
        {**_item("a", "saliency", "owl", 0.1), "error": "RuntimeError: boom"},
    ]
    table = {"rows": [{"method": "saliency (a)", "sparseness": {"mean": 0.375, "sem": 0.1, "n": 2},
                       "deletion": {"mean": None, "sem": None, "n": 0}},
                      {"method": "saliency (b)", "sparseness": {"mean": 0.75, "sem": 0, "n": 1}}]}
    results = {"complete": True, "items": items, "metrics": table,
               "config": {"model": {"name": "a"}, "methods": [{"name": "saliency"}], "figure": {}}}
    (tmp_path / "results.json").write_text(json.dumps(results))
    for model, key, shade in (("a", "cat", 10), ("b", "cat", 200)):
        path = tmp_path / "figures" / model / key / "saliency.png"
        path.parent.mkdir(parents=True)
        Image.fromarray(np.full((6, 8, 3), shade, np.uint8)).save(path)
    return tmp_path


def test_means_scores_and_series_of_several_models(folder):
    run = SinkRun.from_folder(folder)
    assert run.metric_means() == {"saliency (a)": {"sparseness": 0.375},
                                  "saliency (b)": {"sparseness": 0.75}}
    scores = [(s.series, s.metric, s.step, s.value) for s in run.item_scores()]
    assert scores == [("saliency (a)", "sparseness", 0, 0.5),
                      ("saliency (a)", "sparseness", 1, 0.25),
                      ("saliency (b)", "sparseness", 0, 0.75)]
    assert run.config["model"] == {"name": "a"} and run.name == folder.name


def test_pictures_are_the_figures_named_uniquely_and_capped(folder):
    run = SinkRun.from_folder(folder)
    pictures = list(run.pictures(10))
    names = [name for name, _, _ in pictures]
    # The second target of cat/saliency (a) has the same figure path here, so it shows too.
    assert names == ["cat/saliency (a)", "cat/saliency (a) #2", "cat/saliency (b)"]
    assert pictures[0][2].shape == (6, 8, 3) and pictures[2][2][0, 0, 0] == 200
    assert [name for name, _, _ in run.pictures(1)] == ["cat/saliency (a)"]
    calls = []
    drawn = SinkRun.from_folder(folder, render=lambda f, item: calls.append(item["key"]))
    list(drawn.pictures(10))
    assert calls == ["dog"]  # no figure on disk: the renderer; failed items: nothing


def test_flat_config():
    assert flat_config({"model": {"name": "x", "options": {}}, "methods": [{"name": "s"}],
                        "seed": 0}) == {
        "model.name": "x", "model.options": "{}", "methods": '[{"name": "s"}]', "seed": "0"}


def test_missing_library_names_the_install_command():
    class Needs(Sink):
        name = "needs"
        requires = ("json", "xai_no_such_module_here")

        def log(self, run):
            return {}

    assert Needs.missing() == ["xai_no_such_module_here"]
    with pytest.raises(ConfigError, match="pip install xai_no_such_module_here"):
        Needs.check_available()
