"""Stored outputs of every registered model, for the regression test in test_models_baselines.py.

The weights are not random: each tensor of the state_dict is filled from a hash of its element index (scaled by
1/sqrt(fan-in); BatchNorm statistics kept positive), so they are the same on any machine and torch version, and
the input is a fixed pattern. A change to a model's forward pass (layer order, padding, upsampling mode, BatchNorm
placement) changes these numbers. After an intended change, rewrite the file and say why in the commit:

    .venv/bin/python tests/model_outputs.py
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

OUTPUTS_FILE = Path(__file__).parent / "data" / "model_outputs.json"
INPUT_SHAPE = (1, 3, 64, 96)  # a multiple of 16 (M2U-Net, U-Net) and 8 (ERFNet); small, so U-Net is quick
SAMPLES = 16  # output values stored per model, at evenly spaced flat positions


def fill_deterministic(model: torch.nn.Module) -> torch.nn.Module:
    state = {}
    for index, (key, value) in enumerate(model.state_dict().items()):
        if not value.is_floating_point():
            state[key] = value
            continue
        # a hash of the element index (uniform in [-1, 1), uncorrelated between neighbours: a smooth wave would add up
        # coherently in every convolution and blow the activations up)
        hashed = torch.sin(torch.arange(value.numel(), dtype=torch.float64) * 12.9898 + index * 78.233) * 43758.5453
        wave = (2.0 * (hashed - torch.floor(hashed)) - 1.0).reshape(value.shape)
        if key.endswith("running_var"):
            filled = 1.0 + 0.5 * wave.abs()
        elif key.endswith("running_mean") or key.endswith("bias"):
            filled = 0.1 * wave
        elif value.dim() == 1:  # BatchNorm scale
            filled = 1.0 + 0.1 * wave
        else:
            filled = wave * math.sqrt(3.0 / value[0].numel())  # unit variance through each layer, roughly
        state[key] = filled.to(value.dtype)
    model.load_state_dict(state)
    return model.eval()


def fixed_input() -> torch.Tensor:
    n, c, h, w = INPUT_SHAPE
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([0.5 + 0.4 * torch.sin(6.0 * x + 2.0 * k) * torch.cos(4.0 * y - k) for k in range(c)])[None].expand(n, c, h, w).contiguous()


def model_output(name: str) -> dict:
    from m2unet.models import create_model

    with torch.no_grad():
        logits = fill_deterministic(create_model(name))(fixed_input()).double()
    flat = logits.flatten()
    positions = torch.linspace(0, flat.numel() - 1, SAMPLES).round().long()
    return {"shape": list(logits.shape), "mean": flat.mean().item(), "std": flat.std().item(), "samples": flat[positions].tolist()}


if __name__ == "__main__":
    from m2unet.models import list_models

    OUTPUTS_FILE.parent.mkdir(exist_ok=True)
    OUTPUTS_FILE.write_text(json.dumps({name: model_output(name) for name in list_models()}, indent=1) + "\n")
    print(f"wrote {OUTPUTS_FILE}")
