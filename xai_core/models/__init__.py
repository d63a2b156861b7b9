"""Loading models by name, and the adapters that turn timm and torchvision models into handles.

Layer: above :mod:`xai_core.plugins` (models are registered by plugins), below the runner.
"""

from xai_core.models.loading import check_model_layer, check_model_name, list_models, load_model

__all__ = ["check_model_layer", "check_model_name", "list_models", "load_model"]
