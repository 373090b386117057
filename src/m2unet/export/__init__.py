"""Export, by job: ONNX (:mod:`.onnx_export`), OpenVINO IR (:mod:`.openvino_export`), int8 quantization
(:mod:`.quantize`), the cache of exports per weights file (:mod:`.cache`) and the parity check (:mod:`.check`).

A leaf for inference: :mod:`m2unet.inference` calls :func:`cached_export`; nothing here imports inference.
"""

from .cache import EXPORT_KINDS, cache_root, cached_export, write_shipped_onnx
from .onnx_export import INPUT_NAME, OPSET, OUTPUT_NAME, ProbabilityModel, export_onnx
from .openvino_export import export_openvino
from .quantize import calibration_images, quantize_onnx_int8, quantize_openvino_int8

__all__ = [
    "EXPORT_KINDS", "INPUT_NAME", "OPSET", "OUTPUT_NAME", "ProbabilityModel", "cache_root", "cached_export", "calibration_images",
    "export_onnx", "export_openvino", "quantize_onnx_int8", "quantize_openvino_int8", "write_shipped_onnx",
]
