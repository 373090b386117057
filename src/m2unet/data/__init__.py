"""Data: image I/O, dataset readers with the paper's splits and crops, FOV masks."""

from .datasets import Crop, Sample, SegmentationDataset, chase_db1, default_datasets_root, drive, hrf, image_folder, load_dataset
from .fov import estimate_fov_mask
from .io import read_binary, read_image, save_png, write_atomic

__all__ = [
    "Crop", "Sample", "SegmentationDataset", "chase_db1", "default_datasets_root", "drive", "hrf", "image_folder",
    "load_dataset", "estimate_fov_mask", "read_binary", "read_image", "save_png", "write_atomic",
]
