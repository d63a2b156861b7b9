"""How an attributor's batch is laid out with several targets per input, for the families that
share work between the targets of one input.

:meth:`xai_core.Attributor.attribute` repeats each input ``k`` times, input-major, when ``k``
targets per input are asked for. A CAM's forward pass and a perturbation's perturbed passes need
to run once per *distinct* input; :func:`distinct_inputs` is the one place that knows the layout.
"""

from __future__ import annotations

from torch import Tensor

from xai_core.contracts.technique import AttributionContext

__all__ = ["distinct_inputs"]


def distinct_inputs(
    inputs: Tensor, targets: Tensor, context: AttributionContext
) -> tuple[Tensor, Tensor]:
    """The distinct inputs ``[M, C, H, W]`` of ``compute``'s batch and their targets ``[M, k]``.

    ``inputs`` ``[M * k, C, H, W]`` and ``targets`` ``[M * k]`` are the rows ``compute`` gets;
    ``k`` is ``context.targets_per_input``. Row ``i * k + j`` is input ``i`` with its ``j``-th
    target, so maps built per distinct input come back in the base class's order with
    ``maps.repeat_interleave(k, dim=0)`` or as ``[M, k, ...]`` flattened.
    """
    k = max(1, context.targets_per_input)
    return inputs[::k], targets.view(-1, k)
