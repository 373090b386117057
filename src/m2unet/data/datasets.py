"""Readers for DRIVE, CHASE_DB1, HRF (the paper's splits and crops) and for a user's own folder.

Each reader is a sequence of :class:`Sample`; files are read lazily, one sample at a time.
The dataset facts (splits, crops, file quirks) are in ``../shared/datasets/README.md``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputFileError, M2UNetError
from .fov import estimate_fov_mask
from .io import is_image_file, read_binary, read_image

DATASETS_ENV = "M2UNET_DATASETS"


def default_datasets_root() -> Path:
    """``$M2UNET_DATASETS``, else ``../shared/datasets`` (the layout of this project's checkouts), else ``./datasets``."""
    if os.environ.get(DATASETS_ENV):
        return Path(os.environ[DATASETS_ENV])
    from ..paths import shared_path

    return shared_path("datasets") or Path("datasets")


@dataclass(frozen=True)
class Crop:
    """Pixels kept: rows top..top+height, columns left..left+width (None: the whole image)."""

    top: int = 0
    left: int = 0
    height: int | None = None
    width: int | None = None

    def apply(self, array: np.ndarray) -> np.ndarray:
        h = array.shape[0] - self.top if self.height is None else self.height
        w = array.shape[1] - self.left if self.width is None else self.width
        return array[self.top : self.top + h, self.left : self.left + w]


@dataclass
class Sample:
    """One image of a dataset, already cropped as the paper does.

    ``removed_pixels`` is how many pixels the crop cut away: the paper counts them as true negatives
    when it computes accuracy and ROC AUC over the whole crop.
    """

    name: str
    image: np.ndarray  # float32 H×W×3 in [0, 1]
    mask: np.ndarray  # bool H×W field of view
    label: np.ndarray | None = None  # bool H×W vessels (first observer)
    second_label: np.ndarray | None = None  # bool H×W, second human observer where the dataset has one
    removed_pixels: int = 0
    image_path: Path | None = None


@dataclass
class ItemFiles:
    name: str
    image: Path
    label: Path | None = None
    mask: Path | None = None
    second_label: Path | None = None


@dataclass
class SegmentationDataset:
    """A list of files plus how to crop them; indexing reads one :class:`Sample`."""

    name: str
    split: str
    items: list[ItemFiles]
    crop: Crop = field(default_factory=Crop)
    expected_size: tuple[int, int] | None = None  # (H, W) of the original files, checked on read

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:
        item = self.items[index]
        image = read_image(item.image)
        shape = image.shape[:2]
        if self.expected_size is not None and shape != self.expected_size:
            raise InputFileError(item.image, f"size {shape[1]}×{shape[0]} is not the {self.name} size {self.expected_size[1]}×{self.expected_size[0]}")
        mask = read_binary(item.mask, shape) if item.mask else estimate_fov_mask(image)
        label = read_binary(item.label, shape) if item.label else None
        second = read_binary(item.second_label, shape) if item.second_label else None
        cropped = self.crop.apply(image)
        return Sample(
            name=item.name,
            image=np.ascontiguousarray(cropped),
            mask=np.ascontiguousarray(self.crop.apply(mask)),
            label=None if label is None else np.ascontiguousarray(self.crop.apply(label)),
            second_label=None if second is None else np.ascontiguousarray(self.crop.apply(second)),
            removed_pixels=int(shape[0] * shape[1] - cropped.shape[0] * cropped.shape[1]),
            image_path=item.image,
        )

    def __iter__(self):
        for index in range(len(self)):
            yield self[index]

    @property
    def cropped_size(self) -> tuple[int, int] | None:
        if self.expected_size is None:
            return None
        h = self.crop.height if self.crop.height is not None else self.expected_size[0] - self.crop.top
        w = self.crop.width if self.crop.width is not None else self.expected_size[1] - self.crop.left
        return (h, w)


def _require(path: Path) -> Path:
    if not path.exists():
        raise InputFileError(path, "no such file (is the dataset complete?)")
    return path


def _require_dir(path: Path, dataset: str) -> Path:
    if not path.is_dir():
        raise M2UNetError(f"{path}: no such folder; expected the original {dataset} layout (see `m2unet datasets check --help`)")
    return path


def drive(root: str | os.PathLike | None = None, split: str = "test") -> SegmentationDataset:
    """DRIVE: official 20 training (21–40) / 20 test (01–20); centre crop 544×544 (rows 20–563, cols 10–553)."""
    folder = {"train": "training", "test": "test"}.get(split)
    if folder is None:
        raise M2UNetError(f"DRIVE has splits 'train' and 'test', not {split!r}")
    root = _require_dir(Path(root or default_datasets_root() / "DRIVE"), "DRIVE")
    numbers = range(21, 41) if split == "train" else range(1, 21)
    items = []
    for n in numbers:
        base = root / folder
        items.append(
            ItemFiles(
                name=f"{n:02d}_{folder}",
                image=_require(base / "images" / f"{n:02d}_{folder}.tif"),
                label=_require(base / "1st_manual" / f"{n:02d}_manual1.gif"),
                mask=_require(base / "mask" / f"{n:02d}_{folder}_mask.gif"),
                second_label=_require(base / "2nd_manual" / f"{n:02d}_manual2.gif") if split == "test" else None,
            )
        )
    return SegmentationDataset("drive", split, items, Crop(20, 10, 544, 544), expected_size=(584, 565))


CHASE_NAMES = [f"Image_{n:02d}{side}" for n in range(1, 15) for side in "LR"]


def chase_db1(root: str | os.PathLike | None = None, split: str = "test", fov_masks: str | os.PathLike | None = None) -> SegmentationDataset:
    """CHASE_DB1: train = first 8 (Image_01L–04R), test = last 20; crop 18 px left, 21 px right → 960×960.

    Split ``test_01_10`` (Image_01L–10R) is where the authors' own checkpoint reproduces the paper's F1
    (it was trained on the last 8 images). CHASE_DB1 has no official FOV masks: the third-party masks in
    ``CHASE_DB1_fov_mask_unofficial`` beside the dataset are used when present, else masks are estimated.
    """
    splits = {"train": CHASE_NAMES[:8], "test": CHASE_NAMES[8:], "test_01_10": CHASE_NAMES[:20], "train_11_14": CHASE_NAMES[20:]}
    if split not in splits:
        raise M2UNetError(f"CHASE_DB1 has splits {', '.join(splits)}, not {split!r}")
    root = _require_dir(Path(root or default_datasets_root() / "CHASE_DB1"), "CHASE_DB1")
    masks = Path(fov_masks) if fov_masks else root.parent / "CHASE_DB1_fov_mask_unofficial"
    items = [
        ItemFiles(
            name=name,
            image=_require(root / f"{name}.jpg"),
            label=_require(root / f"{name}_1stHO.png"),
            second_label=_require(root / f"{name}_2ndHO.png"),
            mask=(masks / f"{name}.png") if (masks / f"{name}.png").is_file() else None,
        )
        for name in splits[split]
    ]
    return SegmentationDataset("chase_db1", split, items, Crop(0, 18, 960, 960), expected_size=(960, 999))


HRF_CATEGORIES = ("h", "g", "dr")


def hrf(root: str | os.PathLike | None = None, split: str = "test") -> SegmentationDataset:
    """HRF: train = images 01–05 of each category (15), test = 06–15 (30); full 3504×2336, no crop."""
    numbers = {"train": range(1, 6), "test": range(6, 16)}.get(split)
    if numbers is None:
        raise M2UNetError(f"HRF has splits 'train' and 'test', not {split!r}")
    root = _require_dir(Path(root or default_datasets_root() / "HRF"), "HRF")
    items = []
    for category in HRF_CATEGORIES:
        for n in numbers:
            name = f"{n:02d}_{category}"
            image = root / "images" / f"{name}.{'JPG' if category == 'dr' else 'jpg'}"
            if not image.exists():  # extension case differs between copies
                matches = [p for p in (root / "images").glob(f"{name}.*") if p.suffix.lower() == ".jpg"]
                image = matches[0] if matches else image
            items.append(ItemFiles(name, _require(image), _require(root / "manual1" / f"{name}.tif"), _require(root / "mask" / f"{name}_mask.tif")))
    return SegmentationDataset("hrf", split, items, Crop(), expected_size=(2336, 3504))


def image_folder(root: str | os.PathLike, split: str = "test") -> SegmentationDataset:
    """A user's own dataset. Naming convention (documented in the README):

    ``ROOT/images/NAME.ext`` (any readable format), optional ``ROOT/labels/NAME.*`` (vessels white) and
    ``ROOT/masks/NAME.*`` (FOV white; estimated from the image when absent). With ``ROOT/train/`` and
    ``ROOT/test/`` subfolders in that same layout, ``split`` picks one; else the whole folder is one split.
    No crop: images are padded to a multiple of 16 at inference.
    """
    root = Path(root)
    if (root / split / "images").is_dir():
        base = root / split
    elif (root / "images").is_dir():
        base = root
    else:
        raise M2UNetError(f"{root}: expected an images/ folder (or {split}/images/); see the README's 'Your own data'")

    def by_stem(folder: Path) -> dict[str, Path]:
        if not folder.is_dir():
            return {}
        return {p.stem: p for p in sorted(folder.iterdir()) if is_image_file(p)}

    labels, masks = by_stem(base / "labels"), by_stem(base / "masks")
    images = by_stem(base / "images")
    if not images:
        raise M2UNetError(f"{base / 'images'}: no image files found")
    items = [ItemFiles(stem, path, labels.get(stem), masks.get(stem)) for stem, path in images.items()]
    return SegmentationDataset(root.name or "custom", split, items, Crop())


BUILTIN = {"drive": drive, "chase_db1": chase_db1, "hrf": hrf}
# FOV diameter in pixels (larger side of the FOV mask's box, median over the training split's masks; the test splits
# agree within 1 px): the scale each per-dataset model was trained at (m2unet.data.scale).
FOV_DIAMETER = {"drive": 538, "chase_db1": 921, "hrf": 3263}


def load_dataset(name_or_path: str | os.PathLike, split: str = "test", root: str | os.PathLike | None = None) -> SegmentationDataset:
    """``"drive"``, ``"chase_db1"``, ``"hrf"`` or a folder of one's own (see :func:`image_folder`).

    ``root`` is the folder holding ``DRIVE/``, ``CHASE_DB1/`` and ``HRF/`` (default :func:`default_datasets_root`).
    """
    key = str(name_or_path).lower().replace("-", "_")
    if key in ("chasedb1", "chase"):
        key = "chase_db1"
    if key in BUILTIN:
        folder = {"drive": "DRIVE", "chase_db1": "CHASE_DB1", "hrf": "HRF"}[key]
        return BUILTIN[key]((Path(root) if root else default_datasets_root()) / folder, split)
    path = Path(name_or_path)
    if path.is_dir():
        return image_folder(path, split)
    raise M2UNetError(f"{name_or_path}: neither a dataset name (drive, chase_db1, hrf) nor a folder")
