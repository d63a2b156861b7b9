"""Transformer attention (plugin ``attention``): maps read from the attention of a vision
transformer (timm ``vit_*``, ``deit_*`` with or without a distillation token, ``*_reg*`` with
register tokens; Hugging Face ViT and DeiT, ``hf/*``), no reshape function needed:

* **attention rollout** (Abnar, Zuidema 2020), ``attention_rollout``: the product over blocks of
  the head-fused attention with the residual as identity, ``rownorm(0.5 A + 0.5 I)``;
  class-agnostic. ``head_fusion`` and ``discard_ratio`` as in jacobgil/vit-explain.
* **gradient-weighted attention** (Chefer, Gur, Wolf 2021), ``attention_gradients``:
  ``R += mean_heads(relu(grad ⊙ A)) R`` from the identity, with the gradient of the target's
  logit; class-specific.

Both read the row of the token(s) the classifier reads (``tokens: auto``: the class token; the
mean of the class and distillation tokens for a distilled DeiT) over the patch tokens, on the
patch grid, upsampled to the input size. Fused attention is switched off for the call (it never
materialises the attention matrix) and restored afterwards. Models without attention blocks (a
CNN) get an error that suggests grad_cam.

Modules: :mod:`.vit` (the transformer's anatomy and the attention capture: backbone-adapter
knowledge, ready to move to the core), :mod:`.common` (the shared base), :mod:`.rollout`,
:mod:`.gradients`.
"""

from __future__ import annotations

from xai_core import hookimpl

from .gradients import AttentionGradients
from .rollout import AttentionRollout

__all__ = ["ATTENTION_METHODS", "AttentionGradients", "AttentionRollout"]

ATTENTION_METHODS = (AttentionRollout, AttentionGradients)


@hookimpl
def register_attributors(register):
    for method in ATTENTION_METHODS:
        register(method)
