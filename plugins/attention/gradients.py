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

__all__ = ["AttentionGradients", "gradient_rollout"]


def gradient_rollout(attention: list[Tensor], gradients: list[Tensor]) -> Tensor:
    """``R`` ``[M, L, L]`` (float64) of Chefer et al.'s rule from each block's attention and
    the gradient of the score with respect to it (``[M, heads, L, L]`` each)."""
    result = None
    for attn, grad in zip(attention, gradients):
        weighted = (grad.double() * attn.detach().double()).clamp_min(0).mean(dim=1)
        if result is None:
            eye = torch.eye(weighted.shape[-1], dtype=weighted.dtype, device=weighted.device)
            result = eye.expand_as(weighted)
        result = result + weighted @ result
    assert result is not None
    return result


class AttentionGradients(AttentionAttributor):
    """Chefer et al. 2021: gradient-weighted attention accumulated over the blocks."""

    name = "attention_gradients"
    summary = (
        "attention weighted by the target logit's gradient, relu, head mean, accumulated over "
        "blocks as R += A R (ViT/DeiT; class-specific)"
    )
    paper = "Chefer, Gur, Wolf 2021, Generic Attention-model Explainability, arXiv:2103.15679"
    uses_gradients = True

    def relevance(self, attention: list[Tensor], logits: Tensor, targets: Tensor) -> Tensor:
        rows = torch.arange(len(logits), device=logits.device)
        k = targets.shape[1]
        per_target = []
        for j in range(k):
            score = logits[rows, targets[:, j]].sum()
            grads = torch.autograd.grad(score, attention, retain_graph=j < k - 1)
            per_target.append(gradient_rollout(attention, list(grads)))
        return torch.stack(per_target, dim=1)
