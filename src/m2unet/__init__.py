"""m2unet: M2U-Net retinal vessel segmentation — models, data, training, evaluation, fast inference."""

from .models import create_model, list_models
from .weights import load_pretrained, load_weights, save_weights


def segment(image, model: str = "drive", **options):
    """Vessel probability map (float32 H×W) of an image array or file; see :func:`m2unet.inference.pipeline.segment`."""
    from .inference.pipeline import segment as _segment

    return _segment(image, model, **options)


__all__ = ["create_model", "list_models", "load_pretrained", "load_weights", "save_weights", "segment"]
