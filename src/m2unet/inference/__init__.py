"""Inference: whole-image prediction (and, for large images, tiling)."""

from .predict import pad_to_multiple, predict_logits, predict_probability

__all__ = ["pad_to_multiple", "predict_logits", "predict_probability"]
