"""Model size and cost: parameters, size on disk, multiply-adds (MAdds) at a given input size.

MAdds count one multiply-accumulate per weight use in convolutions (incl. transposed) and linear layers,
the convention of the MobileNetV2 and M2U-Net papers; BatchNorm, activations, upsampling and
concatenation are not counted (they are folded or memory-bound at inference).
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def size_on_disk_bytes(model: nn.Module) -> int:
    """Bytes of the float32 state_dict as safetensors (what a shipped weights file takes)."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return len(save(state))


def count_madds(model: nn.Module, height: int, width: int, in_channels: int = 3, transposed_per: str = "input") -> int:
    """Multiply-adds of one forward pass on a 1×C×H×W input (H, W as the model requires).

    The pass runs on a copy of the model on PyTorch's "meta" device (shapes only, no arithmetic), so counting
    U-Net at 960×960 costs nothing; models that cannot be copied there run for real on their own device.

    ``transposed_per`` says how a transposed convolution is counted: ``"input"`` (default, the true count: every
    input value is multiplied by out/groups × k² weights, so in_numel × out/groups × k²) or ``"output"`` (as if it
    were a convolution producing its output: out_numel × in/groups × k², stride² times the true count; the rule
    that reproduces the M2U-Net paper's U-Net figure, see :mod:`m2unet.models.paper_table2`).
    """
    if transposed_per not in ("input", "output"):
        raise ValueError(f"transposed_per must be 'input' or 'output', got {transposed_per!r}")
    total = 0

    def conv_hook(module: nn.Conv2d | nn.ConvTranspose2d, inputs, output):
        nonlocal total
        kernel = module.kernel_size[0] * module.kernel_size[1] * (module.in_channels // module.groups)
        if isinstance(module, nn.ConvTranspose2d) and transposed_per == "input":  # each input pixel scatters into out × k²
            total += inputs[0].numel() * (module.out_channels // module.groups) * module.kernel_size[0] * module.kernel_size[1]
        else:
            total += output.numel() * kernel

    def linear_hook(module: nn.Linear, inputs, output):
        nonlocal total
        total += output.numel() * module.in_features

    try:
        model = copy.deepcopy(model).to("meta")
    except (RuntimeError, TypeError, NotImplementedError):  # e.g. a scripted model: count with a real pass
        pass
    handles = []
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        with torch.no_grad():
            model(torch.zeros(1, in_channels, height, width, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return total


def model_summary(model: nn.Module, height: int, width: int) -> dict:
    """Parameters, size on disk (MB) and GMAdds at H×W, as in the paper's Table 2."""
    return {
        "parameters": count_parameters(model),
        "size_mb": size_on_disk_bytes(model) / 1e6,
        "gmadds": count_madds(model, height, width) / 1e9,
        "height": height,
        "width": width,
    }
