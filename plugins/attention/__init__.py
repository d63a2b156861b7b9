"""Transformer attention (plugin ``attention``): attention rollout and gradient-weighted
attention on timm ViT/DeiT (issue 18; being written)."""
