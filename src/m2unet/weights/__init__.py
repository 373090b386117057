"""Every file a model is read from or written to: our safetensors with metadata, the shipped models, the authors'
checkpoints, the ImageNet encoder file, exported ONNX / OpenVINO files' metadata, and which file ``--model`` means.

Models (:mod:`m2unet.models`) build networks; this package fills them. Importing it needs no PyTorch: the
torch-dependent names (``build_model``, ``load_imagenet_encoder``, ``fold_imagenet_normalisation``) load on first use.
"""

import importlib

from .authors import AUTHORS_FILES, authors_weights_dir, load_authors_checkpoint, map_authors_state_dict
from .exported import EXPORTED_SUFFIXES, read_exported_metadata, save_ir, stamp_metadata
from .files import (
    DEFAULT_THRESHOLD,
    METADATA_KEY,
    file_digest,
    git_commit,
    read_safetensors_metadata,
    read_state_dict,
    save_state,
    save_weights,
    threshold_of,
)
from .load import load_weights, read_metadata
from .resolve import (
    AUTO_MODEL,
    CLOSEST_MODEL_LARGEST,
    CLOSEST_MODEL_LIMITS,
    SEARCH_TIME,
    AutoRun,
    auto_run,
    calibration_for,
    closest_dataset_model,
    resolve_weights,
)
from .shipped import PRETRAINED_DIR, PRETRAINED_NAMES, load_pretrained, pretrained_path, shipped_onnx

_TORCH_NAMES = {"build_model", "load_imagenet_encoder", "fold_imagenet_normalisation"}


def __getattr__(name):
    if name in _TORCH_NAMES:
        return getattr(importlib.import_module(".imagenet", __name__), name)
    raise AttributeError(f"module 'm2unet.weights' has no attribute {name!r}")


__all__ = [
    "AUTHORS_FILES", "AUTO_MODEL", "CLOSEST_MODEL_LARGEST", "CLOSEST_MODEL_LIMITS", "DEFAULT_THRESHOLD", "EXPORTED_SUFFIXES", "METADATA_KEY",
    "PRETRAINED_DIR", "PRETRAINED_NAMES", "authors_weights_dir", "AutoRun", "auto_run", "closest_dataset_model", "build_model", "calibration_for",
    "file_digest", "fold_imagenet_normalisation", "git_commit", "load_authors_checkpoint", "load_imagenet_encoder",
    "load_pretrained", "load_weights", "map_authors_state_dict", "pretrained_path", "read_exported_metadata",
    "read_metadata", "read_safetensors_metadata", "read_state_dict", "resolve_weights", "save_ir", "SEARCH_TIME", "save_state", "save_weights", "shipped_onnx", "stamp_metadata",
    "threshold_of",
]
