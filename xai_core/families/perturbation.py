"""The perturbation family: attributions from forward passes on perturbed copies of the inputs.

:class:`PerturbationAttributor` is the base of black-box methods (occlusion, RISE): no gradients,
only class scores of perturbed images. It does what they all need:

* ``Params`` with the shared fields (``baseline``, ``blur_sigma``, ``score``, ``batch_size``,
  ``channels_last``, ``progress``, ``fold_batch_norm``); a method's ``Params`` derives from it;
* the distinct inputs: with several targets per input, every target of an input is explained
  from the same perturbed passes (:func:`~xai_core.families.batches.distinct_inputs`);
* batch-norm folding for the call (:func:`xai_core.nn.fusion.folded_batch_norm`), undone after;
* the fill (:meth:`~PerturbationAttributor.baseline`, from the one vocabulary in
  :mod:`xai_core.nn.images`) and the scoring passes
  (:meth:`~PerturbationAttributor.scoring_pass`, :meth:`~PerturbationAttributor.perturbed_scores`).

A subclass implements :meth:`~PerturbationAttributor.attribute_distinct`. What does not live here:
window and mask generation and the incremental-occlusion reuse (the ``perturbation`` plugin).
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from xai_core.contracts.attributor import Attributor
from xai_core.contracts.params import setting
from xai_core.contracts.target_kinds import target_probabilities
from xai_core.contracts.technique import AttributionContext
from xai_core.families.batches import distinct_inputs
from xai_core.nn.fusion import folded_when
from xai_core.nn.gradients import channels_last_layout
from xai_core.nn.images import baseline_inputs, check_baseline
from xai_core.nn.progress import progress_bar

__all__ = ["PERTURBATION_BASELINES", "SCORES", "PerturbationAttributor"]

#: Which number a perturbation changes: the target's ``logit`` or its softmax ``probability``.
SCORES = ("logit", "probability")

#: The baselines of :data:`xai_core.nn.images.BASELINES` a perturbation fills regions with
#: (``uniform`` noise is a path start for integrated gradients, not a fill).
PERTURBATION_BASELINES = ("zeros", "black", "blur", "mean")


class PerturbationAttributor(Attributor):
    """Base of perturbation attributors: see the module documentation."""

    @dataclass
    class Params:
        #: What a perturbed region is filled with (see :data:`xai_core.nn.images.BASELINES`).
        baseline: str = field(default="zeros", metadata={"choices": PERTURBATION_BASELINES})
        #: Standard deviation in pixels of the ``blur`` baseline.
        blur_sigma: float = field(default=10.0, metadata={"min_exclusive": 0})
        #: The score the method reads: the target's logit or its softmax probability.
        score: str = field(default="logit", metadata={"choices": SCORES})
        #: Perturbed images per forward pass (bounds memory; all inputs share batches).
        batch_size: int = setting(16, min=1)
        #: Run forward passes in NHWC memory layout (faster on CPU with oneDNN).
        channels_last: bool = setting(True)
        #: Show a progress bar on long runs (only on a terminal).
        progress: bool = setting(True)
        #: Fold each eval-mode batch norm into the convolution before it for the call (the same
        #: function to float rounding, fewer operations; checked on the unperturbed images, not
        #: folded where that check fails; the model is restored after the call).
        fold_batch_norm: bool = True

        def __post_init__(self) -> None:
            check_baseline(self.baseline)

    def compute(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        self.check_input(inputs)
        images, image_targets = distinct_inputs(inputs, targets, context)
        p = self.params
        with folded_when(p.fold_batch_norm, model, images, p.channels_last, context.metadata):
            return self.attribute_distinct(model, images, image_targets, context)

    def check_input(self, inputs: Tensor) -> None:
        """Raise :class:`~xai_core.errors.InputError` for inputs this method cannot perturb (a
        window larger than the image, say); by default every input is fine."""

    @abc.abstractmethod
    def attribute_distinct(
        self, model: nn.Module, images: Tensor, image_targets: Tensor, context: AttributionContext
    ) -> Tensor:
        """Maps ``[M * k, H, W]`` for the distinct ``images`` ``[M, C, H, W]`` and their targets
        ``[M, k]`` (input-major, as :meth:`compute` must return them), with ``model``'s batch
        norms folded where that was asked for."""

    def baseline(self, images: Tensor, context: AttributionContext) -> Tensor:
        """The ``baseline`` fill for ``images``, broadcastable to them."""
        p = self.params
        return baseline_inputs(p.baseline, images, context.handle, blur_sigma=p.blur_sigma)

    @contextlib.contextmanager
    def scoring_pass(self, total: int) -> Iterator[Any]:
        """Inference mode and a progress bar over ``total`` perturbed images: the loop of
        :meth:`perturbed_scores` calls runs inside it and calls ``bar.update(images)``."""
        with torch.inference_mode(), progress_bar(total, self.name, self.params.progress) as bar:
            yield bar

    def class_outputs(self, model: nn.Module, batch: Tensor) -> Tensor:
        """Every class's score ``[B, classes]`` (logits or probabilities, per ``score``) of a
        perturbed ``batch``; call inside :meth:`scoring_pass`."""
        logits = model(channels_last_layout(batch, self.params.channels_last)).float()
        return target_probabilities(logits) if self.params.score == "probability" else logits

    def perturbed_scores(self, model: nn.Module, batch: Tensor, targets: Tensor) -> Tensor:
        """Scores ``[B, k]`` of each row's ``k`` ``targets`` ``[B, k]``; call inside
        :meth:`scoring_pass`."""
        return self.class_outputs(model, batch).gather(1, targets)
