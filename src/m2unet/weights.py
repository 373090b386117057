"""Model weights on disk: our own as safetensors with JSON metadata; the authors' .pth through a key map.

Metadata (stored under the safetensors header key ``"m2unet"``) says what the weights are: model name,
dataset, recipe, epochs, best epoch, validation Dice, the a-priori threshold, metrics, git commit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InputFileError

if TYPE_CHECKING:  # torch is imported where weights are loaded: reading metadata and paths needs no torch
    from torch import nn

DEFAULT_THRESHOLD = 0.5
METADATA_KEY = "m2unet"


def save_weights(model: nn.Module, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write ``model``'s state_dict as safetensors (atomically) with ``metadata`` as JSON."""
    from safetensors.torch import save_file

    from .data.io import write_atomic

    meta = dict(metadata or {})
    meta.setdefault("model", getattr(model, "registry_name", "m2unet"))
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return write_atomic(path, lambda tmp: save_file(state, tmp, metadata={METADATA_KEY: json.dumps(meta, sort_keys=True)}))


def read_metadata(path: str | os.PathLike) -> dict:
    """The metadata of one of our safetensors files, or of a model exported by ``m2unet export`` ({} for other files)."""
    path = Path(path)
    if path.suffix in (".onnx", ".xml"):
        from .export.exporters import read_exported_metadata

        return read_exported_metadata(path)
    if path.suffix != ".safetensors":
        return {}
    # The safetensors header is 8 bytes of little-endian length, then JSON: read directly, so that metadata (the
    # threshold of a shipped model) needs neither torch nor the safetensors package.
    try:
        with open(path, "rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            if not 2 <= length <= 100_000_000:
                raise ValueError(f"header length {length}")
            header = json.loads(handle.read(length))
        raw = (header.get("__metadata__") or {}).get(METADATA_KEY)
    except (OSError, ValueError, AttributeError) as error:
        raise InputFileError(path, f"not a readable safetensors file ({type(error).__name__})") from None
    return json.loads(raw) if raw else {}


def load_weights(path: str | os.PathLike, model_name: str | None = None) -> tuple[nn.Module, dict]:
    """A model in eval mode and its metadata, from our safetensors file or one of the authors' checkpoints.

    The architecture comes from the metadata (``model``), else ``model_name``, else ``"m2unet"``.
    """
    from .models import create_model, load_authors_checkpoint
    from .models.pretrained import read_state_dict

    path = Path(path)
    if path.suffix in (".onnx", ".xml"):
        raise InputFileError(path, "an exported model runs with --backend onnxruntime or openvino; PyTorch needs the .safetensors / .pth weights")
    state = read_state_dict(path)
    if any(key.startswith(("conv1.", "decode1.")) for key in state):
        meta = {"model": "m2unet", "source": "authors", "file": path.name, "threshold": None}
        return load_authors_checkpoint(path), meta
    meta = read_metadata(path)
    name = meta.get("model") or model_name or "m2unet"
    model = create_model(name)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).splitlines()[0][:150]
        raise InputFileError(path, f"weights do not fit model {name!r} ({first})") from None
    return model.eval(), meta


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




# Models shipped inside the package (safetensors with metadata), chosen by name.
PRETRAINED_DIR = Path(__file__).parent / "pretrained"
PRETRAINED_NAMES = ("drive", "chase_db1", "hrf", "universal")  # universal: all three datasets at one FOV diameter
# The authors' checkpoints beside a checkout (../shared/weights), the fallback while no model is shipped.
AUTHORS_FILES = {"drive": "M2UNetDRIVE.pth", "chase_db1": "M2UNetCHASEDB1.pth", "hrf": "M2UNetHRF.pth"}


def authors_weights_dir() -> Path | None:
    from .paths import shared_path

    return shared_path("weights", "m2unet-authors")


def pretrained_path(name: str) -> Path:
    """The weights file for a pretrained model name: shipped in the package, else the authors' beside it."""
    from .errors import M2UNetError

    if name not in PRETRAINED_NAMES:
        raise M2UNetError(f"unknown pretrained model {name!r}; available: {', '.join(PRETRAINED_NAMES)}")
    shipped = PRETRAINED_DIR / f"{name}.safetensors"
    if shipped.is_file():
        return shipped
    authors = authors_weights_dir()
    if authors is not None and name in AUTHORS_FILES and (authors / AUTHORS_FILES[name]).is_file():
        return authors / AUTHORS_FILES[name]
    fallback = " and no ../shared/weights/m2unet-authors" if name in AUTHORS_FILES else ""
    raise M2UNetError(f"no weights for {name!r}: not shipped in this install{fallback}; pass --weights FILE")


def load_pretrained(name: str = "drive") -> nn.Module:
    """A pretrained M2U-Net in eval mode (``"drive"``, ``"chase_db1"``, ``"hrf"`` or ``"universal"``); metadata in ``.metadata``.

    The ``universal`` model expects photographs scaled to its FOV diameter (``.metadata["fov_diameter"]``;
    :func:`m2unet.segment` does that); the others run at their dataset's native scale.
    """
    model, meta = load_weights(pretrained_path(name))
    model.metadata = meta
    return model
