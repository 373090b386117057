"""Shared fixtures: the read-only datasets and reference weights beside the checkout (../shared), and a synthetic photograph."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DATASETS = SHARED / "datasets"
AUTHORS = SHARED / "weights" / "m2unet-authors"
IMAGENET_RAW01 = SHARED / "weights" / "mobilenet_v2-imagenet" / "mobilenet_v2_features14_imagenet_raw01.pth"
IMAGENET_NORM = SHARED / "weights" / "mobilenet_v2-imagenet" / "mobilenet_v2_features14_imagenet_imagenetnorm.pth"

# Offline: "imagenet" encoder weights come from the shared file, never from the network.
if IMAGENET_RAW01.is_file():
    os.environ.setdefault("M2UNET_IMAGENET_WEIGHTS", str(IMAGENET_RAW01))
if DATASETS.is_dir():
    os.environ.setdefault("M2UNET_DATASETS", str(DATASETS))


@pytest.fixture(scope="session")
def datasets_root() -> Path:
    if not DATASETS.is_dir():
        pytest.skip(f"datasets not found at {DATASETS}")
    return DATASETS


@pytest.fixture(scope="session")
def authors_dir() -> Path:
    if not AUTHORS.is_dir():
        pytest.skip(f"authors' checkpoints not found at {AUTHORS}")
    return AUTHORS


@pytest.fixture(scope="session")
def export_cache(tmp_path_factory) -> Path:
    """A fresh cache for ONNX/OpenVINO exports (m2unet.export.cached_export), shared by the whole session."""
    path = tmp_path_factory.mktemp("m2unet-exports")
    os.environ["M2UNET_CACHE"] = str(path)
    return path


def disk_photograph(light_falloff: float = 0.0):
    """(image, label, FOV mask) of a 300×400 synthetic photograph: a disk FOV 241 px across, reddish, with dark 4-px
    vertical vessels every 20 px; ``light_falloff`` dims it from left to right by that fraction (uneven illumination)."""
    rows, cols = np.mgrid[:300, :400]
    mask = (rows - 150) ** 2 + (cols - 200) ** 2 <= 120**2
    label = mask & (cols % 20 < 4)
    image = np.zeros((300, 400, 3), dtype=np.float32)
    light = (1.0 - light_falloff * (cols / 400 - 0.5))[..., None]
    image[mask] = ((0.7, 0.35, 0.15) * light)[mask]
    image[label] *= 0.5
    return image, label, mask


@pytest.fixture(scope="session")
def camera(tmp_path_factory):
    """Two labelled synthetic photographs, and the universal model's tensors stored as if trained at a 128-px FOV (so
    that the eight candidates run fast)."""
    from PIL import Image

    from m2unet.weights import pretrained_path, read_metadata, read_state_dict, save_state

    root = tmp_path_factory.mktemp("camera")
    for folder in ("images", "labels"):
        (root / "photos" / folder).mkdir(parents=True)
    for index, falloff in enumerate((0.0, 0.4)):
        image, label, _ = disk_photograph(falloff)
        Image.fromarray((image * 255).astype(np.uint8)).save(root / "photos" / "images" / f"eye{index}.png")
        Image.fromarray(label.astype(np.uint8) * 255).save(root / "photos" / "labels" / f"eye{index}.png")
    source = pretrained_path("universal")
    metadata = {**read_metadata(source), "fov_diameter": 128, "run_fov_diameter": [128, 160]}
    weights = save_state(read_state_dict(source), root / "small.safetensors", metadata)
    return root, weights


@pytest.fixture(scope="session")
def clinic(camera, tmp_path_factory):
    """A model calibrated by `m2unet calibrate` on the two labelled synthetic photographs, and one of them."""
    from m2unet.data import load_dataset
    from m2unet.evaluation.calibrate import calibrate

    root, weights = camera
    out = tmp_path_factory.mktemp("clinic") / "clinic.safetensors"
    calibrate(weights, load_dataset(str(root / "photos"), "train"), out, progress=False)
    return out, root / "photos" / "images" / "eye1.png"
