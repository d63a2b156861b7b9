"""Contract tests any plugin author can run on their own techniques, metrics and models.

    from xai_core.testing import check_attributor, check_metric, check_model, check_synthesizer

    def test_my_plugin_keeps_the_contract():
        check_attributor("my_technique")
        check_synthesizer("my_synthesizer")
        check_metric("my_metric")
        check_model("my_model")

Each check builds a small model (or takes yours), calls the plugin's class the way xai-core will,
and raises :class:`ContractError` listing every broken rule, so one failing test shows all of
them at once. Techniques (:func:`check_attributor`, :func:`check_synthesizer`):

``shapes``       maps ``[N, H, W]`` at input resolution, targets ``[N]`` (images ``[N,3,H,W]``
                 in ``[0, 1]`` for synthesizers)
``finite``       no NaN or infinity
``hooks``        no torch hook left on any module afterwards
``state``        model mode, ``requires_grad`` flags and weights exactly as before, and the
                 model's logits bit-identical after the call
``batch``        a batch gives the same maps as the items one by one (within tolerance)
``determinism``  two calls with the same seed give identical results
``targets``      several targets per input give the same maps as one call per target
``modes``        (attributors) called from inside ``torch.inference_mode()`` (with inputs made
                 there) and ``torch.no_grad()``, the same maps as outside any mode

Metrics (:func:`check_metric`, :data:`METRIC_CHECKS`): scores ``[N]``, floating point, no
infinity (``nan`` only where a score is undefined), identical for the same seed, what ``requires``
declares refused when missing and nothing undeclared needed, hooks and model state as above.

Models (:func:`check_model`, :data:`MODEL_CHECKS`): a :class:`ModelHandle` whose module is in
eval mode, logits ``[N, num_classes]`` for a batch at ``preprocessing.input_size``, as many class
names as classes, preprocessing that round-trips (``denormalize(normalize(x)) == x``), and a
loader that takes ``pretrained=False`` and ``checkpoint=PATH`` (and loads that file).

xai-core runs the same checks over every built-in plugin (``tests/test_contract.py`` and
``tests/test_testing.py``), so a third-party plugin is held to exactly the rules the built-ins
keep.
"""

from xai_core.testing.common import (
    ATTRIBUTOR_CHECKS,
    METRIC_CHECKS,
    MODEL_CHECKS,
    SYNTHESIZER_CHECKS,
    ContractError,
    TinyNet,
    default_params,
    hook_count,
)
from xai_core.testing.metrics import check_metric
from xai_core.testing.models import check_model
from xai_core.testing.techniques import check_attributor, check_synthesizer

__all__ = [
    "ContractError",
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
