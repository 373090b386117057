"""Backend names as data: :class:`BackendSpec` (runtime, precision, device) and the names users type.

A backend's name is what the command line takes (``--backends openvino-int8``), what results record (the
``backend`` of segment's records, evaluate's metrics, bench's cells) and what the benchmark tables show; it is
made only by :attr:`BackendSpec.name` and read only by :meth:`BackendSpec.parse`, so no code takes a name apart.
A leaf: it imports only :mod:`m2unet.errors` (the runtimes themselves are in :mod:`.backends`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import M2UNetError

RUNTIMES = ("torch", "onnxruntime", "openvino")
PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")
DEVICES = ("cpu", "cuda")
# The precisions each runtime has on the CPU (fp32 first); on a CUDA device only torch runs, in fp32, fp16 or bf16.
CPU_PRECISIONS = {"torch": ("fp32", "bf16"), "onnxruntime": ("fp32", "int8"), "openvino": ("fp32", "bf16", "int8")}
CUDA_PRECISIONS = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class BackendSpec:
    """What a backend is: a runtime, a precision and a device (and, for ``m2unet bench --device cuda`` only, whether
    the model is captured in a CUDA graph). ``name`` is the string users type and results record (``openvino-int8``,
    ``cuda-fp16``); :meth:`parse` reads it back. An impossible combination is one-line :class:`M2UNetError`."""

    runtime: str
    precision: str = "fp32"
    device: str = "cpu"
    graph: bool = False

    def __post_init__(self):
        if self.device not in DEVICES:
            raise M2UNetError(f"unknown device {self.device!r}; choose one of {', '.join(DEVICES)}")
        if self.device == "cuda":
            if self.runtime != "torch":
                raise M2UNetError(f"--device cuda runs the torch backend, not {self.runtime} (ONNX Runtime and OpenVINO run on the CPU here)")
            if self.precision == "int8":
                raise M2UNetError("int8 runs on the CPU backends (openvino, onnxruntime); on a GPU use fp16 or bf16")
            if self.precision not in CUDA_PRECISIONS:
                raise M2UNetError(f"--device cuda has no {self.precision} mode; choose one of {', '.join(CUDA_PRECISIONS)}")
            if self.graph and self.precision == "fp32":
                raise M2UNetError("CUDA graphs are timed with fp16 or bf16 autocast (cuda-fp16-graph, cuda-bf16-graph)")
            return
        if self.runtime not in RUNTIMES:
            raise M2UNetError(f"unknown backend {self.runtime!r}; choose one of {', '.join(RUNTIMES)}")
        if self.precision == "fp16":
            raise M2UNetError("fp16 is for --device cuda; on the CPU use bf16 or int8")
        if self.graph:
            raise M2UNetError("CUDA graphs need --device cuda")
        if self.precision not in CPU_PRECISIONS[self.runtime]:
            raise M2UNetError(f"backend {self.runtime} has no {self.precision} mode; available: {', '.join(BACKENDS)}")

    @property
    def name(self) -> str:
        """``RUNTIME[-PRECISION]`` on the CPU (fp32 unnamed), ``cuda[-PRECISION][-graph]`` on a GPU."""
        words = ["cuda" if self.device == "cuda" else self.runtime]
        words += [self.precision] if self.precision != "fp32" else []
        return "-".join(words + (["graph"] if self.graph else []))

    @classmethod
    def parse(cls, name: str) -> BackendSpec:
        """The spec of a backend name (of :data:`BACKENDS`, :data:`GPU_BACKENDS` or :data:`GRAPH_BACKENDS`)."""
        spec = _BY_NAME.get(name)
        if spec is None:
            raise M2UNetError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS + GPU_BACKENDS)}")
        return spec

    @property
    def export_kind(self) -> str | None:
        """The exported model this backend runs (``cached_export``'s kind: onnx, onnx-int8, openvino, openvino-int8);
        None for PyTorch."""
        if self.runtime == "torch":
            return None
        return ("onnx" if self.runtime == "onnxruntime" else "openvino") + ("-int8" if self.precision == "int8" else "")

    def autocast(self):
        """The torch autocast dtype of a torch backend (None for fp32)."""
        import torch

        return {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[self.precision]


_SPECS = tuple(BackendSpec(runtime, precision) for runtime, precisions in CPU_PRECISIONS.items() for precision in precisions)
_GPU_SPECS = tuple(BackendSpec("torch", precision, "cuda") for precision in CUDA_PRECISIONS)
_GRAPH_SPECS = tuple(BackendSpec("torch", precision, "cuda", graph=True) for precision in CUDA_PRECISIONS[1:])
_BY_NAME = {spec.name: spec for spec in _SPECS + _GPU_SPECS + _GRAPH_SPECS}
BACKENDS = tuple(spec.name for spec in _SPECS)
GPU_BACKENDS = tuple(spec.name for spec in _GPU_SPECS)
GRAPH_BACKENDS = tuple(spec.name for spec in _GRAPH_SPECS)  # timed by ``m2unet bench --device cuda`` only
