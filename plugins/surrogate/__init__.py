"""Surrogate models on superpixels (plugin ``surrogate``): ``lime`` and ``kernel_shap``
(issue 18; being written)."""
