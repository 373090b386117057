"""One preset per dataset: every hyper-parameter of a training run in one place (the paper's, unless noted).

Paper (Laibacher et al. 2019, Sec. 4): AdamW, learning rate 1e-3, loss BCE + 0.3·(1 − J), 300 epochs,
batch 4 (DRIVE, 544² crops), 2 (CHASE_DB1, 960²), 1 (HRF, full 2336×3504), encoder from ImageNet
MobileNetV2, input RGB in [0, 1] without normalisation, augmentations as in :mod:`.augment`.

Choices the paper leaves open, made here:
- ``jaccard``: ``global``. On DRIVE (300 epochs each, ``results/train/README.md``) both forms reach the same
  validation Dice (0.8365 / 0.8364) and the global form the better test F1 (0.8101 vs 0.8058 for Eq. 3).
- validation: ``val_copies`` augmented copies of every training image, drawn once with ``val_seed``
  (the paper has no separate validation images); evaluated every ``val_every`` epochs and at the end.
- AdamW's weight decay: PyTorch's default 0.01; constant learning rate (the paper names no schedule;
  ``--lr-schedule cosine`` anneals it to 0 over the epochs, a variant beyond the paper; ``--ema-half-life H`` keeps
  an exponential moving average of the weights, another).
- ``crop``: random crops of this size during training (None: the whole image). HRF on CPU: ``--crop 1024``
  is offered as a documented deviation (memory and time); validation always uses whole images.

Several datasets in one run (``--dataset drive,chase_db1,hrf``; the ``universal`` model, and the leave-one-dataset-out
runs with two of them) use :data:`MULTI`: every image scaled so that its FOV is ``fov_diameter`` pixels across (the
same :class:`m2unet.data.scale.ScaleFrame` as inference), datasets sampled in balance, random 512² crops in batches
of 4, the camera-variation augmentations on top of the paper's, and validation on held-out training images of every
dataset (``holdout``: the last two DRIVE images, the last CHASE_DB1 patient's pair, the fifth image of each HRF
category), whose pooled Dice picks the best epoch and the threshold; after the last epoch the same images choose the
FOV diameters the model runs photographs at (:mod:`m2unet.training.run_diameter`). Why D = 1024: results/scale/ceiling.md (HRF
labels keep an F1 ceiling of 0.971 at 1024 px against 0.944 at 768 and 0.879 at 512; DRIVE and CHASE_DB1 lose nothing).
``vessel_width`` W (``--vessel-width``) scales each dataset instead to the FOV diameter where its training labels' mean vessel
width is W px (:func:`m2unet.training.data.dataset_diameters`; W = 6: DRIVE 962, CHASE_DB1 876, HRF 2077 px), and the model then
runs a photograph where its own map's vessels have that width (:class:`m2unet.data.scale.WidthRule`), which needs no FOV
diameter of the camera to be right (results/scale/vessel_width.md: one FOV diameter is not one vessel width).
``pool_coarse_labels`` (``--pool-coarse-labels``): a dataset enlarged 1.5× or more to its diameter (DRIVE at 1024 px: 1.9×) is
compared with its labels as k×k max-pooled blocks, k the rounded enlargement (:func:`m2unet.data.scale.label_pool`), in
the loss and in validation, as :func:`m2unet.data.scale.shrink_by_max` brings such maps back: its annotators marked every
pixel a vessel crosses, so the model learns to draw vessels as thin as CHASE_DB1's and HRF's labels have them, not as
enlarged DRIVE pixels.
``threshold_rule`` (``--threshold-rule``): ``held-out``, the stored threshold is the held-out images' best pooled Dice (as for
one dataset); ``camera-changes``, the best mean F1 over those images changed as other cameras change them, run as
``segment`` runs the final weights (:mod:`m2unet.evaluation.camera_threshold`; results/scale/threshold_camera_changes.md).
"""

from __future__ import annotations

import copy

from ..data.datasets import DATASETS, dataset_key
from ..errors import M2UNetError

COMMON = {
    "model": "m2unet",
    "encoder_weights": "imagenet",
    "optimizer": "adamw",
    "lr": 1e-3,
    "lr_schedule": "constant",
    "ema_half_life": None,
    "weight_decay": 0.01,
    "jaccard": "global",
    "jaccard_weight": 0.3,
    "epochs": 300,
    "crop": None,
    "val_copies": 1,
    "val_seed": 20190616,
    "val_every": 5,
    "seed": 42,
    "augment": {
        "hflip": 0.5, "vflip": 0.5, "rotation_degrees": 15.0, "rotation_p": 0.5,
        "elastic_grid": [8, 8], "elastic_magnitude": 1, "elastic_p": 1.0,
        "brightness": 0.3, "contrast": 0.3, "saturation": 0.02, "hue": 0.02, "jitter_p": 0.5,
    },
}

CAMERA_AUGMENT = {"scale": 0.2, "scale_p": 0.5, "gamma_p": 0.3, "temperature_p": 0.3, "blur_p": 0.3, "low_contrast_p": 0.3,
                  "vignette_p": 0.3, "noise_p": 0.3, "jpeg_p": 0.3}
HOLDOUT = {name: list(spec.holdout) for name, spec in DATASETS.items()}
MULTI = {**COMMON, "batch_size": 4, "crop": 512, "fov_diameter": 1024, "vessel_width": None, "pool_coarse_labels": False,
         "threshold_rule": "held-out", "epochs": 150, "val_every": 5, "balanced": True,
         "augment": {**COMMON["augment"], **CAMERA_AUGMENT}}

PRESETS = {
    # the paper's batch size per dataset (and HRF validated every 10 epochs): DatasetSpec.preset
    **{name: {**COMMON, "dataset": name, **spec.preset} for name, spec in DATASETS.items()},
    # a user's own folder: DRIVE's recipe
    "folder": {**COMMON, "dataset": None, "batch_size": 4},
}


def preset_for(dataset: str) -> dict:
    """A deep copy of the preset of a dataset name (``drive``, ``chase_db1``, ``hrf``), of a folder, or of several
    dataset names joined by commas (``drive,chase_db1,hrf``: :data:`MULTI`)."""
    if "," in str(dataset):
        datasets = [dataset_key(name) for name in str(dataset).split(",") if name.strip()]
        unknown = [name for name in datasets if name not in HOLDOUT]
        if unknown or len(set(datasets)) != len(datasets) or len(datasets) < 2:
            raise M2UNetError(f"--dataset {dataset}: several datasets must be distinct names among {', '.join(HOLDOUT)}")
        return copy.deepcopy({**MULTI, "dataset": "+".join(datasets), "datasets": datasets, "holdout": {d: HOLDOUT[d] for d in datasets}})
    key = dataset_key(dataset)
    preset = copy.deepcopy(PRESETS.get(key, PRESETS["folder"]))
    preset["dataset"] = key if key in PRESETS else str(dataset)
    return preset
