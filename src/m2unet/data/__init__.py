"""Data: image I/O, dataset readers with the paper's splits and crops, FOV masks."""

from .datasets import (
    DATASETS,
    Crop,
    DatasetSpec,
    Sample,
    SegmentationDataset,
    chase_db1,
    dataset_names,
    default_datasets_root,
    drive,
    get_dataset_spec,
    hrf,
    image_folder,
    load_dataset,
)
from .fov import estimate_fov_mask
from .io import read_binary, read_image, save_png, write_atomic

__all__ = [
    "DATASETS", "Crop", "DatasetSpec", "Sample", "SegmentationDataset", "chase_db1", "dataset_names", "default_datasets_root", "drive",
    "get_dataset_spec", "hrf", "image_folder",
    "load_dataset", "estimate_fov_mask", "read_binary", "read_image", "save_png", "write_atomic",
]
