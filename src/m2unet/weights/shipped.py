"""The models shipped inside the package (``m2unet/pretrained/NAME.safetensors`` + ``NAME.onnx``), chosen by name."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..data.datasets import dataset_names
from ..errors import M2UNetError
from .authors import AUTHORS_FILES, authors_weights_dir

if TYPE_CHECKING:
    from torch import nn

PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "pretrained"
PRETRAINED_NAMES = (*dataset_names(), "universal")  # one model per built-in dataset; universal: all of them at one FOV diameter


def pretrained_path(name: str) -> Path:
    """The weights file for a pretrained model name: shipped in the package, else the authors' beside it."""
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

    The ``universal`` model expects photographs scaled as its metadata says (:func:`m2unet.data.scale.model_scale`: a
    range of FOV diameters, or the diameter where its map's vessels have the width it was trained at;
    :func:`m2unet.segment` does that); the others run at their dataset's native scale.
    """
    from .load import load_weights

    model, meta = load_weights(pretrained_path(name))
    model.metadata = meta
    return model


def shipped_onnx(weights: Path, digest: str | None = None) -> Path | None:
    """The ONNX export the package ships beside a shipped model (``pretrained/NAME.onnx``), if it was made from exactly
    this weights file (its metadata records the file's digest); None otherwise."""
    from .exported import read_exported_metadata
    from .files import file_digest

    candidate = PRETRAINED_DIR / f"{weights.stem}.onnx"
    if weights.suffix != ".safetensors" or weights.resolve().parent != PRETRAINED_DIR or not candidate.is_file():
        return None
    try:
        made_from = read_exported_metadata(candidate).get("exported_from_digest")
    except M2UNetError:
        return None
    return candidate if made_from == (digest or file_digest(weights)) else None
