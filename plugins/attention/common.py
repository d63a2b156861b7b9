"""The base both attention methods share: find the transformer's parts, run one forward pass on
the distinct inputs while capturing every block's attention probabilities, turn a token-to-token
relevance matrix into a map over the patch grid.

A method implements :meth:`AttentionAttributor.relevance` (``[M, k', L, L]`` from the captured
attention, the logits and the targets); everything else is here. What does not live here: the
transformer anatomy and the capture (:mod:`.vit`), the formulas (:mod:`.rollout`,
:mod:`.gradients`).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from xai_core import AttributionContext, Attributor
from xai_core.families.batches import distinct_inputs
from xai_core.families.cam import NORMALIZATIONS, UPSAMPLE_MODES, minmax, upsample

from .vit import READOUTS, capture_attention, check_captured, vit_anatomy

__all__ = ["AttentionAttributor", "AttentionParams", "token_rows"]


@dataclass
class AttentionParams:
    """Parameters every attention method shares."""

    #: Whose row of the token-to-token relevance is the map: ``auto`` the tokens the classifier
    #: reads (the class token; for a distilled DeiT the mean of the class and distillation
    #: tokens' rows, because its logits average the two heads; the mean of the patch tokens'
    #: rows for average-pooled models), ``class`` the class token, ``prefix_mean`` the mean over
    #: all prefix tokens (class, distillation, registers), ``patch_mean`` the mean over patches.
    tokens: str = field(default="auto", metadata={"choices": READOUTS})
    #: ``minmax`` scales each map to [0, 1] (before and after upsampling, as the CAMs do);
    #: ``none`` keeps the relevance values of the papers.
    normalize: str = field(default="minmax", metadata={"choices": NORMALIZATIONS})
    #: Interpolation from the patch grid to the input size (``align_corners`` false).
    upsample: str = field(default="bilinear", metadata={"choices": UPSAMPLE_MODES})


def token_rows(relevance: Tensor, rows: tuple[int, ...] | None, prefix_tokens: int) -> Tensor:
    """The mean of the relevance rows ``rows`` (``None``: the patch tokens) over the patch
    tokens' columns: ``[..., L, L]`` -> ``[..., L - prefix_tokens]``."""
    if rows is None:
        chosen = relevance[..., prefix_tokens:, :]
    else:
        chosen = relevance[..., list(rows), :]
    return chosen.mean(dim=-2)[..., prefix_tokens:]


class AttentionAttributor(Attributor):
    """An attributor that reads the attention probabilities of a vision transformer.

    :meth:`compute` finds the attention blocks (:func:`.vit.vit_anatomy`; a clear error for
    other models), runs the model once on the distinct inputs with the attention captured
    (fused attention off for the call, restored afterwards), asks :meth:`relevance` for a
    token-to-token relevance matrix, and reads the chosen tokens' row over the patch tokens as a
    map on the patch grid, normalised and upsampled per :class:`AttentionParams`.
    """

    #: Whether :meth:`relevance` needs the autograd graph of the forward pass.
    uses_gradients: ClassVar[bool] = False

    Params = AttentionParams

    @abc.abstractmethod
    def relevance(self, attention: list[Tensor], logits: Tensor, targets: Tensor) -> Tensor:
        """Token-to-token relevance ``[M, k', L, L]`` (float64).

        :param attention: each block's attention probabilities ``[M, heads, L, L]``, in order.
        :param logits: ``[M, classes]`` for the distinct inputs.
        :param targets: ``[M, k]``, the classes asked for each distinct input.
        :return: ``k' = k`` (one matrix per target) or ``k' = 1`` (class-agnostic).
        """

    def compute(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        anatomy = vit_anatomy(model, context)
        distinct, per_target = distinct_inputs(inputs, targets, context)
        m, k = per_target.shape
        if self.uses_gradients:
            # The attention must be part of a graph; the parameters are frozen, so the input
            # is what makes it one (autograd.grad w.r.t. the attention never reaches it).
            distinct = distinct.detach().requires_grad_(True)
        with torch.set_grad_enabled(self.uses_gradients), capture_attention(
            anatomy, context
        ) as capture:
            logits = model(distinct)
        check_captured(capture, anatomy, m)
        relevance = self.relevance(capture.maps, logits, per_target)
        rows = anatomy.readout(self.params.tokens)
        scores = token_rows(relevance, rows, anatomy.prefix_tokens)  # [M, k', P]
        scores = scores.expand(m, k, scores.shape[-1]).reshape(m * k, -1)
        size = (inputs.shape[2], inputs.shape[3])
        grid = anatomy.grid(size, relevance.shape[-1])
        context.metadata.update(
            blocks=len(anatomy.attention),
            prefix_tokens=anatomy.prefix_tokens,
            readout=_describe_rows(rows),
            grid=f"{grid[0]}x{grid[1]}",
        )
        return self.finish(scores.float().reshape(m * k, *grid), size)

    def finish(self, maps: Tensor, size: tuple[int, int]) -> Tensor:
        """Normalisation and upsampling of patch-grid maps ``[N, h, w]`` to ``size``."""
        if self.params.normalize == "minmax":
            maps = minmax(maps)
        maps = upsample(maps, size, self.params.upsample)
        if self.params.normalize == "minmax":
            maps = minmax(maps)
        return maps


def _describe_rows(rows: tuple[int, ...] | None) -> str:
    if rows is None:
        return "mean of the patch tokens' rows"
    if rows == (0,):
        return "class token's row"
    return f"mean of the rows of tokens {list(rows)}"
