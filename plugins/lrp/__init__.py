"""Layer-wise relevance propagation (plugin ``lrp``): zennit-style composites on torchvision and
timm CNNs (issue 18; being written)."""
