"""One runtime abstraction over PyTorch, ONNX Runtime and OpenVINO.

Every backend is called the same way: ``backend(batch)`` with a float32 N×3×H×W array (RGB in [0, 1],
H and W multiples of 16) returns the vessel probability as float32 N×1×H×W. Padding and tiling live in
:mod:`m2unet.inference.predict`, so every backend sees the same inputs.

Backend names (``BACKENDS``; each is a :class:`~m2unet.inference.backend_spec.BackendSpec` of runtime, precision and
device, and code reads a name only through it):

======================  ===========================================================================
``torch``               PyTorch eager, fp32: the authors' way, the baseline of every benchmark
``torch-bf16``          PyTorch eager under bf16 autocast with channels_last memory layout
``onnxruntime``         ONNX Runtime, fp32, exported ONNX graph (dynamic H, W)
``onnxruntime-int8``    ONNX Runtime, int8 QDQ (static post-training quantization on training images)
``openvino``            OpenVINO, fp32 (``INFERENCE_PRECISION_HINT=f32``)
``openvino-bf16``       OpenVINO, bf16 compute on CPUs with AVX-512-BF16 / AMX
``openvino-int8``       OpenVINO, int8 model quantized with NNCF on training images; the layers kept in
                        float (the last decoder block) run in bf16 where the CPU has it, else fp32
``cuda``                PyTorch eager on a CUDA GPU, fp32 (``--device cuda``)
``cuda-fp16``           the same under fp16 autocast, channels_last
``cuda-bf16``           the same under bf16 autocast (Ampere and newer), channels_last
======================  ===========================================================================

OpenVINO compiles one model per input shape (a static shape is faster than a dynamic one on CPU) and keeps
the last few compiled shapes; ``hint`` is OpenVINO's ``PERFORMANCE_HINT`` (LATENCY or THROUGHPUT).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..errors import InputFileError, M2UNetError
from .backend_spec import BACKENDS, GPU_BACKENDS, RUNTIMES, BackendSpec

# Compiled OpenVINO models kept (one per input shape). `--model auto`'s diameter search runs a photograph at up to 7
# shapes; with fewer kept, the least recently used goes first and every photograph compiled them all again (~0.2 s
# each). 8 keeps one camera's set: `segment --model auto` 4.25 -> 2.65 s per HRF photograph, 2.00 -> 1.59 per DRIVE
# one, for 0.7-1.4 GB more peak memory (results/bench/shape_cache.md).
SHAPE_CACHE = 8


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (OpenVINO's view; False when OpenVINO is missing)."""
    try:
        import openvino as ov

        return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:
        return False


def require_cuda() -> None:
    """A one-line error when torch sees no CUDA GPU (a CPU build, no driver, no device)."""
    import torch

    if not torch.cuda.is_available():
        raise M2UNetError("--device cuda: no CUDA device visible to this torch build (torch.cuda.is_available() is False)")


def resolve_backend(runtime: str, precision: str = "auto", device: str = "cpu", weights: str | os.PathLike | None = None) -> BackendSpec:
    """The backend for a runtime, a precision and a device; on the CPU ``auto`` is fp32 for torch and onnxruntime,
    and for openvino the fastest of fp32 / bf16 / int8 measured on this CPU model, once, then cached
    (:mod:`.autoprecision`; measured F1 change on DRIVE of each: results/export/precision_f1.md). ``device="cuda"``
    runs torch on the GPU: ``auto`` is fp32 there (as ``evaluate --device cuda``). For an exported ``weights`` file
    (.onnx / .xml), whose int8 is a property of the file, ``auto`` is the fastest of fp32 / bf16 instead."""
    if precision != "auto":
        return BackendSpec(runtime, precision, device)
    spec = BackendSpec(runtime, "fp32", device)  # checks the runtime and the device before anything is measured
    if spec.runtime == "openvino" and spec.device == "cpu":
        from ..weights import EXPORTED_SUFFIXES
        from .autoprecision import CANDIDATES, fastest_openvino_precision

        exported = weights is not None and Path(weights).suffix in EXPORTED_SUFFIXES
        allowed = ("fp32", "bf16") if exported else CANDIDATES
        return BackendSpec(runtime, fastest_openvino_precision(create_backend, cpu_has_bf16, allowed), device)
    return spec


def backend_name(runtime: str, precision: str = "auto", device: str = "cpu", weights: str | os.PathLike | None = None) -> str:
    """The name of :func:`resolve_backend` (``openvino-int8``, ``cuda-fp16``, ``torch`` …)."""
    return resolve_backend(runtime, precision, device, weights).name


def named_backend(backend: str, precision: str = "auto", device: str = "cpu", weights: str | os.PathLike | None = None) -> str:
    """``backend`` as it is when it is a full backend name with its precision or device (``openvino-int8``,
    ``cuda``, ``cuda-fp16``), else (a runtime: torch, onnxruntime, openvino) :func:`backend_name` of it."""
    if backend in BACKENDS + GPU_BACKENDS and backend not in RUNTIMES:
        return backend
    return backend_name(backend, precision, device, weights)


class TorchBackend:
    """PyTorch eager on ``device``: fp32, or ``autocast`` (bf16 / fp16) with a channels_last model and input."""

    def __init__(self, model, autocast=None, device: str = "cpu", name: str | None = None):
        import torch

        self.torch = torch
        self.autocast = autocast
        self.model = model.float().eval().to(device)
        if autocast is not None:
            self.model = self.model.to(memory_format=torch.channels_last)
        if torch.device(device).type == "cuda":
            torch.backends.cudnn.benchmark = True  # tiles of one size: cuDNN picks its fastest kernels once
        self.name = name or ("torch" if autocast is None else "torch-bf16")

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        from .predict import predict_logits

        tensor = self.torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        logits = predict_logits(self.model, tensor, autocast=self.autocast, channels_last=self.autocast is not None)
        return self.torch.sigmoid(logits).cpu().numpy()


