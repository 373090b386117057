"""Training images in memory: every sample decoded once into one uint8 tensor N×5×H×W (RGB, label, FOV).

DRIVE (20×544²) and CHASE_DB1 (8×960²) take tens of MB this way; HRF (15×2336×3504) about 600 MB.
Images of different sizes (a user's own folder) are zero-padded at the bottom/right to a common size,
a multiple of 16; the padding is outside the FOV mask and carries no vessel.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import M2UNetError

MULTIPLE = 16


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
    height = max(s.image.shape[0] for s in samples)
    width = max(s.image.shape[1] for s in samples)
    height, width = -(-height // MULTIPLE) * MULTIPLE, -(-width // MULTIPLE) * MULTIPLE
    stack = np.zeros((len(samples), 5, height, width), np.uint8)
    for i, s in enumerate(samples):
        h, w = s.image.shape[:2]
        stack[i, :3, :h, :w] = np.rint(s.image.transpose(2, 0, 1) * 255.0).astype(np.uint8)
        stack[i, 3, :h, :w] = s.label
        stack[i, 4, :h, :w] = s.mask
    return torch.from_numpy(stack), [s.name for s in samples]


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
