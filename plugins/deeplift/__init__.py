"""DeepLIFT and the gradient SHAP family (plugin ``deeplift``): ``deeplift``, ``deeplift_shap``,
``gradient_shap`` (issue 18; being written)."""
