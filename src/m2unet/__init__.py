"""m2unet: M2U-Net retinal vessel segmentation — models, data, training, evaluation, fast inference."""

from .models import create_model, list_models
from .weights import load_pretrained, load_weights, save_weights

__all__ = ["create_model", "list_models", "load_pretrained", "load_weights", "save_weights"]
