"""Reading a weights file of any kind we know: its metadata, and the model it holds."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputFileError
from .authors import is_authors_state_dict, load_authors_checkpoint
from .exported import EXPORTED_SUFFIXES, read_exported_metadata
from .files import read_safetensors_metadata, read_state_dict

if TYPE_CHECKING:
    from torch import nn


def read_metadata(path: str | os.PathLike) -> dict:
    """The metadata of one of our safetensors files, or of a model exported by ``m2unet export`` ({} for other files)."""
    path = Path(path)
    if path.suffix in EXPORTED_SUFFIXES:
        return read_exported_metadata(path)
    if path.suffix != ".safetensors":
        return {}
    return read_safetensors_metadata(path)


def load_weights(path: str | os.PathLike, model_name: str | None = None) -> tuple[nn.Module, dict]:
    """A model in eval mode and its metadata, from our safetensors file or one of the authors' checkpoints.

    The architecture comes from the metadata (``model``), else ``model_name``, else ``"m2unet"``.
    """
    from ..models import create_model

    path = Path(path)
    if path.suffix in EXPORTED_SUFFIXES:
        raise InputFileError(path, "an exported model runs with --backend onnxruntime or openvino; PyTorch needs the .safetensors / .pth weights")
    state = read_state_dict(path)
    if is_authors_state_dict(state):
        meta = {"model": "m2unet", "source": "authors", "file": path.name, "threshold": None}
        return load_authors_checkpoint(path, state), meta
    meta = read_metadata(path)
    name = meta.get("model") or model_name or "m2unet"
    model = create_model(name)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).splitlines()[0][:150]
        raise InputFileError(path, f"weights do not fit model {name!r} ({first})") from None
    return model.eval(), meta
