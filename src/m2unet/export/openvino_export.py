"""OpenVINO IR from an exported ONNX model (dynamic shapes kept; fp32 weights)."""

from __future__ import annotations

import os
from pathlib import Path

from ..weights import save_ir


def export_openvino(onnx_path: str | os.PathLike, xml_path: str | os.PathLike) -> Path:
    """Convert an exported ONNX model to OpenVINO IR (dynamic shapes kept; fp32 weights)."""
    import openvino as ov

    return save_ir(ov.convert_model(str(onnx_path)), Path(xml_path))
