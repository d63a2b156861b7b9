from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from xai_core.contracts.technique import AttributionContext, Attributor
from xai_core.nn.gradients import REDUCTIONS, reduce_channels


def _reduction(default: str) -> Any:
    return field(default=default, metadata={"choices": REDUCTIONS})


class GradientAttributor(Attributor):
    """An attributor built on a per-channel attribution ``[N, C, H, W]`` at input resolution.

    Subclasses implement :meth:`input_attributions` (what Captum's counterpart returns, signed and
    per channel) and keep the ``abs`` and ``reduction`` parameters, which :meth:`finish` applies:
    absolute values or not, then one of :data:`xai_core.nn.gradients.REDUCTIONS` over channels. Each
    method documents its default; ``sum`` is the one under which attributions add up to the score
    (integrated gradients' completeness). ``noise_tunnel`` averages :meth:`input_attributions` over
    noisy copies and finishes once, as Captum's ``NoiseTunnel`` does before a reduction.
    """

    @dataclass
    class Params:
        #: Absolute values before the reduction; ``false`` keeps the sign.
        abs: bool = False
        #: Reduction over colour channels (``max`` keeps the largest-magnitude value, signed).
        reduction: str = _reduction("sum")
        #: Run the passes on NHWC inputs (faster convolutions on CPU; same values up to rounding).
        channels_last: bool = True

    def input_attributions(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        """Per-channel attributions ``[N, C, H, W]`` for ``inputs`` and ``targets``."""
        raise NotImplementedError

    def finish(self, attributions: Tensor) -> Tensor:
        """``[N, C, H, W]`` -> the map ``[N, H, W]``: ``abs`` (if set), then ``reduction``."""
        if self.params.abs:
            attributions = attributions.abs()
        return reduce_channels(attributions, self.params.reduction)

    def compute(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        return self.finish(self.input_attributions(model, inputs, targets, context))
