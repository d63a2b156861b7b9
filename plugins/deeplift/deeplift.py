"""DeepLIFT with the rescale rule (``deeplift``) and its average over a set of references
(``deeplift_shap``), on :class:`xai_core.GradientAttributor`.

Shrikumar, Greenside, Kundaje 2017, "Learning Important Features Through Propagating Activation
Differences", ICML, arXiv:1704.02685; Lundberg, Lee 2017, "A Unified Approach to Interpreting
Model Predictions", NeurIPS, arXiv:1705.07874 (DeepLIFT-SHAP). The rule itself lives in
:mod:`.rescale`; baselines come from the shared vocabulary (:class:`xai_core.nn.images.Baseline`),
the one integrated gradients uses; the baseline parameters and their resolution come from
:class:`xai_core.families.gradient.ReferenceAttributor` and :class:`~xai_core.families.gradient.
ReferenceSetAttributor`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from xai_core import AttributionContext
from xai_core.contracts.params import setting
from xai_core.families.gradient import ReferenceAttributor, ReferenceSetAttributor

from .rescale import RULE_SETS, deeplift_gradients, rescale_rule

__all__ = ["DeepLift", "DeepLiftShap", "record_summation"]


def record_summation(context: AttributionContext, attributions: Tensor, difference: Tensor) -> None:
    """Put DeepLIFT's summation-to-delta check in ``context.metadata``, per row: the score
    difference ``F(x) - F(x_ref)``, the gap (sum of the attributions minus that difference)
    and the gap relative to ``|difference|``."""
    gap = attributions.sum(dim=(1, 2, 3)) - difference
    context.metadata.update(
        score_difference=difference.tolist(),
        summation_gap=gap.tolist(),
        summation_gap_relative=(gap.abs() / difference.abs()).tolist(),
    )


@dataclass
class RescaleParams:
    """The rescale rule's parameters, shared by ``deeplift`` and ``deeplift_shap``; a ``Params``
    lists it before its family's base, so that these fields follow the baseline ones."""

    #: Which nonlinearities follow the rescale rule: ``all`` elementwise activations and max
    #: pooling, or ``captum``: Captum's modules and rules exactly (see ``deeplift``).
    rules: str = field(default="all", metadata={"choices": RULE_SETS})
    #: Below this ``|x - x_ref|`` a nonlinearity passes its gradient (Captum's default).
    eps: float = field(default=1e-10, metadata={"min": 0})


class DeepLift(ReferenceAttributor):
    """DeepLIFT, rescale rule: ``(x - x_ref) * m`` per channel, where ``m`` back-propagates
    ``(f(x) - f(x_ref)) / (x - x_ref)`` through every nonlinearity ``f`` (its gradient where
    ``|x - x_ref| < eps``) and the gradient through linear layers.

    ``rules`` picks the nonlinearities (see :mod:`xai_core_plugins.deeplift.rescale`): ``all``
    (default) applies the rule to every elementwise activation, as a module or a function (ReLU,
    ReLU6, GELU, SiLU, hardswish, sigmoid, tanh, ...), and to max pooling; ``captum`` gives
    Captum's ``DeepLift`` exactly, which leaves out everything but its listed modules (on
    EfficientNet-Lite's ReLU6, say, it passes the plain gradient). A module used twice in one
    forward pass and functional activations are handled; Captum fails on the first and ignores
    the second.

    With ``reduction: sum`` (default) the map adds up to ``F(x) - F(x_ref)`` where the network is
    built from linear layers, elementwise activations and max pooling (summation-to-delta);
    ``metadata`` reports per row ``score_difference``, ``summation_gap`` (sum of attributions
    minus the difference) and ``summation_gap_relative``. Products (squeeze-and-excitation
    gates), softmax and normalisations other than eval-mode batch norm pass their gradient, so
    the gap there measures how far the network is from that.

    ``baseline`` is one of ``black``, ``zeros``, ``blur``, ``uniform`` (as for integrated
    gradients) or a ``.npy``/``.pt`` file with a normalized tensor ``[C, H, W]``, ``[1, C, H,
    W]`` or one per input ``[N, C, H, W]``; from Python, a tensor of those shapes
    (``DeepLift(baseline=tensor)``).
    """

    name = "deeplift"
    summary = "DeepLIFT rescale rule: activation differences to a baseline (signed, sum)"
    paper = "Shrikumar, Greenside, Kundaje 2017, arXiv:1704.02685"

    @dataclass
    class Params(RescaleParams, ReferenceAttributor.Params):
        """The baseline (:class:`~xai_core.families.gradient.ReferenceAttributor`) and the rule
        (:class:`RescaleParams`)."""

    def input_attributions(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        p = self.params
        baselines = self.baselines(inputs, context)
        rule = rescale_rule(model, context.hooks, p.rules, p.eps)
        multipliers, difference = deeplift_gradients(
            model, inputs, baselines, targets, rule, p.channels_last
        )
        attributions = (inputs - baselines) * multipliers
        record_summation(context, attributions, difference)
        return attributions


class DeepLiftShap(ReferenceSetAttributor):
    """DeepLIFT-SHAP: the mean of :class:`DeepLift` attributions over a set of references
    (Captum's ``DeepLiftShap``), approximating SHAP values with the references as background.

    The set (``baselines``) lists names and files: ``black``, ``zeros`` and ``blur`` add one
    reference each, ``uniform`` adds ``uniform_count`` noise images (seeds ``seed``, ``seed +
    1``, ...), a ``.npy``/``.pt`` file holding ``[B, C, H, W]`` (normalized, e.g. training
    images) adds its ``B`` images, ``[C, H, W]`` one. From Python a tensor ``[B, C, H, W]`` may
    be given as the whole set (``DeepLiftShap(baselines=tensor)``). Every input is explained
    against every reference: the cost is that of ``B`` DeepLIFT calls.

    ``rules`` and ``eps`` are DeepLIFT's; ``metadata`` reports the summation check of the mean
    (``score_difference`` is ``F(x)`` minus the mean score of the references).
    """

    name = "deeplift_shap"
    summary = "DeepLIFT averaged over a set of baselines (SHAP approximation; signed, sum)"
    paper = "Lundberg, Lee 2017, arXiv:1705.07874; Shrikumar et al. 2017, arXiv:1704.02685"

    @dataclass
    class Params(RescaleParams, ReferenceSetAttributor.Params):
        #: Input-reference pairs per forward/backward pass (each pass runs twice as many rows):
        #: bounds memory, not results.
        batch_size: int = setting(16, min=1)

    def input_attributions(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        p = self.params
        references = self.reference_set(inputs, context)
        n, count = len(inputs), references.shape[1]
        rule = rescale_rule(model, context.hooks, p.rules, p.eps)
        total = torch.zeros_like(inputs)
        difference = torch.zeros(n, device=inputs.device)
        # Pairs input-major, as Captum orders them; chunks bound memory only (rows are
        # independent in an eval-mode network).
        for start in range(0, n * count, p.batch_size):
            row = torch.arange(start, min(start + p.batch_size, n * count), device=inputs.device)
            item, ref = row // count, row % count
            x = inputs[item]
            b = references[item if references.shape[0] > 1 else 0, ref]
            multipliers, diff = deeplift_gradients(
                model, x, b, targets[item], rule, p.channels_last
            )
            total.index_add_(0, item, (x - b) * multipliers)
            difference.index_add_(0, item, diff)
        attributions = total / count
        record_summation(context, attributions, difference / count)
        return attributions
