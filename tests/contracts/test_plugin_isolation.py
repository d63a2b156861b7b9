"""Broken installed plugins are contained; plugin commands, ``plugin:name``, ``xai describe``.

The installed plugins here are real distributions as far as :mod:`importlib.metadata` knows: a
``NAME-0.1.dist-info`` folder (``METADATA``, ``entry_points.txt``, ``RECORD``) and a module, written
into a temporary folder that goes on ``sys.path`` (in process) or ``PYTHONPATH`` (a subprocess).
Nothing is downloaded or installed with pip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import xai_core
from xai_core import plugins
from xai_core.cli import _parser, main
from xai_core.errors import PluginError, XaiError
from xai_core.plugins import cache, hookspecs, manager
from xai_core.runner.config import load_config

ROOT = Path(__file__).resolve().parents[2]

GOOD = '''
from dataclasses import dataclass

import xai_core


class ChannelSum(xai_core.Attributor):
    """Sum of the input over colour channels: a technique that needs no gradients."""

    name = "channel_total"
    summary = "sum over colour channels"

    @dataclass
    class Params:
        pass

    def compute(self, model, inputs, targets, context):
        return inputs.sum(dim=1)


@xai_core.hookimpl
def register_attributors(register):
    register(ChannelSum)
'''

BROKEN = {
    # entry-point name: (distribution, module source, what the warning must say)
    "brokenimport": (
        "broken-import",
        "import xai_core_no_such_module_anywhere\n",
        "failed to import: ModuleNotFoundError",
    ),
    # Registers a free name first, then a taken one: neither may be left behind.
    "takenname": (
        "taken-name",
        GOOD.replace("channel_total", "only_in_takenname").replace(
            "register(ChannelSum)", "register(ChannelSum)\n    register(Impostor)"
        )
        + "\n\nclass Impostor(ChannelSum):\n    name = 'saliency'\n",
        "technique name 'saliency' is registered twice: by plugin 'saliency'",
    ),
    "misspelt": (
        "misspelt-hook",
        "import xai_core\n\n\n@xai_core.hookimpl\ndef register_atributors(register):\n    pass\n",
        "unknown hook 'register_atributors' in plugin 'misspelt'; did you mean "
        "'register_attributors'?",
    ),
}


def _write_distribution(site: Path, ep_name: str, dist: str, source: str) -> None:
    module = f"{ep_name}_xai_plugin"
    (site / f"{module}.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[xai_core]\n{ep_name} = {module}\n")
    (info / "RECORD").write_text(f"{module}.py,,\n{info.name}/METADATA,,\n")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A folder holding one good and three broken plugin distributions."""
    site = tmp_path_factory.mktemp("site")
    _write_distribution(site, "good", "good-plugin", GOOD)
    for ep_name, (dist, source, _) in BROKEN.items():
        _write_distribution(site, ep_name, dist, source)
    return site


