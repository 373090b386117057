"""Which weights file a ``--model`` / ``--weights`` pair means, and which training images calibrate its int8 export."""

from __future__ import annotations

import math
import os
from itertools import pairwise
from pathlib import Path
from typing import NamedTuple

from ..data.datasets import DATASETS
from ..errors import M2UNetError
from .authors import AUTHORS_FILES
from .load import read_metadata
from .shipped import pretrained_path


def _closest_model_limits() -> tuple[tuple[int, str], ...]:
    """((widest FOV, model), …) of :func:`closest_dataset_model`, from the datasets' native FOV diameters (:data:`DATASETS`).

    Between neighbouring diameters a < b the limit is the FOV width x at which the two models are equally far from
    the scale they were trained at, x / a − 1 = 1 − x / b: the harmonic mean 2ab / (a + b), rounded up to 100 px.
    DRIVE 538, CHASE_DB1 921, HRF 3263 px give 679 → 700 and 1437 → 1500.
    """
    specs = sorted(DATASETS.values(), key=lambda spec: spec.fov_diameter)
    return tuple(
        (math.ceil(2 * a.fov_diameter * b.fov_diameter / (a.fov_diameter + b.fov_diameter) / 100) * 100, a.name)
        for a, b in pairwise(specs)
    )


# `--model auto`: the universal model. Left out of training, a camera is segmented better by one model trained on the
# other two datasets (mean F1 0.7344) than by the closest per-dataset model (0.7207; results/scale/loo.md).
AUTO_MODEL = "universal"
CLOSEST_MODEL_LIMITS = _closest_model_limits()  # ((700, "drive"), (1500, "chase_db1"))
CLOSEST_MODEL_LARGEST = max(DATASETS.values(), key=lambda spec: spec.fov_diameter).name  # "hrf"


def closest_dataset_model(fov_width: int) -> str:
    """The per-dataset model closest in scale to an image whose field of view is ``fov_width`` pixels wide: the rule of
    ``--model auto`` before the universal model, kept as the baseline it was compared with (results/scale/loo.md).

    Rule (:data:`CLOSEST_MODEL_LIMITS`): the dataset whose native FOV diameter is closest in scale, so vessels have the
    width the model was trained on: FOV width ≤ 700 px → ``drive``; ≤ 1500 px → ``chase_db1``; wider → ``hrf``.
    The FOV width is the number of columns spanned by the FOV mask (the image width when no mask is used).
    """
    for limit, name in CLOSEST_MODEL_LIMITS:
        if fov_width <= limit:
            return name
    return CLOSEST_MODEL_LARGEST


# What the diameter search costs against the stored range alone: the span of the ratios results/scale/latency.md
# measured (a test checks it still spans them). Every help text that states it reads it here.
SEARCH_TIME = "3.6–6× the time"


class AutoRun(NamedTuple):
    """What a run does beyond its model's stored scale (:func:`auto_run`)."""

    search_diameter: bool  # each photograph's FOV diameter searched (m2unet.data.scale.DiameterSearch)
    tta: bool  # the view it is kept at averaged with its three flips (m2unet.inference.tiling.flip_average)


def auto_run(model: str = "auto", weights: str | os.PathLike | None = None, search_diameter: bool | None = None,
             tta: bool | None = None) -> AutoRun:
    """Whether a run searches each photograph's FOV diameter and averages the kept view's flips: each as asked
    (``--search-diameter`` / ``--tta`` and their ``--no-`` forms), else only with ``--model auto`` and no weights file.
    On cameras left out of training the search does as well as the stored range or better, most on the
    high-resolution one, and the flips raise the searched map's F1 on every one, taking held-out CHASE_DB1 past the
    issue's 0.785 (results/scale/loo.md; in domain: README). ``--model universal`` runs neither, in a fraction of the
    time (:data:`SEARCH_TIME`, m2unet.inference.tiling.TTA_TIME)."""
    default = weights is None and model == "auto"
    return AutoRun(default if search_diameter is None else search_diameter, default if tta is None else tta)


def resolve_weights(model: str = "auto", weights: str | os.PathLike | None = None) -> Path:
    """The weights file: ``weights`` when given, else the pretrained model ``model`` (``auto``: :data:`AUTO_MODEL`)."""
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise M2UNetError(f"{path}: no such weights file")
        return path
    return pretrained_path(AUTO_MODEL if model == "auto" else model)


def calibration_for(weights: str | os.PathLike, calibration: str = "auto") -> str:
    """int8 calibration data for a weights file: ``calibration`` unless ``auto``; for ``auto`` the dataset of a
    pretrained model (``drive``/``chase_db1``/``hrf``, shipped or the authors'), the datasets a model was trained on
    together (``universal``: ``drive,chase_db1,hrf``), else ``drive``."""
    if calibration != "auto":
        return calibration
    name = Path(weights).name
    for dataset, authors_file in AUTHORS_FILES.items():
        if name in (authors_file, f"{dataset}.safetensors"):
            return dataset
    if Path(weights).suffix == ".safetensors" and Path(weights).is_file():
        trained_on = read_metadata(weights).get("datasets")  # a model trained on several datasets: all of them
        if isinstance(trained_on, list) and trained_on and all(d in DATASETS for d in trained_on):
            return ",".join(trained_on)
    return "drive"
