"""Inference: backends (PyTorch, ONNX Runtime, OpenVINO), tiling, the segment pipeline and the benchmark.

Import the modules themselves (``m2unet.inference.predict`` needs PyTorch; ``tiling``, ``backends`` and
``pipeline`` do not, until a PyTorch backend is used).
"""
