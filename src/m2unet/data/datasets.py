"""Readers for DRIVE, CHASE_DB1, HRF (the paper's splits and crops) and for a user's own folder.

Each reader is a sequence of :class:`Sample`; files are read lazily, one sample at a time.
The dataset facts (splits, crops, file quirks) are in ``../shared/datasets/README.md``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

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

    def size(self, shape: tuple[int, ...]) -> tuple[int, int]:
        """(H, W) this crop keeps of an image of ``shape``."""
        h = shape[0] - self.top if self.height is None else self.height
        w = shape[1] - self.left if self.width is None else self.width
        return (h, w)

    def apply(self, array: np.ndarray) -> np.ndarray:
        h, w = self.size(array.shape)
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
        return None if self.expected_size is None else self.crop.size(self.expected_size)


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the package knows about one built-in dataset, in one place: its reader and the CLIs' choices, the
    training presets, the paper's tables and ``--model auto`` all read it from :data:`DATASETS`."""

    name: str  # the key everywhere: CLI choices, pretrained model names, weights metadata, the paper's tables
    label: str  # how tables and messages write it
    folder: str  # its folder under the datasets root (:func:`default_datasets_root`)
    layout: str  # where images, labels and FOV masks lie in that folder
    labels: str  # which annotation is scored, the second observer, the FOV masks
    reader: Callable[..., SegmentationDataset]  # (folder, split) → the split's files, checked
    splits: Mapping[str, tuple[str, ...]]  # split → image names in reading order; "train"/"test" are the paper's
    image_size: tuple[int, int]  # (H, W) of every original image, checked on read
    crop: Crop  # the paper's crop
    # FOV diameter in pixels (larger side of the FOV mask's box, median over the training split's masks; the test splits
    # agree within 1 px): the scale the per-dataset model was trained at (m2unet.data.scale, --model auto).
    fov_diameter: int
    preset: Mapping[str, object]  # this dataset's entries of its training preset: the paper's batch size, …
    holdout: tuple[str, ...]  # training images held out for validation when several datasets train together
    aliases: tuple[str, ...] = ()  # other names accepted for it (case and "-"/"_" aside)

    def __post_init__(self):
        object.__setattr__(self, "splits", MappingProxyType(dict(self.splits)))
        object.__setattr__(self, "preset", MappingProxyType(dict(self.preset)))

    @property
    def input_size(self) -> tuple[int, int]:
        """(H, W) after the crop: the input size the paper's numbers refer to."""
        return self.crop.size(self.image_size)

    def image_names(self, split: str) -> tuple[str, ...]:
        if split not in self.splits:
            raise M2UNetError(f"{self.label} has splits {', '.join(self.splits)}, not {split!r}")
        return self.splits[split]

    def dataset(self, split: str, items: list[ItemFiles]) -> SegmentationDataset:
        """A split's files with this dataset's crop and size check."""
        return SegmentationDataset(self.name, split, items, self.crop, expected_size=self.image_size)

    def load(self, split: str = "test", root: str | os.PathLike | None = None) -> SegmentationDataset:
        """The split, from ``root`` (the folder holding this dataset's folder; default :func:`default_datasets_root`)."""
        return self.reader((Path(root) if root else default_datasets_root()) / self.folder, split)


def _require(path: Path) -> Path:
    if not path.exists():
        raise InputFileError(path, "no such file (is the dataset complete?)")
    return path


def _dataset_folder(root: str | os.PathLike | None, spec: DatasetSpec) -> Path:
    path = Path(root) if root else default_datasets_root() / spec.folder
    if not path.is_dir():
        raise M2UNetError(f"{path}: no such folder; expected the original {spec.label} layout ({spec.layout}; see `m2unet datasets check --help`)")
    return path


def drive(root: str | os.PathLike | None = None, split: str = "test") -> SegmentationDataset:
    """DRIVE: official 20 training (21–40) / 20 test (01–20); centre crop 544×544 (rows 20–563, cols 10–553)."""
    spec = DATASETS["drive"]
    names = spec.image_names(split)
    root = _dataset_folder(root, spec)
    items = []
    for name in names:  # "21_training", "01_test"
        number, folder = name.split("_")
        base = root / folder
        items.append(
            ItemFiles(
                name=name,
                image=_require(base / "images" / f"{name}.tif"),
                label=_require(base / "1st_manual" / f"{number}_manual1.gif"),
                mask=_require(base / "mask" / f"{name}_mask.gif"),
                second_label=_require(base / "2nd_manual" / f"{number}_manual2.gif") if folder == "test" else None,
            )
        )
    return spec.dataset(split, items)


def chase_db1(root: str | os.PathLike | None = None, split: str = "test", fov_masks: str | os.PathLike | None = None) -> SegmentationDataset:
    """CHASE_DB1: train = first 8 (Image_01L–04R), test = last 20; crop 18 px left, 21 px right → 960×960.

    Split ``test_01_10`` (Image_01L–10R) is where the authors' own checkpoint reproduces the paper's F1
    (it was trained on the last 8 images). CHASE_DB1 has no official FOV masks: the third-party masks in
    ``CHASE_DB1_fov_mask_unofficial`` beside the dataset are used when present, else masks are estimated.
    """
    spec = DATASETS["chase_db1"]
    names = spec.image_names(split)
    root = _dataset_folder(root, spec)
    masks = Path(fov_masks) if fov_masks else root.parent / "CHASE_DB1_fov_mask_unofficial"
    items = [
        ItemFiles(
            name=name,
            image=_require(root / f"{name}.jpg"),
            label=_require(root / f"{name}_1stHO.png"),
            second_label=_require(root / f"{name}_2ndHO.png"),
            mask=(masks / f"{name}.png") if (masks / f"{name}.png").is_file() else None,
        )
        for name in names
    ]
    return spec.dataset(split, items)


