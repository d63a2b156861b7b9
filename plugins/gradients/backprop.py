"""Input-gradient methods with one backward pass: guided backpropagation, deconvnet (modified ReLU
backward rules) and gradient x input.

The ReLU rules themselves live in :mod:`xai_core.nn.relu_rules`, where guided Grad-CAM (the
``cam`` plugin) finds them too; plain saliency lives in :mod:`.saliency`.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from xai_core import AttributionContext, GradientAttributor
from xai_core.contracts.technique import ForwardPass
from xai_core.families.gradient import InputGradientPass, input_forward_pass, reduction_param
from xai_core.nn.gradients import gradients_at
from xai_core.nn.relu_rules import guided_relu, relu_rule_gradients

__all__ = ["Deconvnet", "GradientXInput", "GuidedBackprop"]


class _ReluRuleAttributor(GradientAttributor):
    """The input gradient with every ReLU following :attr:`rule` (see
    :data:`xai_core.nn.relu_rules.RELU_RULES`)."""

    rule = "guided"

    @dataclass
    class Params(GradientAttributor.Params):
        #: Absolute values before the reduction, as for saliency maps.
        abs: bool = True
        #: ``max`` of absolute values over channels by default, as for saliency maps.
        reduction: str = reduction_param("max")
        #: Apply the rule to clipped ReLUs (ReLU6, as in EfficientNet-Lite) too; Captum's
        #: implementation only sees ``nn.ReLU`` modules (``false`` gives its results there).
        relu6: bool = True

    def forward_pass(
        self, model: nn.Module, inputs: Tensor, context: AttributionContext
    ) -> ForwardPass:
        p = self.params
        # The rule's autograd functions are recorded in the forward pass; the logits are the
        # plain model's (only the backward differs).
        return input_forward_pass(model, inputs, p.channels_last, guided_relu(self.rule, p.relu6))

    def input_attributions(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        forward = context.shared_pass(inputs)
        if forward is None:  # a wrapper's inputs (noise tunnel): a pass of our own
            p = self.params
            return relu_rule_gradients(model, inputs, targets, self.rule, p.relu6, p.channels_last)
        return gradients_at(forward.logits, forward.inputs, targets)


class GuidedBackprop(_ReluRuleAttributor):
    """Guided backpropagation: the input gradient with every ReLU passing back only positive
    gradients, and only where its forward input was positive."""

    name = "guided_backprop"
    summary = "input gradient, passing only positive gradients back through active ReLUs"
    paper = "Springenberg, Dosovitskiy, Brox, Riedmiller 2015, arXiv:1412.6806"
    rule = "guided"


class Deconvnet(_ReluRuleAttributor):
    """Deconvnet: the input gradient with every ReLU passing back only positive gradients,
    wherever its forward input was."""

    name = "deconvnet"
    summary = "input gradient, passing only positive gradients back through every ReLU"
    paper = "Zeiler, Fergus 2014, arXiv:1311.2901"
    rule = "deconvnet"


class GradientXInput(InputGradientPass, GradientAttributor):
    """Gradient x input: the input gradient times the input, summed over channels by default."""

    name = "gradient_x_input"
    summary = "input gradient times the input (signed, sum over channels)"
    paper = "Shrikumar, Greenside, Shcherbina, Kundaje 2016, arXiv:1605.01713"

    def input_attributions(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        return self.pass_gradients(model, inputs, targets, context) * inputs