@pytest.fixture
def installed(site, monkeypatch, tmp_path):
    """The distributions of ``site`` installed in this process, autoloading on, no warning
    remembered from an earlier test (in this process or in the cache folder)."""
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("XAI_CORE_DISABLE_PLUGIN_AUTOLOAD", "0")
    monkeypatch.setenv("XAI_CORE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cache, "printed_warnings", set())
    plugins.reset()
    return site


def _xai(site: Path, *args: str, cache: Path, **env: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        "XAI_CORE_DISABLE_PLUGIN_AUTOLOAD": "0",
        "XAI_CORE_CACHE_DIR": str(cache),
        "OMP_NUM_THREADS": "1",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "xai_core.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )


def _assert_each_broken_plugin_warned_once(stderr: str, details: bool = False) -> None:
    """One line per broken plugin: short (the plugin, the problem, the fix, where to read
    more), or with ``details`` (``--debug``) also the allow-list that disables it."""
    for ep_name, (dist, _, reason) in BROKEN.items():
        lines = [line for line in stderr.splitlines() if f"plugin '{ep_name}'" in line]
        assert len(lines) == 1, stderr
        assert lines[0].startswith(f"xai-core: skipped broken plugin '{ep_name}'"), lines[0]
        assert f"{dist} 0.1" in lines[0] and reason in lines[0], lines[0]
        assert f"`pip uninstall {dist}`" in lines[0], lines[0]
        if not details:
            assert "`xai list plugins`" in lines[0] and len(lines[0]) <= 300, lines[0]
            assert "XAI_CORE_PLUGINS" not in lines[0], lines[0]
            continue
        allow = lines[0].split("XAI_CORE_PLUGINS=")[1].split()[0].split(",")
        assert ep_name not in allow and {"saliency", "good"} <= set(allow), lines[0]


# In process -------------------------------------------------------------------------------------


def test_broken_installed_plugins_are_skipped_with_one_warning_each(installed, capsys):
    assert "channel_total" in xai_core.list_attributors()
    assert xai_core.get_attributor("saliency").__class__.__module__.startswith("xai_core_plugins")
    infos = {p.name: p for p in plugins.loaded_plugins(include_broken=True)}
    for ep_name, (_, _, reason) in BROKEN.items():
        assert infos[ep_name].status == "broken" and reason in infos[ep_name].reason
        assert infos[ep_name].provides == {}
        assert plugins.get_plugin_manager().get_plugin(ep_name) is None
    assert infos["good"].ok and infos["good"].source == "good-plugin 0.1"
    assert {p.name for p in plugins.loaded_plugins()}.isdisjoint(BROKEN)
    _assert_each_broken_plugin_warned_once(capsys.readouterr().err)

    # Once per process: reloading the plugins finds them broken again, but says nothing.
    plugins.reset()
    plugins.get_registries()
    assert capsys.readouterr().err == ""


def test_a_colliding_plugin_leaves_nothing_behind(installed):
    registry = plugins.get_registries().techniques
    assert registry.entry("saliency").plugin == "saliency"
    assert "only_in_takenname" not in registry and "takenname:saliency" not in registry


def test_a_name_of_a_broken_plugin_says_which_plugin_and_why(installed):
    # The whole plugin stays out, its healthy technique too; asking for it says so.
    for name in ("only_in_takenname", "takenname:only_in_takenname"):
        with pytest.raises(xai_core.errors.UnknownNameError) as caught:
            xai_core.get_attributor(name)
        message = str(caught.value)
        assert "Plugin 'takenname' (taken-name 0.1) provides it but was skipped" in message
        assert "registered twice" in message and "`pip uninstall taken-name`" in message
    with pytest.raises(xai_core.errors.UnknownNameError, match="plugin 'takenname'"):
        load_config({"methods": ["only_in_takenname"], "inputs": ["x.png"]})
    # Any other unknown name while plugins are broken names them, in case one provides it.
    with pytest.raises(xai_core.errors.UnknownNameError) as caught:
        xai_core.get_attributor("sobel_edges")
    message = str(caught.value)
    assert "plugin 'brokenimport' (broken-import 0.1) failed to load: entry point" in message
    assert "'misspelt'" in message and "`xai list plugins`" in message
    with pytest.raises(xai_core.errors.UnknownNameError, match="'brokenimport'"):
        xai_core.load_model("no_such_model")


def test_a_healthy_names_error_says_nothing_of_plugins():
    with pytest.raises(xai_core.errors.UnknownNameError) as caught:
        xai_core.get_attributor("salincy")
    assert "plugin" not in str(caught.value)


def test_list_plugins_shows_broken_ones(installed, capsys):
    assert main(["list", "plugins"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for ep_name, (dist, _, reason) in BROKEN.items():
        (at,) = [i for i, line in enumerate(lines) if line.split()[0] == ep_name]
        assert f"({dist} 0.1) BROKEN: " in lines[at] and reason in lines[at]
        assert lines[at + 1].lstrip().startswith(f"Fix: update {dist} or tell its authors")
        allow = lines[at + 1].split("XAI_CORE_PLUGINS=")[1].split()[0].split(",")
        assert ep_name not in allow and {"saliency", "good"} <= set(allow), lines[at + 1]
    assert any(line.split()[:2] == ["good", "(good-plugin"] for line in out.splitlines())


def test_broken_builtin_plugin_stays_a_hard_error():
    info = plugins.PluginInfo("cam", "xai_core_plugins.cam", "xai-core", "0.1.0", entry_point=True)
    with pytest.raises(PluginError, match="built-in plugin 'cam' is broken: boom. This is a bug"):
        manager._fail(info, "boom")


def test_every_name_is_also_reachable_as_plugin_colon_name(tiny_resnet, images64):
    assert type(xai_core.get_attributor("saliency:saliency")).name == "saliency"
    assert xai_core.get_metric("metrics:deletion").name == "deletion"
    config = load_config({"methods": [{"name": "saliency:saliency"}, "cam:grad_cam"]})
    assert [m.name for m in config.methods] == ["saliency:saliency", "cam:grad_cam"]
    with pytest.raises(xai_core.errors.UnknownNameError, match="did you mean 'saliency:saliency'"):
        xai_core.get_attributor("saliency:saliencyy")
    # The plugin part must be the one that registered it.
    with pytest.raises(xai_core.errors.UnknownNameError):
        xai_core.get_attributor("cam:saliency")


def test_models_are_reachable_as_plugin_colon_name():
    import torch

    module = types.ModuleType("zoo")

    @xai_core.hookimpl
    def register_models(register):
        register("toy", lambda **kw: xai_core.ModelHandle("toy", torch.nn.Flatten()))

    module.register_models = register_models
    xai_core.register_plugin(module, name="zoo")
    assert xai_core.load_model("zoo:toy").name == "zoo:toy"


# register_commands ------------------------------------------------------------------------------


def _command_plugin(name: str = "hello", fail: bool = False) -> types.ModuleType:
    module = types.ModuleType("greeter")

    def configure(parser):
        parser.add_argument("--who", default="world")

    def handler(args):
        if fail:
            raise XaiError(f"cannot greet {args.who}; try --who someone")
        print(f"hello, {args.who}")
        return 0

    @xai_core.hookimpl
    def register_commands(register):
        register(name, handler, help="say hello", configure=configure)

    module.register_commands = register_commands
    return module


def test_a_plugin_command_runs_from_the_cli(capsys):
    xai_core.register_plugin(_command_plugin(), name="greeter")
    assert main(["hello", "--who", "tests"]) == 0
    assert capsys.readouterr().out == "hello, tests\n"
    infos = {p.name: p for p in plugins.loaded_plugins()}
    assert infos["greeter"].provides == {"commands": ["hello"]}
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "say hello" in capsys.readouterr().out


def test_a_plugin_command_errors_like_a_builtin_one(capsys):
    xai_core.register_plugin(_command_plugin(fail=True), name="greeter")
    assert main(["hello"]) == 2
    _, err = capsys.readouterr()
    assert err == "error: cannot greet world; try --who someone\n"
    with pytest.raises(XaiError, match="cannot greet"):
        main(["--debug", "hello"])


def test_a_command_may_not_take_a_builtin_name(capsys):
    xai_core.register_plugin(_command_plugin("list"), name="greeter")
    assert main(["list", "samples"]) == 2
    assert "'list', which is a built-in xai command; pick another name" in capsys.readouterr().err


def test_benchmark_comes_from_the_groundtruth_plugin():
    registry = plugins.get_registries().commands
    assert registry.entry("benchmark").plugin == "groundtruth"
    for module in (ROOT / "xai_core" / "cli").glob("*.py"):
        assert "xai_core_plugins" not in module.read_text(), module


def test_builtin_commands_are_the_ones_the_hookspec_reserves():
    subparsers = next(a for a in _parser([])._actions if a.dest == "command")
    assert tuple(subparsers.choices) == hookspecs.BUILTIN_COMMANDS


# xai describe and xai new-plugin --------------------------------------------------------------


def test_describe_a_builtin_technique(capsys):
    assert main(["describe", "saliency"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("saliency (attributor)\n")
    assert "qualified name: saliency:saliency" in out
    assert "provided by:    plugin saliency (xai-core " in out
    assert "Simonyan" in out
    assert "  reduction: str = 'max' (one of 'max', 'sum', 'mean', 'l2')" in out


def test_describe_a_plugin_technique_and_a_model(capsys, register_attributors):
    class Blur(xai_core.Attributor):
        """Blurs the input and sums it over colour channels."""

        name = "blurry"
        summary = "a blurred channel sum"

        @dataclass
        class Params:
            #: Width of the blur in pixels.
            width: int = field(default=3, metadata={"min": 1, "max": 9})
            #: Edge handling.
            mode: str = field(default="reflect", metadata={"choices": ("reflect", "zeros")})

        def compute(self, model, inputs, targets, context):
            return inputs.sum(dim=1)

    register_attributors("mine", Blur)
    assert main(["describe", "mine:blurry"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "blurry (attributor)\n"
        "  qualified name: mine:blurry\n"
        "  provided by:    plugin mine (local)\n"
    )
    assert "Blurs the input" in out
    assert "  width: int = 3 (must be at least 1; must be at most 9)\n" in out
    assert "      Width of the blur in pixels.\n" in out
    assert "  mode: str = 'reflect' (one of 'reflect', 'zeros')\n" in out

    assert main(["describe", "efficientnet_lite0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("efficientnet_lite0 (model)") and "pretrained: bool = True" in out


def test_describe_an_unknown_name_suggests_close_ones(capsys):
    assert main(["describe", "salincy"]) == 2
    assert "did you mean 'saliency'" in capsys.readouterr().err


def test_new_plugin_refuses_a_taken_name(tmp_path, capsys, register_attributors):
    assert main(["new-plugin", "saliency", "--dir", str(tmp_path / "a")]) == 2
    assert "the entry point saliency = " in capsys.readouterr().err

    class Mine(xai_core.Attributor):
        name = "my_thing"

        def compute(self, model, inputs, targets, context):
            return inputs.sum(dim=1)

    register_attributors("mine", Mine)
    assert main(["new-plugin", "my-thing", "--dir", str(tmp_path / "b")]) == 2
    assert "technique name 'my_thing' is taken by plugin 'mine'" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# A subprocess: the real thing -------------------------------------------------------------------


@pytest.mark.slow
def test_cli_works_beside_broken_plugins_and_warns_once_per_change(site, tmp_path):
    cache = tmp_path / "cache"
    first = _xai(site, "list", cache=cache)
    assert first.returncode == 0, first.stderr
    _assert_each_broken_plugin_warned_once(first.stderr)
    # The same plugins, still broken: said already, so not on every command.
    for args in (["list", "plugins"], ["describe", "good:channel_total"]):
        result = _xai(site, *args, cache=cache)
        assert result.returncode == 0, result.stderr
        assert "broken plugin" not in result.stderr, result.stderr
    assert "channel_total" in _xai(site, "list", "attributors", cache=cache).stdout
    # --debug shows the details every time (after the command word too).
    debug = _xai(site, "list", "plugins", "--debug", cache=cache)
    assert debug.returncode == 0, debug.stderr
    _assert_each_broken_plugin_warned_once(debug.stderr, details=True)
    # Another set of plugins is a change: its broken ones are named again.
    other = _xai(site, "list", cache=cache, XAI_CORE_PLUGINS="saliency,good,brokenimport")
    assert other.returncode == 0, other.stderr
    assert [line for line in other.stderr.splitlines() if "broken plugin" in line] == [
        line for line in first.stderr.splitlines() if "plugin 'brokenimport'" in line
    ]


@pytest.mark.slow
def test_explain_works_beside_broken_plugins(site, tmp_path):
    out = tmp_path / "explain"
    result = _xai(
        site,
        "explain",
        "sample:cat",
        "--method",
        "saliency",
        "--method",
        "good:channel_total",
        "--out",
        str(out),
        cache=tmp_path / "cache",
    )
    assert result.returncode == 0, result.stderr
    _assert_each_broken_plugin_warned_once(result.stderr)
    maps = sorted(p.name for p in (out / "maps" / "cat").glob("*.npz"))
    assert maps == ["good_channel_total.npz", "saliency.npz"]


# register_presets -------------------------------------------------------------------------------


def _preset_plugin(technique: str = "saliency", name: str = "signed_saliency"):
    module = types.ModuleType("presets")

    @xai_core.hookimpl
    def register_presets(register):
        register(name, technique, {"abs": False}, description="saliency without abs")

    module.register_presets = register_presets
    return module


def test_a_plugin_preset_works_in_configs_and_the_api(tmp_path):
    from xai_core.plugins.factory import build_entries
    from xai_core.runner.config import load_config

    xai_core.register_plugin(_preset_plugin(), name="presets")
    assert "signed_saliency" in xai_core.list_presets()
    method = xai_core.get_attributor("signed_saliency")
    assert method.name == "saliency" and method.params.abs is False
    assert xai_core.get_attributor("signed_saliency", abs=True).params.abs is True
    config = load_config({"inputs": ["x.png"], "methods": ["signed_saliency"],
                          "model": {"name": "timm/resnet10t"}})
    [(label, technique)] = build_entries(config.methods, "methods")
    assert label == "signed_saliency" and technique.params.abs is False
    with pytest.raises(XaiError, match="did you mean 'signed_saliency'"):
        xai_core.get_attributor("signed_salincy")


def test_a_preset_of_an_unknown_technique_or_with_bad_settings_fails_when_used():
    xai_core.register_plugin(_preset_plugin(technique="salincy", name="odd"), name="presets")
    with pytest.raises(XaiError, match="unknown .*'salincy'.*did you mean 'saliency'"):
        xai_core.get_attributor("odd")


def test_a_preset_may_not_have_a_name_with_spaces():
    xai_core.register_plugin(_preset_plugin(name="two words"), name="presets")
    with pytest.raises(PluginError, match="preset name"):
        xai_core.list_presets()
