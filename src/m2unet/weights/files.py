"""Our own weights files: safetensors with JSON metadata; any state_dict read safely; provenance.

Metadata (stored under the safetensors header key ``"m2unet"``) says what the weights are: model name,
dataset, recipe, epochs, best epoch, validation Dice, the a-priori threshold, metrics, git commit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputFileError

if TYPE_CHECKING:  # torch is imported where weights are loaded: reading metadata and paths needs no torch
    import torch
    from torch import nn

DEFAULT_THRESHOLD = 0.5
METADATA_KEY = "m2unet"  # safetensors header key, ONNX metadata_props key and OpenVINO rt_info key


def save_weights(model: nn.Module, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write ``model``'s state_dict as safetensors (atomically) with ``metadata`` as JSON."""
    meta = dict(metadata or {})
    meta.setdefault("model", getattr(model, "registry_name", "m2unet"))
    return save_state(model.state_dict(), path, meta)


def save_state(state: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict) -> Path:
    """Write a state_dict as safetensors (atomically) with ``metadata`` as JSON (a calibrated copy of weights, say)."""
    from safetensors.torch import save_file

    from ..data.io import write_atomic

    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    return write_atomic(path, lambda tmp: save_file(tensors, tmp, metadata={METADATA_KEY: json.dumps(metadata, sort_keys=True)}))


def read_safetensors_metadata(path: str | os.PathLike) -> dict:
    """The metadata of one of our safetensors files ({} when it has none); reads the header only, through numpy."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "no such file")
    try:  # a shipped model's threshold needs no torch
        with safe_open(str(path), framework="numpy") as handle:
            raw = (handle.metadata() or {}).get(METADATA_KEY)
    except Exception as error:  # safetensors raises its own error type for a corrupt header
        raise InputFileError(path, f"not a readable safetensors file ({type(error).__name__})") from None
    return json.loads(raw) if raw else {}


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a PyTorch state_dict safely (``weights_only=True``: no unpickling of arbitrary objects); errors name the file."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "no such file")
    if path.stat().st_size == 0:
        raise InputFileError(path, "file is empty")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a corrupt file
        raise InputFileError(path, f"not a readable weights file ({type(error).__name__}: {str(error).splitlines()[0][:120]})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputFileError(path, "does not hold a state_dict of tensors")
    return state


def threshold_of(metadata: dict) -> float:
    """The a-priori threshold stored with the weights (0.5 where none is stored)."""
    value = metadata.get("threshold")
    return float(value) if value is not None else DEFAULT_THRESHOLD


def git_commit() -> str | None:
    """The current git commit of the source tree, for provenance in metadata (None outside a checkout)."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def file_digest(path: str | os.PathLike) -> str:
    """The first 16 hex digits of a file's SHA-256: names cached exports and ties a shipped export to its weights."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]
