"""The model registry: ``create_model(name, num_classes, in_shape, **kwargs)``."""
from expunge.models.base import MODELS, Classifier, create_model, register_model

from expunge.models import small  # noqa: E402,F401  isort: skip  (registers mlp, cnn)
from expunge.models import resnet, vit, fastnet, timm_models  # noqa: E402,F401  isort: skip

__all__ = ["MODELS", "Classifier", "create_model", "register_model"]
