"""Contract tests any plugin author can run on their own techniques, metrics and models.

    from xai_core.testing import check_attributor, check_metric, check_model, check_synthesizer

    def test_my_plugin_keeps_the_contract():
        check_attributor("my_technique")
        check_synthesizer("my_synthesizer")
        check_metric("my_metric")
        check_model("my_model")

Each kit builds a small model (or takes yours), calls the plugin's class the way xai-core
will, and raises :class:`ContractError` listing every broken rule, each under its check's name, so
one failing test shows all of them at once. A kit runs its table of checks, one function each
(:data:`ATTRIBUTOR_TABLE`, :data:`SYNTHESIZER_TABLE`, :data:`METRIC_TABLE`, :data:`MODEL_TABLE`:
name, function, the rule in one line); ``checks=`` takes a subset of the names
(:data:`ATTRIBUTOR_CHECKS` and the like), and ``docs/plugins.md`` lists every table.

xai-core runs the same checks over every built-in plugin (``tests/contracts/test_contract.py`` and
``tests/contracts/test_testing.py``), so a third-party plugin is held to exactly the rules the
built-ins keep.
"""

from xai_core.testing.common import Check, ContractError, TinyNet, default_params, hook_count
from xai_core.testing.metrics import METRIC_CHECKS, METRIC_TABLE, check_metric
from xai_core.testing.models import MODEL_CHECKS, MODEL_TABLE, check_model
from xai_core.testing.techniques import (
    ATTRIBUTOR_CHECKS,
    ATTRIBUTOR_TABLE,
    SYNTHESIZER_CHECKS,
    SYNTHESIZER_TABLE,
    check_attributor,
    check_synthesizer,
)

__all__ = [
    "ContractError",
    "Check",
    "ATTRIBUTOR_TABLE",
    "SYNTHESIZER_TABLE",
    "METRIC_TABLE",
    "MODEL_TABLE",
    "ATTRIBUTOR_CHECKS",
    "SYNTHESIZER_CHECKS",
    "METRIC_CHECKS",
    "MODEL_CHECKS",
    "TinyNet",
    "default_params",
    "hook_count",
    "check_attributor",
    "check_synthesizer",
    "check_metric",
    "check_model",
]