class OnnxRuntimeBackend:
    def __init__(self, onnx_path: str | os.PathLike, name: str = "onnxruntime", threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # the exporter leaves unused constants; ORT warns about each
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime's own exception types: a corrupt or foreign file
            raise InputFileError(onnx_path, f"not a model ONNX Runtime can load ({_first_line(error)})") from None
        self.input = self.session.get_inputs()[0].name
        self.name = name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: np.ascontiguousarray(batch, dtype=np.float32)})[0]


class OpenVINOBackend:
    def __init__(self, model_path: str | os.PathLike, precision: str = "f32", hint: str = "LATENCY", name: str = "openvino", threads: int | None = None):
        import openvino as ov

        self.core = ov.Core()
        try:
            self.model = self.core.read_model(str(model_path))
        except Exception as error:  # RuntimeError with OpenVINO's multi-line report
            raise InputFileError(model_path, f"not a model OpenVINO can read ({_first_line(error)})") from None
        self.config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": hint}
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = threads
        self.compiled: OrderedDict[tuple, object] = OrderedDict()
        self.name = name

    def request(self, shape: tuple[int, ...]):
        """An infer request compiled for exactly ``shape`` (cached, least recently used dropped)."""
        if shape in self.compiled:
            self.compiled.move_to_end(shape)
            return self.compiled[shape]
        self.model.reshape(list(shape))
        request = self.core.compile_model(self.model, "CPU", self.config).create_infer_request()
        self.compiled[shape] = request
        while len(self.compiled) > SHAPE_CACHE:
            self.compiled.popitem(last=False)
        return request

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        request = self.request(tuple(batch.shape))
        request.infer({0: batch})
        return request.get_output_tensor(0).data.copy()


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[-1] if lines else type(error).__name__)[:160]


def _installed_runtimes() -> str:
    import importlib.util

    found = [runtime for runtime in ("onnxruntime", "openvino") if importlib.util.find_spec(runtime) is not None]
    return ", ".join(found) or "neither"


def _check_exported(weights: Path, spec: BackendSpec) -> None:
    """Refuse what an exported .onnx / .xml cannot do with backend ``spec``, and a corrupt file, in one line each."""
    from ..weights import read_exported_metadata

    if spec.runtime == "torch":
        raise M2UNetError(f"{weights}: an exported model runs with --backend onnxruntime or openvino (installed: {_installed_runtimes()}); "
                          "PyTorch needs the .safetensors / .pth weights")
    if spec.precision == "int8":
        raise M2UNetError(f"{weights}: an exported model runs as exported; for int8 export one with `m2unet export --int8`")
    if spec.runtime == "onnxruntime" and weights.suffix != ".onnx":
        raise M2UNetError(f"{weights}: ONNX Runtime runs .onnx files; use --backend openvino for OpenVINO IR")
    read_exported_metadata(weights)  # a corrupt file is one clear error here, before a runtime tries every format it knows


def _torch_backend(spec: BackendSpec, weights: Path, threads: int | None) -> TorchBackend:
    """PyTorch eager on the CPU (fp32, bf16) or on the GPU (fp32, fp16, bf16)."""
    import torch

    from ..weights import load_weights

    if spec.device == "cuda":
        require_cuda()
    elif threads:
        torch.set_num_threads(threads)
    model, _ = load_weights(weights)
    return TorchBackend(model, autocast=spec.autocast(), device=spec.device, name=spec.name)


def create_backend(name: str, weights: str | os.PathLike, calibration: str = "drive", hint: str = "LATENCY", threads: int | None = None, progress=None):
    """A backend ``name`` (see ``BACKENDS``) running the weights file ``weights``; exports are cached.

    ``weights`` may also be a model made by ``m2unet export`` (.onnx / OpenVINO .xml): it then runs as it is, with no
    PyTorch import: onnxruntime runs .onnx, openvino runs both (bf16 or fp32 inference precision); int8 is then a
    property of the file (``m2unet export --int8``), not a backend option.
    """
    from ..export import cached_export
    from ..weights import EXPORTED_SUFFIXES

    weights = Path(weights)
    if name not in BACKENDS + GPU_BACKENDS:
        raise M2UNetError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS + GPU_BACKENDS)}")
    spec = BackendSpec.parse(name)
    exported = weights.suffix in EXPORTED_SUFFIXES
    if exported:
        _check_exported(weights, spec)
    if spec.runtime == "torch":
        return _torch_backend(spec, weights, threads)
    try:
        __import__(spec.runtime)
    except ImportError:
        raise M2UNetError(f"backend {spec.runtime} needs: pip install {spec.runtime} (or m2unet[deploy])") from None
    if spec == BackendSpec("openvino", "bf16") and not cpu_has_bf16():
        raise M2UNetError("openvino-bf16: this CPU has no native bf16 (AVX-512-BF16 or AMX); use --precision fp32")
    model_file = weights if exported else cached_export(weights, spec.export_kind, calibration, progress)
    if spec.runtime == "onnxruntime":
        return OnnxRuntimeBackend(model_file, name=name, threads=threads)
    precision = "bf16" if spec.precision == "bf16" or (spec.precision == "int8" and cpu_has_bf16()) else "f32"
    return OpenVINOBackend(model_file, precision=precision, hint=hint, name=name, threads=threads)
