"""Saliency maps (Simonyan, Vedaldi, Zisserman 2014): the gradient of the class score.

"Deep Inside Convolutional Networks: Visualising Image Classification Models and Saliency Maps",
ICLR workshop 2014, section 3. The map is ``max_c |d S_target / d x_c|``: the gradient of the
unnormalized class score with respect to the input pixels, absolute value, maximum over the three
colour channels.

Its own plugin (entry point ``saliency``), so that ``XAI_CORE_PLUGINS=saliency`` loads it alone.
It is no :class:`~xai_core.GradientAttributor`: ``noise_tunnel`` over saliency averages the
finished maps (Smilkov et al.), not the per-channel gradients.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn

from xai_core import AttributionContext, Attributor, hookimpl
from xai_core.contracts.params import setting
from xai_core.families.gradient import InputGradientPass
from xai_core.nn.gradients import REDUCTIONS, reduce_channels


class Saliency(InputGradientPass, Attributor):
    """Vanilla gradient saliency map."""

    name = "saliency"
    summary = "gradient of the class score w.r.t. the input pixels (max |grad| over channels)"
    paper = "Simonyan, Vedaldi, Zisserman 2014, arXiv:1312.6034"

    @dataclass
    class Params:
        #: Absolute gradients (the paper); ``false`` keeps the sign.
        abs: bool = True
        #: Multiply the gradient by the input (gradient x input) before reducing.
        times_input: bool = False
        #: Reduction over colour channels: ``max`` keeps the largest-magnitude channel value.
        reduction: str = field(default="max", metadata={"choices": REDUCTIONS})
        #: Run the pass on NHWC inputs (faster convolutions on CPU; same values up to rounding).
        channels_last: bool = setting(True)

    def compute(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        grad = self.pass_gradients(model, inputs, targets, context)
        if self.params.times_input:
            grad = grad * inputs
        if self.params.abs:
            grad = grad.abs()
        return reduce_channels(grad, self.params.reduction)


@hookimpl
def register_attributors(register):
    register(Saliency)
