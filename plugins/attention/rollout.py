"""Attention rollout (Abnar, Zuidema 2020, "Quantifying Attention Flow in Transformers",
arXiv:2005.00928): how much each patch token flows into the classifier's token through the
attention of every block, with the residual connections counted as attention to oneself.

Per block the heads' attention is fused (``head_fusion``), the residual is added as the identity
and each row renormalised, ``A' = rownorm(0.5 A + 0.5 I)``; the blocks multiply,
``R = A'_L ... A'_2 A'_1``; the map is the classifier token's row of ``R`` over the patch tokens
(see ``tokens``). Class-agnostic: the target class does not enter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from .common import AttentionAttributor, AttentionParams

__all__ = ["AttentionRollout", "HEAD_FUSIONS", "fuse_heads", "rollout_matrices"]

#: How the heads of one block are fused into one attention matrix.
HEAD_FUSIONS = ("mean", "max", "min")


def fuse_heads(attention: Tensor, fusion: str) -> Tensor:
    """``[M, heads, L, L]`` -> ``[M, L, L]`` by ``fusion`` (:data:`HEAD_FUSIONS`) over heads."""
    if fusion == "mean":
        return attention.mean(dim=1)
    if fusion == "max":
        return attention.amax(dim=1)
    return attention.amin(dim=1)


def _discard_lowest(fused: Tensor, ratio: float) -> Tensor:
    """Zero the ``ratio`` fraction of smallest entries of each ``[L, L]`` matrix, never the first
    token's attention to itself (jacobgil/vit-explain's rule, so the class token keeps a path)."""
    flat = fused.flatten(1)
    count = int(flat.shape[1] * ratio)
    if count == 0:
        return fused
    protected = flat.clone()
    protected[:, 0] = torch.inf
    lowest = protected.topk(count, dim=1, largest=False).indices
    return flat.scatter(1, lowest, 0.0).view_as(fused)


def rollout_matrices(
    attention: list[Tensor], head_fusion: str = "mean", discard_ratio: float = 0.0
) -> list[Tensor]:
    """Each block's ``rownorm(0.5 A + 0.5 I)`` ``[M, L, L]`` (float64) from its attention
    ``[M, heads, L, L]``; their product ``M_L ... M_1`` is the rollout."""
    matrices = []
    for block in attention:
        fused = fuse_heads(block.detach(), head_fusion).double()
        if discard_ratio > 0:
            fused = _discard_lowest(fused, discard_ratio)
        eye = torch.eye(fused.shape[-1], dtype=fused.dtype, device=fused.device)
        mixed = 0.5 * fused + 0.5 * eye
        matrices.append(mixed / mixed.sum(dim=-1, keepdim=True))
    return matrices


class AttentionRollout(AttentionAttributor):
    """Attention rollout: the product over blocks of the head-fused attention plus identity."""

    name = "attention_rollout"
    summary = (
        "attention flow to the class token: product over blocks of head-fused attention with the "
        "residual as identity (ViT/DeiT; class-agnostic)"
    )
    paper = "Abnar, Zuidema 2020, Quantifying Attention Flow in Transformers, arXiv:2005.00928"

    @dataclass
    class Params(AttentionParams):
        #: How each block's heads are fused: ``mean`` (the paper), ``max`` or ``min``
        #: (jacobgil/vit-explain's variants; rows are renormalised after adding the identity).
        head_fusion: str = field(default="mean", metadata={"choices": HEAD_FUSIONS})
        #: Fraction of the smallest fused attention entries of each block set to zero before
        #: the identity is added (jacobgil/vit-explain's noise filter, e.g. 0.9; the class
        #: token's attention to itself is kept). 0 is the paper's rollout.
        discard_ratio: float = field(default=0.0, metadata={"min": 0.0, "max_exclusive": 1.0})

    def block_matrices(
        self, attention: list[Tensor], logits: Tensor, targets: Tensor
    ) -> list[Tensor]:
        matrices = rollout_matrices(attention, self.params.head_fusion, self.params.discard_ratio)
        return [matrix[:, None] for matrix in matrices]
