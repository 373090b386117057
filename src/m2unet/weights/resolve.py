"""Which weights file a ``--model`` / ``--weights`` pair means, and which training images calibrate its int8 export."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import M2UNetError
from .authors import AUTHORS_FILES
from .shipped import pretrained_path

# Native field-of-view diameters (pixels) of the datasets the pretrained models were trained on, measured
# from the official / unofficial FOV masks (benchmarks/fov_iou.py prints them): DRIVE ≈ 540, CHASE_DB1 ≈ 900,
# HRF ≈ 3250. The thresholds below sit between them (roughly their geometric means).
AUTO_MODEL_LIMITS = ((700, "drive"), (1500, "chase_db1"))
AUTO_MODEL_LARGEST = "hrf"


def auto_model_name(fov_width: int) -> str:
    """The pretrained model for an image whose field of view is ``fov_width`` pixels wide (``--model auto``).

    Rule: the dataset whose native FOV diameter is closest in scale, so vessels have the width the model
    was trained on: FOV width ≤ 700 px → ``drive``; ≤ 1500 px → ``chase_db1``; wider → ``hrf``.
    The FOV width is the number of columns spanned by the FOV mask (the image width when no mask is used).
    """
    for limit, name in AUTO_MODEL_LIMITS:
        if fov_width <= limit:
            return name
    return AUTO_MODEL_LARGEST


def resolve_weights(model: str = "auto", weights: str | os.PathLike | None = None, fov_width_px: int | None = None) -> Path:
    """The weights file: ``weights`` when given, else the pretrained model ``model`` (``auto``: by FOV width)."""
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise M2UNetError(f"{path}: no such weights file")
        return path
    if model == "auto":
        if fov_width_px is None:
            raise M2UNetError("--model auto needs the image (its FOV width) to choose a model")
        model = auto_model_name(fov_width_px)
    return pretrained_path(model)


def calibration_for(weights: str | os.PathLike, calibration: str = "auto") -> str:
    """int8 calibration data for a weights file: ``calibration`` unless ``auto``; for ``auto`` the dataset of a
    pretrained model (``drive``/``chase_db1``/``hrf``, shipped or the authors'), else ``drive``."""
    if calibration != "auto":
        return calibration
    name = Path(weights).name
    for dataset, authors_file in AUTHORS_FILES.items():
        if name in (authors_file, f"{dataset}.safetensors"):
            return dataset
    return "drive"
