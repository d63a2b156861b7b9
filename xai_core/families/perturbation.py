from __future__ import annotations

import contextlib
from typing import Any

from torch import Tensor, nn

from xai_core.contracts.technique import AttributionContext, Attributor
from xai_core.errors import ConfigError
from xai_core.nn.fusion import folded_batch_norm
from xai_core.nn.gradients import channels_last_layout

#: Which number a perturbation changes: the target's ``logit`` or its softmax ``probability``.
SCORES = ("logit", "probability")


def _distinct(
    inputs: Tensor, targets: Tensor, context: AttributionContext
) -> tuple[Tensor, Tensor]:
    """The distinct inputs ``[M, 3, H, W]`` and their targets ``[M, k]``.

    The base class repeats each input ``k`` times, input-major, for ``k`` targets per input.
    """
    k = context.targets_per_input
    return inputs[::k], targets.view(-1, k)


class _PerturbationAttributor(Attributor):
    """What occlusion and RISE share: the scoring forward pass and parameter checks."""

    def __init__(self, params: Any = None, **overrides: Any):
        super().__init__(params, **overrides)
        for key in self._positive:
            if getattr(self.params, key) < 1:
                raise ConfigError(
                    f"bad config value at '{self.name}.{key}': must be at least 1, "
                    f"got {getattr(self.params, key)}"
                )
        if self.params.blur_sigma <= 0:
            raise ConfigError(
                f"bad config value at '{self.name}.blur_sigma': must be positive, "
                f"got {self.params.blur_sigma}"
            )

    #: Integer parameters that must be at least 1.
    _positive: tuple[str, ...] = ("batch_size",)

    def compute(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        self._check_input(inputs)
        images, image_targets = _distinct(inputs, targets, context)
        folding: Any = contextlib.nullcontext(False)
        if self.params.fold_batch_norm:
            example = channels_last_layout(images, self.params.channels_last)
            folding = folded_batch_norm(model, example)
        with folding as folded:
            if self.params.fold_batch_norm:
                context.metadata["folded_batch_norm"] = folded
            return self._attribute(model, images, image_targets, context)

    def _check_input(self, inputs: Tensor) -> None:
        """Raise :class:`InputError` for inputs this method cannot perturb."""

    def _attribute(
        self, model: nn.Module, images: Tensor, image_targets: Tensor, context: AttributionContext
    ) -> Tensor:
        """:meth:`compute` on the distinct ``images`` ``[M, 3, H, W]`` and their targets
        ``[M, k]`` (see :func:`_distinct`), with ``model``'s batch norms folded where that was
        asked for; returns ``[M * k, H, W]``."""
        raise NotImplementedError

    def _outputs(self, model: nn.Module, batch: Tensor) -> Tensor:
        """Every class's score ``[B, classes]`` (logits or probabilities, per ``score``); call
        under ``torch.inference_mode``."""
        logits = model(channels_last_layout(batch, self.params.channels_last)).float()
        return logits.softmax(dim=1) if self.params.score == "probability" else logits

    def _scores(self, model: nn.Module, batch: Tensor, targets: Tensor) -> Tensor:
        """Scores ``[B, k]`` of each row's ``k`` targets; call under ``torch.inference_mode``."""
        return self._outputs(model, batch).gather(1, targets)