def hrf(root: str | os.PathLike | None = None, split: str = "test") -> SegmentationDataset:
    """HRF: train = images 01–05 of each category (15), test = 06–15 (30); full 3504×2336, no crop."""
    spec = DATASETS["hrf"]
    names = spec.image_names(split)
    root = _dataset_folder(root, spec)
    items = []
    for name in names:  # "01_h", "06_dr"
        image = root / "images" / f"{name}.{'JPG' if name.endswith('_dr') else 'jpg'}"
        if not image.exists():  # extension case differs between copies
            matches = [p for p in (root / "images").glob(f"{name}.*") if p.suffix.lower() == ".jpg"]
            image = matches[0] if matches else image
        items.append(ItemFiles(name, _require(image), _require(root / "manual1" / f"{name}.tif"), _require(root / "mask" / f"{name}_mask.tif")))
    return spec.dataset(split, items)


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


HRF_CATEGORIES = ("h", "g", "dr")
CHASE_NAMES = tuple(f"Image_{n:02d}{side}" for n in range(1, 15) for side in "LR")

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "drive", "DRIVE", "DRIVE", reader=drive,
            layout="training/ and test/, each with images/NN_*.tif, 1st_manual/NN_manual1.gif, mask/NN_*_mask.gif; test/2nd_manual/",
            labels="first observer (1st_manual) scored; second observer (2nd_manual, palette GIFs) on the test split; official FOV masks",
            splits={"train": tuple(f"{n:02d}_training" for n in range(21, 41)), "test": tuple(f"{n:02d}_test" for n in range(1, 21))},
            image_size=(584, 565), crop=Crop(20, 10, 544, 544), fov_diameter=538,
            preset={"batch_size": 4}, holdout=("39_training", "40_training"),
        ),
        DatasetSpec(
            "chase_db1", "CHASE_DB1", "CHASE_DB1", reader=chase_db1, aliases=("chasedb1", "chase"),
            layout="flat: Image_NNX.jpg, Image_NNX_1stHO.png, Image_NNX_2ndHO.png",
            labels="first observer (1stHO) scored, second observer (2ndHO) on every image; no official FOV masks: the unofficial "
                   "third-party ones in CHASE_DB1_fov_mask_unofficial/ beside it when present, else estimated",
            splits={"train": CHASE_NAMES[:8], "test": CHASE_NAMES[8:], "test_01_10": CHASE_NAMES[:20], "train_11_14": CHASE_NAMES[20:]},
            image_size=(960, 999), crop=Crop(0, 18, 960, 960), fov_diameter=921,
            preset={"batch_size": 2}, holdout=("Image_04L", "Image_04R"),
        ),
        DatasetSpec(
            "hrf", "HRF", "HRF", reader=hrf,
            layout="images/NN_c.jpg (.JPG for dr), manual1/NN_c.tif, mask/NN_c_mask.tif; c in h, g, dr",
            labels="one observer (manual1; 11–13_h hold grey values, binarised at ≥ 128); official FOV masks (RGB)",
            splits={split: tuple(f"{n:02d}_{c}" for c in HRF_CATEGORIES for n in numbers) for split, numbers in (("train", range(1, 6)), ("test", range(6, 16)))},
            image_size=(2336, 3504), crop=Crop(), fov_diameter=3263,
            preset={"batch_size": 1, "val_every": 10}, holdout=("05_h", "05_g", "05_dr"),
        ),
    )
}
FOV_DIAMETER = {name: spec.fov_diameter for name, spec in DATASETS.items()}
_KEYS = {key: spec.name for spec in DATASETS.values() for key in (spec.name, *spec.aliases)}


def dataset_names() -> tuple[str, ...]:
    """The built-in datasets' names: ``("drive", "chase_db1", "hrf")``."""
    return tuple(DATASETS)


def dataset_key(name: str) -> str:
    """The built-in name that ``name`` means (an alias, any case, "-" for "_"); other text comes back normalised the same way."""
    key = str(name).strip().lower().replace("-", "_")
    return _KEYS.get(key, key)


def get_dataset_spec(name_or_alias: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of a built-in dataset, by name or alias."""
    key = dataset_key(name_or_alias)
    if key not in DATASETS:
        raise M2UNetError(f"{name_or_alias}: not a built-in dataset ({', '.join(DATASETS)})")
    return DATASETS[key]


def load_dataset(name_or_path: str | os.PathLike, split: str = "test", root: str | os.PathLike | None = None) -> SegmentationDataset:
    """``"drive"``, ``"chase_db1"``, ``"hrf"`` (or an alias) or a folder of one's own (see :func:`image_folder`).

    ``root`` is the folder holding ``DRIVE/``, ``CHASE_DB1/`` and ``HRF/`` (default :func:`default_datasets_root`).
    """
    key = dataset_key(name_or_path)
    if key in DATASETS:
        return DATASETS[key].load(split, root)
    path = Path(name_or_path)
    if path.is_dir():
        return image_folder(path, split)
    raise M2UNetError(f"{name_or_path}: neither a dataset name ({', '.join(DATASETS)}) nor a folder")
