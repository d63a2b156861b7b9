"""Experiment configs: schema, overrides, and errors before any model loads."""

from __future__ import annotations

import pytest

from xai_core.errors import ConfigError, UnknownNameError
from xai_core.runner.config import load_config

BASE = {"inputs": ["sample:cat"], "methods": ["saliency"]}


def test_demo_config_loads_and_overrides_apply():
    config = load_config(
        "configs/demo.yaml",
        ["device=cpu", "methods.0.params.abs=false", "seed=7", "output_dir=/tmp/x/${model.name}"],
    )
    assert config.seed == 7
    assert config.methods[0].params == {"abs": False}
    assert config.output_dir == "/tmp/x/efficientnet_lite0"


def test_shorthand_methods_and_single_input():
    config = load_config({"inputs": "sample:cat", "methods": ["saliency"]})
    assert config.inputs == ["sample:cat"] and config.methods[0].name == "saliency"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["seeed=1"], r"unknown config key 'seeed'; did you mean 'seed'\? Valid keys: model,"),
        (["model.nmae=x"], r"'model.nmae'; did you mean 'name'"),
        (["methods.0.parms.abs=true"], r"'methods\[0\].parms'; did you mean 'params'"),
        (
            ["methods.0.params.abss=true"],
            r"'methods\[0\].params.abss'.*Valid keys: abs, times_input",
        ),
        (["seed=abc"], r"'seed'.*abc"),
        (["methods.0.params.abs=maybe"], r"methods\[0\].params.abs"),
        (["methods.0.params.reduction=median"], r"'median' is not one of 'max', 'sum'"),
        (["device=tpu"], "use one of cpu, cuda, auto"),
        (["methods.3.name=x"], "index 3 is out of range"),
        (["noequals"], "key=value"),
    ],
)
def test_bad_overrides_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(BASE, overrides)


def test_unknown_method_and_model_suggest_close_matches():
    with pytest.raises(
        UnknownNameError, match="unknown technique 'salency'; did you mean 'saliency'"
    ):
        load_config({**BASE, "methods": ["salency"]})
    with pytest.raises(UnknownNameError, match="did you mean 'efficientnet_lite0'"):
        load_config({**BASE, "model": {"name": "efficientnet-lite0"}})


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("inputs: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_duplicate_method_labels_need_distinct_labels():
    with pytest.raises(ConfigError, match="distinct `label`"):
        load_config({**BASE, "methods": ["saliency", "saliency"]})


def test_labels_that_name_the_same_files_are_refused_with_both_labels():
    methods = [{"name": "saliency", "label": "a/b"}, {"name": "saliency", "label": "a_b"}]
    with pytest.raises(ConfigError) as info:
        load_config({**BASE, "methods": methods})
    message = str(info.value)
    assert "'a/b' and 'a_b' both write their outputs as 'a_b'" in message
    assert "set distinct `label`s" in message
    # The default label (the name) takes part too.
    with pytest.raises(ConfigError, match="'saliency' and 'saliency/' both write"):
        load_config({**BASE, "methods": ["saliency", {"name": "saliency", "label": "saliency/"}]})


def test_labels_are_sanitised_by_the_one_function_the_run_uses():
    from xai_core.runner import config, state

    assert state.safe_label is config.safe_label
    assert config.safe_label("../../escape") == "escape"
    assert config.safe_label("a b/c") == "a_b_c"
    assert config.safe_label("..") == "method"
    distinct = [{"name": "saliency", "label": "a_b"}, {"name": "saliency", "label": "a-b"}]
    assert len(load_config({**BASE, "methods": distinct}).methods) == 2


@pytest.mark.parametrize("methods", [[], None])
def test_a_config_without_methods_is_refused(methods):
    source = {"inputs": ["sample:cat"]} if methods is None else {**BASE, "methods": methods}
    with pytest.raises(ConfigError, match=r"lists no methods.*`xai list attributors`"):
        load_config(source)
    with pytest.raises(ConfigError, match="lists no methods"):
        load_config(BASE, ["methods=[]"])


def test_misspelt_names_are_reported_before_missing_methods():
    with pytest.raises(UnknownNameError, match="pointing_game"):
        load_config({"metrics": ["pointing_gam"]})


def test_every_error_across_sections_is_reported_at_once():
    """A bad rule in a method, an unknown metric, a bad device and a bad figure option: one
    ConfigError names all four, each with the path the user wrote."""
    with pytest.raises(ConfigError) as info:
        load_config({
            "inputs": ["sample:cat"],
            "methods": [{"name": "occlusion", "params": {"window": 8, "stride": 40}}],
            "metrics": ["deletoin"],
            "device": "gpu",
            "figure": {"cmap": "no-such-map"},
        })
    message = str(info.value)
    assert message.startswith("4 problems in the config")
    for part in ("methods[0].params.stride", "deletoin", "'device'", "cmap"):
        assert part in message, (part, message)


def test_xai_config_check(tmp_path, capsys):
    from xai_core.cli import main

    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("inputs: [sample:cat]\nmethods: [saliency]\n")
    bad.write_text("inputs: [sample:cat]\nmethods: [{name: occlusion, params: {window: 8, "
                   "stride: 40}}]\nseed: -1\n")
    assert main(["config", "--check", str(good)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: ") and "1 method(s)" in out
    assert main(["config", "--check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "methods[0].params.stride" in err and "seed" in err


def test_workers_auto_is_the_default_and_reads_the_device_and_cores():
    from xai_core.runner.config import auto_workers

    config = load_config({"inputs": ["x.png"], "methods": ["saliency"]}, check_names=False)
    assert config.workers == "auto"
    assert auto_workers("auto", "cpu", cores=2) == 0 == auto_workers("auto", "cpu", cores=4)
    assert auto_workers("auto", "cpu", cores=16) == 2 and auto_workers("auto", "cpu", 200) == 8
    assert auto_workers("auto", "cuda:0", cores=2) == 1 and auto_workers("auto", "cuda", 64) == 8
    assert auto_workers(3, "cpu", cores=2) == 3  # a number is kept as given


@pytest.mark.parametrize("value, message", [
    ("auot", "did you mean 'auto'"), ("four", "or auto"), (-1, "must be at least 0"),
])
def test_a_bad_workers_value_is_refused_with_what_to_write(value, message):
    with pytest.raises(ConfigError, match=message):
        load_config({"inputs": ["x.png"], "methods": ["saliency"], "workers": value},
                    check_names=False)
