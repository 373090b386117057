"""m2unet: M2U-Net retinal vessel segmentation — models, data, training, evaluation, fast inference.

The names below are imported on first use, so that ``m2unet segment`` with an exported model (.onnx / .xml)
runs where PyTorch is not installed (a small device with only ONNX Runtime or OpenVINO).
"""

import importlib

_LAZY = {"create_model": ".models", "list_models": ".models", "load_pretrained": ".weights", "load_weights": ".weights",
         "save_weights": ".weights"}


def segment(image, model: str = "auto", **options):
    """Vessel probability map (float32 H×W) of an image array or file; see :func:`m2unet.inference.pipeline.segment`."""
    from .inference.pipeline import segment as _segment

    return _segment(image, model, **options)


def vessels(image, model: str = "auto", **options):
    """Binary vessel map (bool H×W) at the model's stored threshold; see :func:`m2unet.inference.pipeline.vessels`."""
    from .inference.pipeline import vessels as _vessels

    return _vessels(image, model, **options)


def review(probability, model: str = "auto", **options):
    """Why to look at a map from :func:`segment` before using it, or None; see :func:`m2unet.inference.review.review`."""
    from .inference.review import review as _review

    return _review(probability, model, **options)


def __getattr__(name):
    if name == "measure":  # vessel measurements: m2unet.measure(vessels, fov=None, pixel_size_um=None) (a callable package)
        return importlib.import_module(".measure", __name__)
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'm2unet' has no attribute {name!r}")


__all__ = ["create_model", "list_models", "load_pretrained", "load_weights", "measure", "review", "save_weights", "segment", "vessels"]
