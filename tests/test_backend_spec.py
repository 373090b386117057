"""Backend names as data: BackendSpec round-trips every name users type and refuses impossible combinations in one line."""

from __future__ import annotations

import dataclasses

import pytest

from m2unet.errors import M2UNetError
from m2unet.inference.backend_spec import BACKENDS, GPU_BACKENDS, GRAPH_BACKENDS, BackendSpec
from m2unet.inference.backends import backend_name, named_backend


def test_names_are_the_published_strings():
    # command lines, results JSON and committed bench tables use exactly these
    assert BACKENDS == ("torch", "torch-bf16", "onnxruntime", "onnxruntime-int8", "openvino", "openvino-bf16", "openvino-int8")
    assert GPU_BACKENDS == ("cuda", "cuda-fp16", "cuda-bf16")
    assert GRAPH_BACKENDS == ("cuda-fp16-graph", "cuda-bf16-graph")
    for name in BACKENDS + GPU_BACKENDS + GRAPH_BACKENDS:
        assert BackendSpec.parse(name).name == name


def test_fields_and_export_kind():
    assert BackendSpec.parse("openvino-int8") == BackendSpec("openvino", "int8", "cpu")
    assert BackendSpec.parse("cuda-bf16-graph") == BackendSpec("torch", "bf16", "cuda", graph=True)
    assert BackendSpec.parse("cuda").device == "cuda" and BackendSpec.parse("cuda").precision == "fp32"
    kinds = {name: BackendSpec.parse(name).export_kind for name in BACKENDS}
    assert kinds == {"torch": None, "torch-bf16": None, "onnxruntime": "onnx", "onnxruntime-int8": "onnx-int8", "openvino": "openvino",
                     "openvino-bf16": "openvino", "openvino-int8": "openvino-int8"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        BackendSpec.parse("torch").precision = "bf16"


@pytest.mark.parametrize(("fields", "message"), [
    (("tensorrt", "fp32"), "unknown backend 'tensorrt'"),
    (("onnxruntime", "bf16"), "backend onnxruntime has no bf16 mode"),
    (("torch", "int8"), "backend torch has no int8 mode"),
    (("torch", "fp16"), "fp16 is for --device cuda"),
    (("openvino", "fp32", "cuda"), "--device cuda runs the torch backend, not openvino"),
    (("torch", "int8", "cuda"), "int8 runs on the CPU backends"),
    (("torch", "fp32", "tpu"), "unknown device 'tpu'"),
    (("torch", "fp32", "cuda", True), "CUDA graphs are timed with fp16 or bf16"),
    (("openvino", "bf16", "cpu", True), "CUDA graphs need --device cuda"),
])
def test_impossible_combinations_are_one_line_errors(fields, message):
    with pytest.raises(M2UNetError, match=message) as caught:
        BackendSpec(*fields)
    assert "\n" not in str(caught.value)


def test_parse_and_resolve():
    with pytest.raises(M2UNetError, match="unknown backend 'openvino-fp16'; choose one of torch, "):
        BackendSpec.parse("openvino-fp16")
    assert backend_name("torch", "bf16") == "torch-bf16" and backend_name("onnxruntime", "int8") == "onnxruntime-int8"
    assert backend_name("onnxruntime", "auto") == "onnxruntime" and backend_name("torch", "auto", "cuda") == "cuda"
    # a full name is kept as it is (precision ignored); a runtime is resolved with the precision and device
    assert named_backend("openvino-int8", "bf16") == "openvino-int8" and named_backend("cuda-fp16") == "cuda-fp16"
    assert named_backend("torch", "bf16") == "torch-bf16" and named_backend("torch", "fp16", "cuda") == "cuda-fp16"
    with pytest.raises(M2UNetError, match="unknown backend 'cuda-fp16-graph'"):  # bench-only names are not segment backends
        named_backend("cuda-fp16-graph")



def test_auto_precision_never_picks_int8_for_an_exported_file(monkeypatch):
    """Where int8 measured fastest, a plain model goes int8 but an exported file runs as exported: the faster of the
    timed fp32 / bf16."""
    from m2unet.inference import autoprecision, backends

    timings = {"fp32": 30.0, "bf16": 20.0, "int8": 10.0}
    monkeypatch.setattr(autoprecision, "precision_record", lambda create, has_bf16: {"choice": "int8", "ms": timings})
    assert backends.backend_name("openvino", "auto") == "openvino-int8"
    expected = "openvino-bf16"
    assert backends.backend_name("openvino", "auto", weights="model.onnx") == expected
    assert backends.backend_name("openvino", "auto", weights="model.xml") == expected
    assert backends.backend_name("openvino", "int8", weights="model.safetensors") == "openvino-int8"
