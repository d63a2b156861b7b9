"""Every count a technique or metric loops over has a lower bound declared where the parameter is
(``field(metadata={"min": ...})``), so ``steps: 0`` fails at config-check time, never as an
empty result or a division by zero deep in a run."""

from __future__ import annotations

import dataclasses
import re
import typing

import pytest

from xai_core import plugins

#: Parameter names that count loop iterations, samples, masks or batch items.
COUNT = re.compile(r"(^|_)(steps|samples|masks|iterations|batch_size|examples_per_batch)$")


def _count_fields() -> list[tuple[str, str, dict]]:
    plugins.reset()
    registries = plugins.get_registries()
    found = []
    for registry in (registries.techniques, registries.metrics):
        for entry in registry:
            params = entry.obj.Params
            hints = typing.get_type_hints(params)
            for f in dataclasses.fields(params):
                if hints[f.name] is int and COUNT.search(f.name):
                    found.append((entry.name, f.name, dict(f.metadata)))
    plugins.reset()
    return found


FIELDS = _count_fields()
#: Counts whose 0 is a documented choice rather than an empty loop.
ZERO_MEANS_NO_CAP = {("cascading_randomization", "max_steps")}  # 0: every layer its own step


def test_the_built_ins_have_counts_to_check():
    names = {(technique, name) for technique, name, _ in FIELDS}
    assert {("integrated_gradients", "max_steps"), ("noise_tunnel", "samples"),
            ("rise", "n_masks"), ("fooling", "max_iterations")} <= names


@pytest.mark.parametrize(
    "technique, name, metadata", FIELDS, ids=[f"{t}.{n}" for t, n, _ in FIELDS]
)
def test_counts_have_a_lower_bound(technique, name, metadata):
    assert "min" in metadata, f"{technique}.{name} declares no minimum"
    least = 0 if (technique, name) in ZERO_MEANS_NO_CAP else 1
    assert metadata["min"] >= least, f"{technique}.{name} accepts {metadata['min']}"
