"""Params checks report every error at once, and a params class's own ``check()`` rules name
the field they break (see :mod:`xai_core.contracts.params`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from xai_core.contracts.params import build_params, params_errors
from xai_core.errors import ConfigError


@dataclass
class Window:
    window: int = field(default=32, metadata={"min": 1})
    stride: int = field(default=16, metadata={"min": 1})
    mode: str = field(default="a", metadata={"choices": ("a", "b")})

    def check(self) -> Iterator[tuple[str, str]]:
        if self.stride > self.window:
            yield "stride", f"{self.stride} is larger than window {self.window}"


def test_every_error_is_reported_at_once_with_its_path():
    where = "methods[0].params"
    _, errors = params_errors(Window, {"window": 0, "mode": "c", "strid": 1}, where)
    assert len(errors) == 1  # unknown keys first: the values are not read until the keys fit
    _, errors = params_errors(Window, {"window": 0, "stride": 0, "mode": "c"}, where)
    assert [e.split("': ")[0] for e in errors] == [
        f"bad config value at '{where}.{key}" for key in ("window", "stride", "mode")
    ]
    with pytest.raises(ConfigError) as caught:
        build_params(Window, {"window": 0, "stride": 0}, where)
    assert str(caught.value).count("\n") == 1


def test_a_cross_field_rule_names_its_field():
    with pytest.raises(ConfigError, match=r"'methods\[0\]\.params\.stride': 40 is larger than "
                                          r"window 32"):
        build_params(Window, {"stride": 40}, "methods[0].params")


# --- every declared rule of every registered technique and metric -----------------------------


def _registered():
    from xai_core.contracts.metric import Metric
    from xai_core.contracts.technique import Technique
    from xai_core.plugins.factory import (
        list_attributors,
        list_metrics,
        list_synthesizers,
        technique_class,
    )

    kinds = [(n, Technique, "methods") for n in list_attributors() + list_synthesizers()]
    kinds += [(n, Metric, "metrics") for n in list_metrics()]
    return [(name, technique_class(name, kind), section) for name, kind, section in kinds]


def _breaking(f) -> list:
    """Values outside a field's declared choices and bounds (an exclusive bound is itself out)."""
    meta, values = f.metadata, []
    if "choices" in meta:
        values.append("no-such-choice")
    offsets = {"min": -1, "min_exclusive": 0, "max": 1, "max_exclusive": 0}
    values += [meta[key] + offset for key, offset in offsets.items() if key in meta]
    return values


def _violations():
    import dataclasses

    cases = []
    for name, cls, section in _registered():
        for f in dataclasses.fields(cls.Params):
            cases += [(name, section, {f.name: value}, f.name) for value in _breaking(f)]
        for example in getattr(cls.Params, "violations", ()):
            cases.append((name, section, dict(example), next(iter(example))))
    return cases


def _config(name: str, section: str, params: dict) -> dict:
    entry = {"name": name, "params": params}
    if section == "metrics":
        return {"inputs": ["sample:cat"], "methods": ["saliency"], "metrics": [entry]}
    return {"inputs": ["sample:cat"], "methods": [entry]}


@pytest.mark.parametrize(
    "name, section, params, key", _violations(),
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_every_declared_rule_of_every_plugin_refuses_the_config_with_its_path(
    name, section, params, key
):
    from xai_core.runner.config import load_config

    with pytest.raises(ConfigError) as info:
        load_config(_config(name, section, params))
    assert f"'{section}[0].params.{key}'" in str(info.value), str(info.value)


def test_the_rule_table_covers_the_plugins_cross_field_rules():
    """Each technique whose params have a ``check()`` lists examples that break it, so the
    registry-wide test above reaches every rule."""
    for name, cls, _ in _registered():
        if hasattr(cls.Params, "check"):
            assert getattr(cls.Params, "violations", ()), f"{name}.Params.check has no violations"
    names = {name for name, *_ in _violations()}
    assert {"occlusion", "integrated_gradients", "noise_tunnel"} <= names


#: Parameters that change how work is done, never what it gives: resuming ignores them.
HOW_NOT_WHAT = {"batch_size", "channels_last", "progress", "workers"}


def test_parameters_that_only_change_how_work_runs_say_so():
    """Every registered technique and metric declares ``batch_size``, ``channels_last`` and
    ``progress`` with ``setting()`` (``affects_result: False``), so changing one recomputes
    nothing; every other parameter counts (the default)."""
    import dataclasses

    from xai_core.contracts.params import affects_result

    wrong = [
        f"{name}.{f.name}"
        for name, cls, _ in _registered()
        for f in dataclasses.fields(cls.Params)
        if (f.name in HOW_NOT_WHAT) == affects_result(f)
    ]
    assert not wrong, f"declare these with setting(): {wrong}" if wrong else ""
