"""Export: ONNX (dynamic height/width), OpenVINO IR, int8 post-training quantization, and a cache of exports."""

from .exporters import (
    ProbabilityModel,
    cached_export,
    calibration_images,
    export_onnx,
    export_openvino,
    quantize_onnx_int8,
    quantize_openvino_int8,
)

__all__ = [
    "ProbabilityModel", "calibration_images", "cached_export", "export_onnx", "export_openvino",
    "quantize_onnx_int8", "quantize_openvino_int8",
]
