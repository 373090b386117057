"""int8 post-training quantization, calibrated on training images: NNCF for OpenVINO, QDQ for ONNX Runtime."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from ..data.shape import round_down
from ..errors import M2UNetError
from ..weights import save_ir
from .onnx_export import INPUT_NAME

# Calibration crops: at most this size (centre crop, multiple of 16), so HRF calibration stays cheap.
CALIBRATION_MAX_SIDE = 1024
DEFAULT_CALIBRATION = "drive"
# Layers kept in floating point by int8 quantization: the last decoder block works at full resolution and
# produces the logits, and quantizing it costs most of the accuracy (DRIVE test F1, OpenVINO: −0.027 with
# it quantized, −0.0003 without; benchmarks/quantization_f1.py). Matched against node names of the export.
FLOAT_LAYERS = "decoder.3"
INT8_TAG = "keep-dec3"  # part of the cached file name: changes when the quantization recipe changes


def calibration_images(dataset: str = DEFAULT_CALIBRATION, limit: int = 20, root: str | os.PathLike | None = None,
                       scale: tuple[int, int] | None = None) -> list[np.ndarray]:
    """Training images of ``dataset`` (a built-in name, a folder, or names joined by commas: taken in turn) as
    N×3×H×W float32 batches of one.

    ``scale``: the FOV diameters the model runs at (:func:`m2unet.data.scale.model_scale`): each image is
    first brought to it as ``segment`` does, so int8 ranges are measured on what the model will see. Each image is
    then centre-cropped to at most ``CALIBRATION_MAX_SIDE`` and to multiples of 16.
    """
    from ..data import load_dataset
    from ..data.scale import run_frame

    names = [name.strip() for name in str(dataset).split(",")] if "," in str(dataset) else [dataset]
    try:
        datasets = [load_dataset(name, split="train", root=root) for name in names]
    except M2UNetError as error:
        raise M2UNetError(f"calibration data {dataset!r}: {error}") from None
    per_dataset = max(1, limit // len(datasets))
    batches = []
    for data in datasets:
        for index in range(min(per_dataset, len(data))):
            sample = data[index]
            image = sample.image if scale is None else run_frame(sample.mask, scale).to_model(sample.image)
            batches.append(_centre_batch(image))
    if not batches:
        raise M2UNetError(f"calibration data {dataset!r}: no training images found")
    return batches


def _centre_batch(image: np.ndarray) -> np.ndarray:
    """The centre crop of an H×W×3 image (at most CALIBRATION_MAX_SIDE, multiples of 16) as a 1×3×h×w batch."""
    h, w = image.shape[:2]
    ch, cw = min(CALIBRATION_MAX_SIDE, round_down(h)), min(CALIBRATION_MAX_SIDE, round_down(w))
    top, left = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(image[top : top + ch, left : left + cw].transpose(2, 0, 1)[None], dtype=np.float32)


def quantize_openvino_int8(xml_path: str | os.PathLike, out_xml: str | os.PathLike, batches: list[np.ndarray]) -> Path:
    """int8 post-training quantization with NNCF (OpenVINO backend), calibrated on ``batches``."""
    try:
        import nncf
    except ImportError:
        raise M2UNetError("int8 OpenVINO export needs NNCF: pip install nncf (or m2unet[deploy])") from None
    import logging

    import openvino as ov

    nncf.set_log_level(logging.ERROR)  # it lists every node kept in float
    model = ov.Core().read_model(str(xml_path))
    keep_float = nncf.IgnoredScope(patterns=[f".*{FLOAT_LAYERS.replace('.', '[.]')}/.*"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = nncf.quantize(
            model, nncf.Dataset(batches), subset_size=len(batches), preset=nncf.QuantizationPreset.MIXED,
            fast_bias_correction=True, ignored_scope=keep_float,
        )
    return save_ir(quantized, Path(out_xml))


def quantize_onnx_int8(onnx_path: str | os.PathLike, out_path: str | os.PathLike, batches: list[np.ndarray]) -> Path:
    """int8 post-training quantization for ONNX Runtime: QDQ format, per-channel weights, calibrated on ``batches``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from ..data.io import write_atomic

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(batches)

        def get_next(self):
            batch = next(self.items, None)
            return None if batch is None else {INPUT_NAME: batch}

    import logging

    import onnx

    keep_float = [node.name for node in onnx.load(str(onnx_path)).graph.node if f"/{FLOAT_LAYERS}/" in node.name]

    def write(tmp):
        level = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # quantize_static logs advice through the root logger
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quantize_static(
                    str(onnx_path), tmp, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=keep_float,
                )
        finally:
            logging.getLogger().setLevel(level)

    return write_atomic(out_path, write)
