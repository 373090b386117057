"""Running a model on whole images: padding to a multiple of 16, optional bf16 / channels_last."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MULTIPLE = 16


def pad_to_multiple(batch: torch.Tensor, multiple: int = MULTIPLE) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero-pad N×C×H×W on the bottom and right so H and W are multiples of ``multiple``.

    Zero is the black surround of a fundus photograph, so the padding looks like more background.
    """
    h, w = batch.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h or pad_w:
        batch = F.pad(batch, (0, pad_w, 0, pad_h))
    return batch, (h, w)


def autocast_context(device: torch.device | str, bf16: bool):
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


@torch.inference_mode()
def predict_logits(model: nn.Module, images: torch.Tensor, bf16: bool = False, channels_last: bool = False) -> torch.Tensor:
    """Logits (float32, N×1×H×W) for a float batch N×3×H×W in [0, 1] of any H, W."""
    device = next(model.parameters()).device
    padded, (h, w) = pad_to_multiple(images.to(device))
    if channels_last:
        padded = padded.contiguous(memory_format=torch.channels_last)
    with autocast_context(device, bf16):
        logits = model(padded)
    return logits[..., :h, :w].float()


def predict_probability(model: nn.Module, image: np.ndarray, bf16: bool = False, channels_last: bool = False) -> np.ndarray:
    """Vessel probability (float32 H×W in [0, 1]) for one RGB float image H×W×3 in [0, 1]."""
    batch = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
    return torch.sigmoid(predict_logits(model, batch, bf16=bf16, channels_last=channels_last))[0, 0].cpu().numpy()
