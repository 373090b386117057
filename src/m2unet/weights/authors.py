"""The M2U-Net authors' checkpoints (laibe/M2U-Net, MIT licence): where they are and how their keys map to ours."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputFileError

if TYPE_CHECKING:
    import torch
    from torch import nn

# The authors' checkpoints beside a checkout (../shared/weights/m2unet-authors), per dataset.
AUTHORS_FILES = {"drive": "M2UNetDRIVE.pth", "chase_db1": "M2UNetCHASEDB1.pth", "hrf": "M2UNetHRF.pth"}
AUTHORS_KEY_PREFIXES = ("conv1.", "decode1.")  # their layout; ours starts with encoder. / decoder.


def authors_weights_dir() -> Path | None:
    from ..paths import shared_path

    return shared_path("weights", "m2unet-authors")


def is_authors_state_dict(state: dict) -> bool:
    return any(key.startswith(AUTHORS_KEY_PREFIXES) for key in state)


def _authors_block_key(rest: str, expanded: bool) -> str:
    """Map a key inside one of the authors' flat inverted-residual blocks to torchvision's nested layout."""
    index, _, tail = rest.partition(".")
    if expanded:  # conv.0/1 expand, conv.3/4 depthwise, conv.6 project, conv.7 BN
        mapping = {"0": "0.0", "1": "0.1", "3": "1.0", "4": "1.1", "6": "2", "7": "3"}
    else:  # t = 1: conv.0/1 depthwise, conv.3 project, conv.4 BN
        mapping = {"0": "0.0", "1": "0.1", "3": "1", "4": "2"}
    if index not in mapping:
        raise KeyError(rest)
    return f"{mapping[index]}.{tail}"


def map_authors_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Translate the authors' key layout (``conv1``…``conv4``, ``decode4``…``decode1``) to :class:`M2UNet`'s.

    Raises ``KeyError`` for any key it does not know, so that nothing is silently dropped.
    """
    mapped: dict[str, torch.Tensor] = {}
    decoders = {"decode4": 0, "decode3": 1, "decode2": 2, "decode1": 3}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head in ("conv1", "conv2", "conv3", "conv4"):
            layer, _, rest = rest.partition(".")
            if layer == "0":  # layer 0: conv1.0.0 conv, conv1.0.1 BN
                new = f"encoder.features.0.{rest}"
            elif rest.startswith("conv."):
                new = f"encoder.features.{layer}.conv." + _authors_block_key(rest[5:], expanded=layer != "1")
            else:
                raise KeyError(key)
        elif head in decoders and rest.startswith("ir1.conv."):
            new = f"decoder.{decoders[head]}.block.conv." + _authors_block_key(rest[9:], expanded=True)
        else:
            raise KeyError(key)
        mapped[new] = value
    return mapped


def load_authors_checkpoint(path: str | os.PathLike, state: dict | None = None) -> nn.Module:
    """An :class:`M2UNet` (eval mode) holding one of the authors' checkpoints (``state``: the file, when already read).

    Strict: every tensor in the file is mapped and every parameter and buffer of the model is filled
    (BatchNorm's ``num_batches_tracked``, absent from the files, is set to 0).
    """
    import torch

    from ..models import M2UNet
    from .files import read_state_dict

    state = read_state_dict(path) if state is None else state
    try:
        mapped = map_authors_state_dict(state)
    except KeyError as error:
        raise InputFileError(path, f"not an M2U-Net authors' checkpoint (unknown key {error.args[0]!r})") from None
    model = M2UNet()
    expected = model.state_dict()
    for key in expected:
        if key.endswith("num_batches_tracked") and key not in mapped:
            mapped[key] = torch.zeros((), dtype=torch.long)
    wrong = [k for k in mapped if k in expected and mapped[k].shape != expected[k].shape]
    missing = [k for k in expected if k not in mapped]
    if wrong or missing:
        raise InputFileError(path, f"not an M2U-Net authors' checkpoint ({len(missing)} missing, {len(wrong)} wrongly shaped tensors)")
    model.load_state_dict(mapped, strict=True)
    return model.eval()
