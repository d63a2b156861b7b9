"""Gradient-weighted attention (Chefer, Gur, Wolf 2021, "Generic Attention-model Explainability
for Interpreting Bi-Modal and Encoder-Decoder Transformers", ICCV, arXiv:2103.15679; the
self-attention rule of section 3): attention weighted by the gradient of the target's logit with
respect to it, accumulated over the blocks.

Per block ``Abar = mean_heads(relu(dy_t/dA ⊙ A))`` with ``y_t`` the target's logit (before the
softmax, as the authors' code) and ``A`` the block's attention probabilities; from
``R = I`` each block adds ``R = R + Abar R``; the map is the classifier token's row of ``R`` over
the patch tokens. Class-specific: one backward pass per target, all blocks at once.

Registered as ``attention_gradients``: the name says what sets it apart from
``attention_rollout`` (gradients of the target weigh the attention), which the authors' own
labels for it ("generic attention explainability", "ours") do not.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .common import AttentionAttributor

__all__ = ["AttentionGradients", "gradient_matrices"]


def gradient_matrices(attention: list[Tensor], gradients: list[Tensor]) -> list[Tensor]:
    """Each block's ``I + mean_heads(relu(grad * A))`` ``[M, L, L]`` (float64) from its
    attention and the gradient of the score with respect to it (``[M, heads, L, L]`` each):
    Chefer et al.'s ``R <- R + Abar R`` from ``R = I`` is their product ``M_L ... M_1``."""
    matrices = []
    for attn, grad in zip(attention, gradients):
        weighted = (grad * attn.detach()).clamp_min(0).mean(dim=1).double()
        eye = torch.eye(weighted.shape[-1], dtype=weighted.dtype, device=weighted.device)
        matrices.append(weighted + eye)
    return matrices


class AttentionGradients(AttentionAttributor):
    """Chefer et al. 2021: gradient-weighted attention accumulated over the blocks."""

    name = "attention_gradients"
    summary = (
        "attention weighted by the target logit's gradient, relu, head mean, accumulated over "
        "blocks as R += A R (ViT/DeiT; class-specific)"
    )
    paper = "Chefer, Gur, Wolf 2021, Generic Attention-model Explainability, arXiv:2103.15679"
    uses_gradients = True

    def block_matrices(
        self, attention: list[Tensor], logits: Tensor, targets: Tensor
    ) -> list[Tensor]:
        rows = torch.arange(len(logits), device=logits.device)
        k = targets.shape[1]
        per_target = []
        for j in range(k):
            score = logits[rows, targets[:, j]].sum()
            grads = torch.autograd.grad(score, attention, retain_graph=j < k - 1)
            per_target.append(gradient_matrices(attention, list(grads)))
        # [target][block] -> [block] of [M, k, L, L]
        return [torch.stack(blocks, dim=1) for blocks in zip(*per_target)]
