"""The base both attention methods share: find the transformer's parts, run one forward pass on
the distinct inputs while capturing every block's attention probabilities, and read the chosen
tokens' row of the token-to-token relevance as a map over the patch grid.

Both methods' relevance is a product of one ``[L, L]`` matrix per block, last block first:
``R = M_L ... M_2 M_1`` (rollout: ``M_l = rownorm(0.5 A_l + 0.5 I)``; Chefer et al.'s
``R <- R + Abar_l R`` from ``R = I`` is ``M_l = I + Abar_l``). A method implements
:meth:`AttentionAttributor.block_matrices`; the base multiplies the readout row vector through
them from the top block down, ``r^T M_L ... M_1``, which costs ``O(L^2)`` per block instead of
the ``O(L^3)`` of forming ``R`` (the two agree to rounding; the tests compare against ``R``).
What does not live here: the transformer anatomy and the capture (:mod:`.vit`), the formulas
(:mod:`.rollout`, :mod:`.gradients`).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from xai_core import AttributionContext, Attributor
from xai_core.families.batches import distinct_inputs
from xai_core.families.cam import NORMALIZATIONS, UPSAMPLE_MODES, upsample_normalized

from .vit import READOUTS, capture_attention, check_captured, vit_anatomy

__all__ = ["AttentionAttributor", "AttentionParams", "readout_rows"]


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


def readout_rows(
    matrices: list[Tensor], rows: tuple[int, ...] | None, prefix_tokens: int
) -> Tensor:
    """The mean of the rows ``rows`` (``None``: the patch tokens) of ``R = M_L ... M_1`` over the
    patch tokens' columns, as a row vector carried down the blocks.

    :param matrices: each block's ``[M, k', L, L]``, in forward order.
    :return: ``[M, k', L - prefix_tokens]``.
    """
    last = matrices[-1]
    length = last.shape[-1]
    chosen = range(prefix_tokens, length) if rows is None else rows
    vector = torch.zeros(length, dtype=last.dtype, device=last.device)
    vector[list(chosen)] = 1.0 / len(chosen)
    vector = vector.expand(*last.shape[:-2], 1, length)
    for matrix in reversed(matrices):
        vector = vector @ matrix
    return vector[..., 0, prefix_tokens:]


class AttentionAttributor(Attributor):
    """An attributor that reads the attention probabilities of a vision transformer.

    :meth:`compute` finds the attention blocks (:func:`.vit.vit_anatomy`; a clear error for
    other models), runs the model once on the distinct inputs with the attention captured
    (fused attention off for the call, restored afterwards), asks :meth:`block_matrices` for one
    matrix per block, and reads the chosen tokens' row of their product over the patch tokens as
    a map on the patch grid, normalised and upsampled per :class:`AttentionParams`.
    """

    #: Whether :meth:`block_matrices` needs the autograd graph of the forward pass.
    uses_gradients: ClassVar[bool] = False

    Params = AttentionParams

    def check_model(self, handle: Any) -> None:
        """Attention methods need a vision transformer's attention blocks: a CNN (or a model
        whose attention they cannot read) fails the run once, before any item."""
        vit_anatomy(handle.module)

    @abc.abstractmethod
    def block_matrices(
        self, attention: list[Tensor], logits: Tensor, targets: Tensor
    ) -> list[Tensor]:
        """One matrix ``M_l`` per block, ``[M, k', L, L]`` (float64), whose product
        ``M_L ... M_1`` is the token-to-token relevance.

        :param attention: each block's attention probabilities ``[M, heads, L, L]``, in order.
        :param logits: ``[M, classes]`` for the distinct inputs.
        :param targets: ``[M, k]``, the classes asked for each distinct input.
        :return: in block order; ``k' = k`` (one per target) or ``k' = 1`` (class-agnostic).
        """

    def compute(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        anatomy = vit_anatomy(model, context)
        # Before the forward pass, so that a choice the model cannot follow fails at once.
        rows = anatomy.readout(self.params.tokens)
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
        matrices = self.block_matrices(capture.maps, logits, per_target)
        scores = readout_rows(matrices, rows, anatomy.prefix_tokens)  # [M, k', P]
        scores = scores.expand(m, k, scores.shape[-1]).reshape(m * k, -1)
        size = (inputs.shape[2], inputs.shape[3])
        grid = anatomy.grid(size, matrices[0].shape[-1])
        context.metadata.update(
            blocks=len(anatomy.attention),
            prefix_tokens=anatomy.prefix_tokens,
            readout=_describe_rows(rows),
            grid=f"{grid[0]}x{grid[1]}",
        )
        return self.finish(scores.float().reshape(m * k, *grid), size)

    def finish(self, maps: Tensor, size: tuple[int, int]) -> Tensor:
        """Normalisation and upsampling of patch-grid maps ``[N, h, w]`` to ``size``."""
        return upsample_normalized(maps, size, self.params.normalize, self.params.upsample)


def _describe_rows(rows: tuple[int, ...] | None) -> str:
    if rows is None:
        return "mean of the patch tokens' rows"
    if rows == (0,):
        return "class token's row"
    return f"mean of the rows of tokens {list(rows)}"
