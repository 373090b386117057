"""Training images in memory: every sample decoded once into one uint8 tensor N×5×H×W (RGB, label, FOV).

DRIVE (20×544²) and CHASE_DB1 (8×960²) take tens of MB this way; HRF (15×2336×3504) about 600 MB.
Images of different sizes (a user's own folder) are zero-padded at the bottom/right to a common size,
a multiple of 16; the padding is outside the FOV mask and carries no vessel.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.shape import INPUT_MULTIPLE
from ..errors import M2UNetError

MULTIPLE = INPUT_MULTIPLE


def load_training_tensor(dataset_name: str, split: str = "train", root=None, progress: bool = True) -> tuple[torch.Tensor, list[str]]:
    """(uint8 N×5×H×W tensor, sample names) for the training split of a dataset name or folder."""
    from tqdm import tqdm

    from ..data import load_dataset

    dataset = load_dataset(dataset_name, split, root=root)
    samples = []
    for sample in tqdm(dataset, desc=f"reading {dataset_name} {split}", unit="image", disable=not progress, leave=False):
        if sample.label is None:
            raise M2UNetError(f"{sample.image_path}: no label for this training image (expected labels/{sample.name}.*)")
        samples.append(sample)
    if not samples:
        raise M2UNetError(f"{dataset_name}: no training images")
    return stack_samples([(s.image, s.label, s.mask) for s in samples]), [s.name for s in samples]


def stack_samples(samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> torch.Tensor:
    """uint8 N×5×H×W from (RGB float, label bool, mask bool) triples, zero-padded to a common multiple of 16."""
    height = max(image.shape[0] for image, _, _ in samples)
    width = max(image.shape[1] for image, _, _ in samples)
    height, width = -(-height // MULTIPLE) * MULTIPLE, -(-width // MULTIPLE) * MULTIPLE
    stack = np.zeros((len(samples), 5, height, width), np.uint8)
    for i, (image, label, mask) in enumerate(samples):
        h, w = image.shape[:2]
        stack[i, :3, :h, :w] = np.rint(np.clip(image, 0.0, 1.0).transpose(2, 0, 1) * 255.0).astype(np.uint8)
        stack[i, 3, :h, :w] = label
        stack[i, 4, :h, :w] = mask
    return torch.from_numpy(stack)


def scaled_sample(sample, diameter: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, label, mask) of a dataset sample with its FOV brought to ``diameter`` pixels, as inference will see it
    (:func:`m2unet.data.scale.scale_frame`, no tolerance); label and mask re-binarised at 0.5."""
    from ..data.scale import scale_frame

    frame = scale_frame(sample.mask, diameter, tolerance=0.0)
    label = frame.to_model(sample.label.astype(np.float32)) >= 0.5
    mask = frame.to_model(sample.mask.astype(np.float32)) >= 0.5
    return frame.to_model(sample.image), label, mask


def relative_label_width(sample) -> float:
    """Mean vessel width of a sample's label inside its FOV, as a fraction of the FOV diameter (at its own resolution)."""
    from ..data.scale import fov_diameter, mean_vessel_width

    return mean_vessel_width(sample.label & sample.mask) / max(fov_diameter(sample.mask), 1)


def dataset_diameters(config: dict, root=None) -> dict[str, int]:
    """The FOV diameter each dataset of a multi-dataset run is trained at.

    ``fov_diameter`` for all; with ``vessel_width`` W, each dataset's own: the diameter at which its training labels
    (held-out images excluded) have a mean vessel width of W px, W / (mean over its images of label width / FOV
    diameter). Labels differ by camera and by annotator (HRF's draw many more thin vessels), and both are what the
    model learns to reproduce.
    """
    from ..data import load_dataset

    if not config.get("vessel_width"):
        return {name: int(config["fov_diameter"]) for name in config["datasets"]}
    diameters = {}
    for name in config["datasets"]:
        dataset = load_dataset(name, "train", root=root)
        kept_out = set(config["holdout"].get(name, []))
        ratios = [relative_label_width(sample) for sample in dataset if sample.name not in kept_out and sample.label is not None]
        if not ratios:
            raise M2UNetError(f"{name}: no labelled training images to measure vessel widths on")
        diameters[name] = int(round(float(config["vessel_width"]) / float(np.mean(ratios))))
    return diameters


def load_scaled_training_sets(datasets: list[str], diameters: dict[str, int], holdout: dict[str, list[str]], root=None,
                              progress: bool = True) -> tuple[torch.Tensor, torch.Tensor, list[str], torch.Tensor, list[str]]:
    """Several datasets' training splits, each image scaled to its dataset's FOV diameter (``diameters``), in memory.

    Returns (training stack, group of each training image (index into ``datasets``), training names, validation
    stack, validation names). ``holdout`` names the training images of each dataset kept out of training and used,
    unaugmented, for validation and the choice of the threshold. Names are ``dataset/image``.
    """
    from tqdm import tqdm

    from ..data import load_dataset

    train, groups, names, val, val_names = [], [], [], [], []
    for group, name in enumerate(datasets):
        dataset = load_dataset(name, "train", root=root)
        kept_out = set(holdout.get(name, []))
        unknown = kept_out - {item.name for item in dataset.items}
        if unknown:
            raise M2UNetError(f"{name}: held-out image(s) {', '.join(sorted(unknown))} are not in its training split")
        diameter = diameters[name]
        for sample in tqdm(dataset, desc=f"reading {name} train at FOV {diameter} px", unit="image", disable=not progress, leave=False):
            if sample.label is None:
                raise M2UNetError(f"{sample.image_path}: no label for this training image")
            held = sample.name in kept_out
            (val if held else train).append(scaled_sample(sample, diameter))
            (val_names if held else names).append(f"{name}/{sample.name}")
            if not held:
                groups.append(group)
    if not train or not val:
        raise M2UNetError(f"{'+'.join(datasets)}: need training and held-out validation images")
    return stack_samples(train), torch.tensor(groups), names, stack_samples(val), val_names


def balanced_order(groups: torch.Tensor) -> torch.Tensor:
    """One epoch's image order with every group (dataset) equally often: each group's images in a random order,
    repeated up to the largest group's size, then all shuffled together (torch's global generator)."""
    largest = int(torch.bincount(groups).max())
    parts = []
    for group in torch.unique(groups).tolist():
        members = torch.nonzero(groups == group).flatten()
        repeats = -(-largest // len(members))
        parts.append(torch.cat([members[torch.randperm(len(members))] for _ in range(repeats)])[:largest])
    order = torch.cat(parts)
    return order[torch.randperm(len(order))]


def to_float(stack: torch.Tensor) -> torch.Tensor:
    """uint8 N×5×H×W → float32 with RGB in [0, 1] and label/mask as 0/1."""
    out = stack.float()
    out[:, :3] /= 255.0
    return out


def random_crop(batch: torch.Tensor, size: int | None) -> torch.Tensor:
    """A random size×size window per sample (torch's global generator); the whole batch when size is None."""
    if size is None:
        return batch
    _, _, h, w = batch.shape
    ch, cw = min(size, h), min(size, w)
    ch, cw = ch - ch % MULTIPLE, cw - cw % MULTIPLE
    tops = torch.randint(0, h - ch + 1, (batch.shape[0],)).tolist()
    lefts = torch.randint(0, w - cw + 1, (batch.shape[0],)).tolist()
    return torch.stack([b[:, t : t + ch, left : left + cw] for b, t, left in zip(batch, tops, lefts, strict=True)])
