"""Shared fixtures: the read-only datasets and reference weights beside the checkout (../shared)."""

from __future__ import annotations

import os
from pathlib import Path

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
