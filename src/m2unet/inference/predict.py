"""Running a PyTorch model on whole images: padding to a multiple of 16, optional bf16 / fp16 autocast and channels_last.

Tiling and flip averaging, which work with any backend, are in :mod:`.tiling` (numpy only, no torch).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .tiling import MULTIPLE


def pad_to_multiple(batch: torch.Tensor, multiple: int = MULTIPLE) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero-pad N×C×H×W on the bottom and right so H and W are multiples of ``multiple``.

    Zero is the black surround of a fundus photograph, so the padding looks like more background.
    """
    h, w = batch.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h or pad_w:
        batch = F.pad(batch, (0, pad_w, 0, pad_h))
    return batch, (h, w)


def autocast_context(device: torch.device | str, dtype: torch.dtype | None, cache_enabled: bool = True):
    """Autocast to ``dtype`` (bf16 / fp16) on ``device``'s type; no autocast (fp32) when ``dtype`` is None.

    ``cache_enabled=False`` keeps no cast weights between regions, as CUDA-graph capture needs.
    """
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype, cache_enabled=cache_enabled)


@torch.inference_mode()
def predict_logits(model: nn.Module, images: torch.Tensor, autocast: torch.dtype | None = None, channels_last: bool = False) -> torch.Tensor:
    """Logits (float32, N×1×H×W) for a float batch N×3×H×W in [0, 1] of any H, W; ``autocast``: bf16 / fp16 or None (fp32)."""
    device = next(model.parameters()).device
    padded, (h, w) = pad_to_multiple(images.to(device))
    if channels_last:
        padded = padded.contiguous(memory_format=torch.channels_last)
    with autocast_context(device, autocast):
        logits = model(padded)
    return logits[..., :h, :w].float()


def predict_probability(model: nn.Module, image: np.ndarray, bf16: bool = False, channels_last: bool = False) -> np.ndarray:
    """Vessel probability (float32 H×W in [0, 1]) for one RGB float image H×W×3 in [0, 1]."""
    batch = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
    logits = predict_logits(model, batch, autocast=torch.bfloat16 if bf16 else None, channels_last=channels_last)
    return torch.sigmoid(logits)[0, 0].cpu().numpy()
