"""ONNX export of a model: dynamic batch, height and width, opset 17, the sigmoid inside the graph.

Every exported model takes ``image``: float32 N×3×H×W, RGB in [0, 1], H and W multiples of 16 (dynamic),
and returns ``probability``: float32 N×1×H×W (the sigmoid is part of the graph, so every runtime returns
the same quantity as :func:`m2unet.inference.predict.predict_probability`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from ..errors import M2UNetError

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "image", "probability"


class ProbabilityModel:
    """Wraps a logits model so the exported graph ends in a sigmoid (built lazily: torch is imported here only)."""

    def __new__(cls, model):
        import torch

        class _Probability(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, image):
                return torch.sigmoid(self.inner(image))

        return _Probability(model).eval()


def export_onnx(model, path: str | os.PathLike, opset: int = OPSET, sample_size: tuple[int, int] = (64, 80)) -> Path:
    """Write an ONNX model with dynamic batch, height and width (opset ``opset`` ≥ 17), atomically."""
    import torch

    from ..data.io import write_atomic

    if opset < 17:
        raise M2UNetError(f"opset {opset}: need at least 17")
    wrapped = ProbabilityModel(model.float().eval())
    sample = torch.rand(1, 3, *sample_size)
    dynamic = {0: "batch", 2: "height", 3: "width"}

    def write(tmp):
        # The TorchScript exporter: the torch.export-based one needs onnxscript, which this project does not depend on.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapped, sample, tmp, opset_version=opset, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: dynamic, OUTPUT_NAME: dynamic}, dynamo=False,
            )

    return write_atomic(path, write)
