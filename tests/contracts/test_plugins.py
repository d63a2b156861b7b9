"""The plugin manager: entry points, registration errors, environment variables."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

import xai_core
from xai_core import plugins
from xai_core.errors import PluginError

ROOT = Path(__file__).resolve().parents[2]


def _channel_sum(technique_name: str) -> type[xai_core.Attributor]:
    """A technique named ``technique_name``: the input summed over colour channels."""

    class Technique(xai_core.Attributor):
        def compute(self, model, inputs, targets, context):
            return inputs.sum(dim=1)

    Technique.name = technique_name
    return Technique


def test_builtin_plugins_come_from_the_entry_point_group():
    infos = {p.name: p for p in plugins.loaded_plugins()}
    assert infos["saliency"].distribution == "xai-core"
    assert infos["saliency"].provides == {"attributors": ["saliency"]}
    assert "efficientnet_lite0" in infos["models"].provides["models"]


def test_runtime_plugin_is_usable(tiny_resnet, images64, register_attributors):
    register_attributors("mine", _channel_sum("channel_sum"))
    assert "channel_sum" in xai_core.list_attributors()
    result = xai_core.get_attributor("channel_sum").attribute(tiny_resnet, images64, 0)
    assert result.maps.shape == (2, 64, 64)


def test_duplicate_names_name_both_plugins(register_attributors):
    register_attributors("first", _channel_sum("dupe"))
    register_attributors("second", _channel_sum("dupe"))
    with pytest.raises(
        PluginError,
        match="'dupe' is registered twice: by plugin '(first|second)' "
        "and by plugin '(second|first)'",
    ):
        plugins.get_registries()


def test_registering_something_that_is_not_a_technique(register_attributors):
    register_attributors("bad", object)
    with pytest.raises(PluginError, match="plugin 'bad' passed .* subclass of xai_core.Attributor"):
        plugins.get_registries()


def test_misspelled_hook_is_caught_by_check_pending():
    module = types.ModuleType("typo")

    @xai_core.hookimpl
    def register_atributors(register):
        pass

    module.register_atributors = register_atributors
    with pytest.raises(
        PluginError, match="register_atributors.*hooks xai-core knows are: register_attributors"
    ):
        xai_core.register_plugin(module, name="typo")


def test_unknown_technique_lists_close_matches():
    with pytest.raises(xai_core.errors.UnknownNameError, match="did you mean 'saliency'"):
        xai_core.get_attributor("saliencyy")


def _xai(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "xai_core.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or ROOT,
        timeout=300,
    )


@pytest.mark.slow
def test_allow_list_and_listing_environment_variables():
    result = _xai(
        "list", "plugins", env={"XAI_CORE_PLUGINS": "saliency,models", "XAI_CORE_LIST_PLUGINS": "1"}
    )
    assert result.returncode == 0, result.stderr
    listed = [line.split()[0] for line in result.stdout.splitlines()]
    assert listed == ["models", "saliency"]
    assert "xai-core: loaded plugin saliency from xai-core" in result.stderr


@pytest.mark.slow
def test_third_party_plugin_installed_with_pip_works_from_the_cli(installed_example, tmp_path):
    site, _source = installed_example
    env = {"PYTHONPATH": str(site), "XAI_CORE_DISABLE_PLUGIN_AUTOLOAD": "0"}
    listed = _xai("list", "attributors", env=env)
    assert listed.returncode == 0, listed.stderr
    assert any(
        line.split()[:2] == ["sobel_edges", "[sobel]"] for line in listed.stdout.splitlines()
    )

    explained = _xai(
        "explain",
        "sample:coffee",
        "--method",
        "sobel_edges",
        "--out",
        str(tmp_path / "explain"),
        env=env,
    )
    assert explained.returncode == 0, explained.stderr
    assert (tmp_path / "explain" / "results.json").is_file()
    assert (tmp_path / "explain" / "maps" / "coffee" / "sobel_edges.npz").is_file()

    config = tmp_path / "run.yaml"
    config.write_text(
        "inputs: [sample:cat]\nmethods:\n  - name: sobel_edges\n    params: {smooth: 3}\n"
        f"output_dir: {tmp_path / 'run'}\n"
    )
    ran = _xai("run", str(config), env=env)
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "run" / "figures" / "cat" / "sobel_edges.png").is_file()

    # With autoloading disabled the third-party plugin is ignored, the built-ins still load.
    off = _xai("list", "attributors", env={**env, "XAI_CORE_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert "sobel_edges" not in off.stdout and "saliency" in off.stdout


def test_model_and_synthesizer_hooks_register_usable_things(images64):
    import torch

    module = types.ModuleType("zoo")

    def load_toy(pretrained: bool = True, checkpoint=None, width: int = 4):
        net = torch.nn.Sequential(
            torch.nn.Conv2d(3, width, 3),
            torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(),
            torch.nn.Linear(width, 5),
        )
        return xai_core.ModelHandle("toy", net, class_names=list("abcde"))

    class Nudge(xai_core.Synthesizer):
        """One signed-gradient step towards the target class."""

        name = "nudge"

        @dataclass
        class Params:
            step: float = 0.1

        def generate(self, model, targets, images, context):
            x = images.clone().requires_grad_(True)
            score = model(context.handle.normalize(x)).gather(1, targets[:, None]).sum()
            (grad,) = torch.autograd.grad(score, x)
            out = (x + self.params.step * grad.sign()).clamp(0, 1).detach()
            with torch.no_grad():
                probs = model(context.handle.normalize(out)).softmax(1)
            records = [
                {
                    "target": int(t),
                    "target_probability": float(p[t]),
                    "predicted": int(p.argmax()),
                    "predicted_probability": float(p.max()),
                    "success": bool(p.argmax() == t),
                    "iterations": 1,
                    "extra": {"step": self.params.step},
                }
                for p, t in zip(probs, targets)
            ]
            return out, records

    @xai_core.hookimpl
    def register_models(register):
        register("toy", load_toy, description="a toy model")
        register(
            "toyzoo/*", lambda arch, **kw: load_toy(width=int(arch)), lister=lambda: ["2", "8"]
        )

    @xai_core.hookimpl
    def register_synthesizers(register):
        register(Nudge)

    module.register_models = register_models
    module.register_synthesizers = register_synthesizers
    xai_core.register_plugin(module, name="zoo")

    assert xai_core.load_model("toy", width=3).module[0].out_channels == 3
    assert xai_core.load_model("toyzoo/8").module[0].out_channels == 8
    assert {"toy", "toyzoo/2", "toyzoo/8"} <= set(xai_core.list_models("toy*"))
    result = xai_core.get_synthesizer("nudge").synthesize(
        xai_core.load_model("toy"), "c", images=torch.rand(2, 3, 16, 16)
    )
    assert result.targets.tolist() == [2, 2] and result.images.shape == (2, 3, 16, 16)
    assert "nudge" in xai_core.list_synthesizers()
