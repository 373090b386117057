"""After an export: run the file once with its runtime and compare it with PyTorch fp32 (max |Δ probability|)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

PARITY_SIZE = (544, 544)  # a DRIVE-sized image


def run_exported(model_file: Path, batch: np.ndarray) -> np.ndarray:
    """The probability an exported file gives for ``batch`` (ONNX Runtime for .onnx, OpenVINO for .xml)."""
    if Path(model_file).suffix == ".onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: batch})[0]
    import openvino as ov

    return ov.Core().compile_model(str(model_file), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(batch)[0]


def parity(weights: Path, model_file: Path, size: tuple[int, int] = PARITY_SIZE) -> float:
    """Max |probability difference| between PyTorch fp32 (``weights``) and the exported ``model_file`` on one random image."""
    import torch

    from ..weights import load_weights

    batch = np.random.default_rng(0).random((1, 3, *size), dtype=np.float32)
    model, _ = load_weights(weights)
    with torch.inference_mode():
        reference = torch.sigmoid(model.float()(torch.from_numpy(batch))).numpy()
    return float(np.abs(run_exported(model_file, batch) - reference).max())
