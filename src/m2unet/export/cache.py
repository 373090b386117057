"""Exports cached per weights file (by content hash) under ``$M2UNET_CACHE`` (default ``~/.cache/m2unet/exports``).

``m2unet segment --backend openvino`` and ``m2unet bench`` export once; a shipped model's ONNX file is copied, not
re-exported, so the inference path of a shipped model needs no PyTorch.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from ..data.scale import WidthRule, model_scale
from ..errors import M2UNetError
from ..weights import PRETRAINED_DIR, file_digest, load_weights, read_metadata, shipped_onnx, stamp_metadata
from .onnx_export import export_onnx
from .openvino_export import export_openvino
from .quantize import DEFAULT_CALIBRATION, INT8_TAG, calibration_images, quantize_onnx_int8, quantize_openvino_int8

CACHE_ENV = "M2UNET_CACHE"
# kind → (file format, int8 quantized)
EXPORT_KINDS = {"onnx": ("onnx", False), "onnx-int8": ("onnx", True), "openvino": ("openvino", False), "openvino-int8": ("openvino", True)}


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "m2unet" / "exports")


def write_shipped_onnx(weights: Path) -> Path:
    """Export a shipped model to ``pretrained/NAME.onnx`` with its metadata and the digest of the weights it came from."""
    model, metadata = load_weights(weights)
    out = export_onnx(model, PRETRAINED_DIR / f"{Path(weights).stem}.onnx")
    return stamp_metadata(out, {**metadata, "exported_from": Path(weights).name, "exported_from_digest": file_digest(Path(weights)),
                                "export_format": "onnx", "int8": False})


def cached_export(weights: str | os.PathLike, kind: str, calibration: str = DEFAULT_CALIBRATION, progress=None) -> Path:
    """Path of an export of ``weights`` (made on first use): ``kind`` is onnx, onnx-int8, openvino or openvino-int8."""
    if kind not in EXPORT_KINDS:
        raise M2UNetError(f"unknown export kind {kind!r}; one of {', '.join(EXPORT_KINDS)}")
    weights = Path(weights)
    digest = file_digest(weights)
    folder = cache_root() / f"{weights.stem}-{digest}"
    onnx_path = folder / "model.onnx"
    say = progress or (lambda message: None)
    if not onnx_path.is_file():
        shipped = shipped_onnx(weights, digest)
        if shipped is not None:  # no PyTorch needed: the package carries this model's ONNX export
            from ..data.io import write_atomic

            write_atomic(onnx_path, lambda tmp: shutil.copyfile(shipped, tmp))
        else:
            say(f"exporting {weights.name} to ONNX (once, cached in {folder})")
            model, _ = load_weights(weights)
            export_onnx(model, onnx_path)
    fmt, int8 = EXPORT_KINDS[kind]
    source = onnx_path
    if fmt == "openvino":
        source = folder / "model.xml"
        if not source.is_file():
            export_openvino(onnx_path, source)
    if not int8:
        return source
    tag = str(calibration).replace(",", "+") if "/" not in str(calibration) else "folder-" + hashlib.sha256(str(Path(calibration).resolve()).encode()).hexdigest()[:8]
    scale = _calibration_scale(weights)
    if scale is not None:
        tag += f"-fov{scale[0]}-{scale[1]}"
    out = folder / f"model_int8_{tag}_{INT8_TAG}{source.suffix}"
    if not out.is_file():
        onnx = fmt == "onnx"
        say(f"quantizing to int8 {'for ONNX Runtime' if onnx else 'with NNCF'}, calibrated on {calibration} training images (once)")
        (quantize_onnx_int8 if onnx else quantize_openvino_int8)(source, out, calibration_images(calibration, scale=scale))
    return out


def _calibration_scale(weights: Path) -> tuple[int, int] | None:
    """The scale a scale-normalised model (one that stores ``fov_diameter``: enlarges small photographs) runs
    photographs at, so its int8 calibration images get it too; None for models that run photographs at (or near)
    their own size."""
    if weights.suffix != ".safetensors":
        return None
    scale = model_scale(read_metadata(weights))
    if isinstance(scale, WidthRule):
        return scale.probe, scale.probe  # its first pass; the second runs near it on a camera like the training ones
    return scale if scale is not None and scale[0] > 0 else None
