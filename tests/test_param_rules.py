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
