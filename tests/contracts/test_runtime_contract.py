"""Run-time contract checks: a broken technique fails its own items, named, never the run;
parameter bounds and ``__post_init__`` rules fail at config-check time."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch

import xai_core
from xai_core.contracts.params import build_params
from xai_core.contracts.synthesizer import SynthesisRecord
from xai_core.errors import ConfigError, PluginError
from xai_core.plugins.manager import hookimpl, register_plugin
from xai_core.runner.config import load_config
from xai_core.runner.run import run_experiment
from xai_core.store import load_items

TINY = ["model.name=timm/resnet10t", "model.pretrained=false", "workers=0", "figures=false"]


class NanMap(xai_core.Attributor):
    name = "nan_map"

    def compute(self, model, inputs, targets, context):
        return torch.full((len(inputs), *inputs.shape[2:]), float("nan"))


class IntegerMap(xai_core.Attributor):
    name = "integer_map"

    def compute(self, model, inputs, targets, context):
        return torch.ones((len(inputs), *inputs.shape[2:]), dtype=torch.long)


class LeakyHook(xai_core.Attributor):
    name = "leaky_hook"

    def compute(self, model, inputs, targets, context):
        next(iter(model.children())).register_forward_hook(lambda *a: None)
        return inputs.sum(dim=1)


class TooFewRecords(xai_core.Synthesizer):
    name = "too_few_records"

    def generate(self, model, targets, images, context):
        record = SynthesisRecord(int(targets[0]), 0.5, int(targets[0]), 0.5, True, 1)
        return images, [record][: len(targets) - 1]


class BrokenPlugin:
    @hookimpl
    def register_attributors(self, register):
        for cls in (NanMap, IntegerMap, LeakyHook):
            register(cls)

    @hookimpl
    def register_synthesizers(self, register):
        register(TooFewRecords)


@pytest.mark.parametrize(
    "method, problem",
    [
        ("nan_map", "NaN or infinite"),
        ("integer_map", "dtype torch.int64"),
        ("leaky_hook", "left 1 torch hook"),
        ("too_few_records", "0 records for 1 targets"),
    ],
)
def test_a_broken_technique_fails_its_items_naming_the_plugin(tmp_path, method, problem):
    register_plugin(BrokenPlugin(), name="broken")
    config = load_config(None, [*TINY, f"output_dir={tmp_path}", "inputs=[sample:cat]",
                                f"methods=[{method}]"])
    result = run_experiment(config)
    (item,) = result.items
    assert "plugin 'broken'" in item["error"] and problem in item["error"], item["error"]


def test_xai_run_exits_1_when_a_technique_breaks_the_contract(tmp_path):
    from xai_core.cli import main

    register_plugin(BrokenPlugin(), name="broken")
    config = tmp_path / "run.yaml"
    config.write_text("inputs: [sample:cat]\nmethods: [nan_map]\n")
    assert main(["run", str(config), f"output_dir={tmp_path / 'out'}", *TINY]) == 1


def test_a_leaked_hook_is_removed(tiny_resnet, images64):
    with pytest.raises(PluginError, match="leaky_hook.*left 1 torch hook"):
        LeakyHook().attribute(tiny_resnet, images64, 0)
    assert not any(m._forward_hooks for m in tiny_resnet.module.modules())


def test_gradients_work_inside_inference_mode(tiny_resnet, images64):
    class InputGradient(xai_core.Attributor):
        name = "input_gradient"

        def compute(self, model, inputs, targets, context):
            inputs = inputs.clone().requires_grad_(True)
            score = model(inputs).gather(1, targets[:, None]).sum()
            (grad,) = torch.autograd.grad(score, inputs)
            return grad.abs().sum(dim=1)

    expected = InputGradient().attribute(tiny_resnet, images64, 0).maps
    with torch.inference_mode():
        inputs = images64.clone()
        maps = InputGradient().attribute(tiny_resnet, inputs, 0).maps
    assert torch.allclose(maps, expected)


@dataclass
class Bounded:
    steps: int = field(default=8, metadata={"min": 1})
    rate: float = field(default=0.1, metadata={"min_exclusive": 0, "max": 1})
    budget: float | None = field(default=None, metadata={"min": 0.5})

    def __post_init__(self) -> None:
        if self.steps == 7:
            raise ValueError("steps must not be 7")


def test_bounds_and_post_init_name_the_key():
    where = "methods[0].params"
    with pytest.raises(ConfigError, match=r"params.steps': must be at least 1, got 0"):
        build_params(Bounded, {"steps": 0}, where)
    with pytest.raises(ConfigError, match="rate': must be greater than 0, got 0.0"):
        build_params(Bounded, {"rate": 0.0}, where)
    with pytest.raises(ConfigError, match="rate': must be at most 1, got 2.0"):
        build_params(Bounded, {"rate": 2.0}, where)
    with pytest.raises(ConfigError, match=r"at 'methods\[0\].params': steps must not be 7"):
        build_params(Bounded, {"steps": 7}, where)
    assert build_params(Bounded, {"budget": None}, where).budget is None


def test_technique_bounds_fail_at_config_check_before_any_model_loads():
    with pytest.raises(ConfigError, match=r"params.steps': must be at least 1, got 0"):
        load_config(None, ["methods=[{name: pgd, params: {steps: 0}}]"])
    with pytest.raises(ConfigError, match="blur_sigma must be positive when blurring"):
        load_config(None, ["methods=[{name: class_visualization, params: {blur_sigma: 0}}]"])


def test_config_bounds():
    with pytest.raises(ConfigError, match="'batch_size': must be at most 65536"):
        load_config(None, ["batch_size=100000000000000000000"])
    with pytest.raises(ConfigError, match="'benchmark.images': must be at least 1, got 0"):
        load_config(None, ["benchmark.images=0"])


def test_records_from_dicts_name_missing_fields():
    with pytest.raises(PluginError, match="without predicted, predicted_probability"):
        SynthesisRecord.from_mapping({"target": 1, "target_probability": 0.5, "success": True,
                                      "iterations": 1}, "synthesizer 'x'")
    record = SynthesisRecord.from_mapping({"target": 1, "target_probability": 0.5, "predicted": 1,
                                           "predicted_probability": 0.5, "success": True,
                                           "iterations": 1, "note": "hi"})
    assert record.extra == {"note": "hi"} and record.as_dict()["note"] == "hi"


def _deep_helper(inputs):
    raise ValueError("the helper cannot handle this input")


class RaisesDeep(xai_core.Attributor):
    name = "raises_deep"

    def compute(self, model, inputs, targets, context):
        return _deep_helper(inputs)


class RaisingPlugin:
    @hookimpl
    def register_attributors(self, register):
        register(RaisesDeep)


def test_a_failed_item_keeps_its_traceback_and_debug_prints_it(tmp_path, capsys):
    from xai_core.cli import main

    register_plugin(RaisingPlugin(), name="raising")
    config = tmp_path / "run.yaml"
    config.write_text("inputs: [sample:cat]\nmethods: [raises_deep]\n")
    out_dir = tmp_path / "out"
    assert main(["--debug", "run", str(config), f"output_dir={out_dir}", *TINY]) == 1
    (item,) = load_items(out_dir)
    assert item["error"].startswith("ValueError: the helper cannot handle this input")
    assert item["traceback"].startswith("Traceback (most recent call last):")
    assert "in _deep_helper" in item["traceback"]
    assert item["traceback"].rstrip().endswith(item["error"].splitlines()[0])
    out = capsys.readouterr().out
    assert "failed: sample:cat / raises_deep: ValueError" in out
    assert "    Traceback (most recent call last):" in out and "in _deep_helper" in out
    # Without --debug the summary stays one line per failed item.
    assert main(["run", str(config), f"output_dir={out_dir}", *TINY, "--force"]) == 1
    assert "Traceback" not in capsys.readouterr().out


def test_failure_details_keep_the_chained_traceback():
    from xai_core.runner.state import failure, failure_details

    try:
        try:
            _deep_helper(None)
        except ValueError as exc:
            raise RuntimeError("wrapped") from exc
    except RuntimeError as exc:
        details = failure_details(exc)
        assert details["error"] == failure(exc) == "RuntimeError: wrapped"
    assert set(details) == {"error", "traceback"}
    assert "in _deep_helper" in details["traceback"]
    assert "direct cause of the following exception" in details["traceback"]
