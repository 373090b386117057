"""Exported models (ONNX Runtime, OpenVINO fp32) match PyTorch fp32 on probabilities (max |Δ| < 1e-4)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from m2unet.errors import missing_module_message
from m2unet.export import cached_export
from m2unet.inference.backends import OnnxRuntimeBackend, OpenVINOBackend, TorchBackend, create_backend
from m2unet.inference.tiling import predict_tiled
from m2unet.weights import PRETRAINED_DIR, load_weights, pretrained_path

# 544² (DRIVE crop), 960² (CHASE_DB1 crop), odd sizes that the runtime wrapper pads to multiples of 16.
SIZES = [(544, 544), (960, 960), (61, 75), (64, 80)]


@pytest.fixture(scope="module")
def drive_weights(authors_dir):
    return pretrained_path("drive")


@pytest.fixture(scope="module")
def torch_backend(drive_weights):
    return TorchBackend(load_weights(drive_weights)[0])


@pytest.fixture(scope="module")
def references(torch_backend):
    """(image, PyTorch fp32 probability) per size, computed once for both runtimes."""
    rng = np.random.default_rng(1)
    images = [rng.random((h, w, 3), dtype=np.float32) for h, w in SIZES]
    return [(image, predict_tiled(torch_backend, image)) for image in images]


@pytest.fixture(scope="module")
def onnx_file(export_cache, drive_weights):
    return cached_export(drive_weights, "onnx")


def test_onnx_file_has_dynamic_height_width_and_opset_17(onnx_file):
    model = onnx.load(str(onnx_file))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[1].dim_value == 3
    assert dims[2].dim_param and dims[3].dim_param  # symbolic height and width
    onnx.checker.check_model(model)


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_exported_model_matches_pytorch(runtime, drive_weights, onnx_file, references):
    other = OnnxRuntimeBackend(onnx_file) if runtime == "onnxruntime" else OpenVINOBackend(cached_export(drive_weights, "openvino"))
    for image, reference in references:
        h, w = image.shape[:2]
        result = predict_tiled(other, image)
        assert result.shape == (h, w)
        difference = float(np.abs(result - reference).max())
        assert difference < 1e-4, f"{runtime} at {w}×{h}: max |Δp| {difference:.2e}"
        assert reference.std() > 1e-3  # a real map, not a constant


def test_every_backend_has_the_same_call_signature(drive_weights, export_cache):
    """Same input, same output shape and dtype, and fp32 backends agree; bf16 stays close."""
    batch = np.random.default_rng(2).random((1, 3, 64, 96), dtype=np.float32)
    reference = create_backend("torch", drive_weights)(batch)
    # bf16 keeps 8 mantissa bits: on noise input single pixels move by up to ~0.2, the mean barely.
    for name, tolerance, mean_tolerance in [("onnxruntime", 1e-4, 1e-5), ("openvino", 1e-4, 1e-5), ("torch-bf16", 0.3, 0.01), ("openvino-bf16", 0.3, 0.01)]:
        try:
            backend = create_backend(name, drive_weights)
        except Exception as error:  # bf16 needs a CPU with native bf16
            if "bf16" in name and "no native bf16" in str(error):
                continue
            raise
        out = backend(batch)
        assert out.shape == (1, 1, 64, 96) and out.dtype == np.float32, name
        assert float(np.abs(out - reference).max()) < tolerance, name
        assert float(np.abs(out - reference).mean()) < mean_tolerance, name


NO_TORCH = "import sys; sys.modules['torch'] = None; from m2unet.cli import main; main(prog_name='m2unet')"  # import torch → ImportError


def test_exported_model_carries_its_metadata_and_runs_without_pytorch(tmp_path, drive_weights, export_cache):
    """`m2unet export` stores the weights' metadata in the file; `segment --weights FILE.onnx|.xml` runs in a process
    where PyTorch cannot be imported (a small device with only ONNX Runtime or OpenVINO), with the stored threshold."""
    import subprocess
    import sys

    from click.testing import CliRunner
    from PIL import Image

    from m2unet.cli import main
    from m2unet.weights import read_metadata

    image = (np.random.default_rng(2).random((200, 248, 3)) * 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "photo.png")
    reference = predict_tiled(TorchBackend(load_weights(drive_weights)[0]), image.astype(np.float32) / 255)
    stored = read_metadata(drive_weights)
    for fmt, suffix, runtime in [("onnx", ".onnx", "onnxruntime"), ("openvino", ".xml", "openvino")]:
        model_file = tmp_path / f"drive{suffix}"
        exported = CliRunner().invoke(main, ["export", "--format", fmt, "-o", str(model_file)])
        assert exported.exit_code == 0, exported.output
        meta = read_metadata(model_file)
        assert meta["threshold"] == stored["threshold"] and meta["dataset"] == "drive" and meta["exported_from"] == "drive.safetensors"
        out = tmp_path / f"out-{fmt}"
        run = subprocess.run([sys.executable, "-c", NO_TORCH, "segment", str(tmp_path / "photo.png"), "-o", str(out), "--weights", str(model_file),
                              "--backend", runtime, "--precision", "fp32", "--no-fov-mask"], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr[-1500:]
        assert f"with {runtime}, weights drive{suffix} ×1" in run.stdout
        probability = np.asarray(Image.open(out / "photo_probability.png"), dtype=np.int16)
        assert np.abs(probability - np.rint(reference * 255)).max() <= 1  # 8-bit PNG of the same probability
        vessels = np.asarray(Image.open(out / "photo_vessels.png")) > 0
        assert np.mean(vessels != (reference >= stored["threshold"])) < 1e-3  # the stored threshold, not 0.5
    # one atomic write each (the model with its metadata), no temporary left beside them
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["drive.bin", "drive.onnx", "drive.xml", "photo.png"]
    wrong = subprocess.run([sys.executable, "-c", NO_TORCH, "segment", str(tmp_path / "photo.png"), "-o", str(tmp_path / "x"), "--weights",
                            str(tmp_path / "drive.xml"), "--backend", "onnxruntime"], capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 1 and wrong.stderr.strip() == f"error: {tmp_path / 'drive.xml'}: ONNX Runtime runs .onnx files; use --backend openvino for OpenVINO IR"
    again = CliRunner().invoke(main, ["export", "--format", "onnx", "--weights", str(tmp_path / "drive.onnx"), "-o", str(tmp_path / "again.onnx")])
    assert again.exit_code == 1 and again.output.strip() == f"error: {tmp_path / 'drive.onnx'}: already an exported model; export takes .safetensors or .pth weights"
    needs_torch = subprocess.run([sys.executable, "-c", NO_TORCH, "info"], capture_output=True, text=True, timeout=120)  # a command that needs it
    assert needs_torch.returncode == 1 and "Traceback" not in needs_torch.stderr
    assert needs_torch.stderr.strip().splitlines() == [f"error: {missing_module_message('torch')}"]


def test_shipped_models_run_without_pytorch(tmp_path, datasets_root):
    """An install without PyTorch runs the shipped models (their ONNX exports ship beside them), --model auto included."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "M2UNET_CACHE": str(tmp_path / "empty-cache")}  # nothing exported yet
    run = subprocess.run([sys.executable, "-c", NO_TORCH, "segment", str(datasets_root / "DRIVE/test/images/01_test.tif"), "-o", str(tmp_path / "out"),
                          "--backend", "onnxruntime"], capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr[-1500:]
    assert "with onnxruntime, weights universal.safetensors ×1" in run.stdout and (tmp_path / "out" / "01_test_vessels.png").is_file()
    out = tmp_path / "evaluation"  # and evaluated there, on the labelled DRIVE test split
    run = subprocess.run([sys.executable, "-c", NO_TORCH, "evaluate", "--dataset", "drive", "--model", "drive", "--backend", "onnxruntime",
                          "--datasets-root", str(datasets_root), "--out", str(out), "--no-maps", "--bootstrap", "100"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr[-1500:]
    repo = Path(__file__).resolve().parents[1]
    committed = json.loads((repo / "results/ours/drive-global/metrics.json").read_text())["pooled"]["fov"]["a_priori"]["f1"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert abs(metrics["pooled"]["fov"]["a_priori"]["f1"] - committed) < 2e-4 and metrics["runtime"]["torch_threads"] is None


def test_xml_weights_default_to_openvino():
    from m2unet.inference.pipeline import default_runtime

    assert default_runtime("cpu", "model.xml") == "openvino" and default_runtime("cuda") == "torch"


@pytest.mark.parametrize("name, content, message", [
    ("bad.onnx", b"not a model", "not a readable ONNX model"),
    ("truncated.onnx", "drive.onnx cut in half", "not a readable ONNX model"),
    ("bad.xml", b"<xml>not closed", "not a readable OpenVINO IR model"),
    ("other.xml", b"<net name='x'><layers/></net>", "not a model OpenVINO can read"),
])
def test_a_corrupt_model_file_is_one_line(tmp_path, name, content, message):
    from click.testing import CliRunner
    from PIL import Image

    from m2unet.cli import main

    if content == "drive.onnx cut in half":
        shipped = PRETRAINED_DIR / "drive.onnx"
        content = shipped.read_bytes()[: shipped.stat().st_size // 2]
    (tmp_path / name).write_bytes(content)
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "a.png")
    for command in (["segment", str(tmp_path / "a.png"), "-o", str(tmp_path / "out")], ["evaluate", "--dataset", "drive", "--no-maps"]):
        result = CliRunner().invoke(main, [*command, "--weights", str(tmp_path / name)])
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert result.output.strip().splitlines()[-1].startswith(f"error: {tmp_path / name}: {message}"), result.output


def test_onnx_metadata_reads_the_same_through_onnx_and_onnx_runtime(monkeypatch):
    """The shipped models' metadata: the onnx package's reading, and ONNX Runtime's where onnx is not installed."""
    import json
    import sys

    from m2unet.weights import METADATA_KEY, read_exported_metadata

    shipped = sorted(PRETRAINED_DIR.glob("*.onnx"))
    expected = {path: json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}[METADATA_KEY]) for path in shipped}
    assert expected and all(read_exported_metadata(path) == meta for path, meta in expected.items())
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    assert all(read_exported_metadata(path) == meta for path, meta in expected.items())


def test_an_export_killed_while_written_leaves_no_model_without_its_metadata(tmp_path, onnx_file, monkeypatch):
    """The model and its metadata are one write: where it fails, the output is not there (or is the earlier one)."""
    from m2unet.weights import read_metadata, stamp_metadata

    out = tmp_path / "m.onnx"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        stamp_metadata(out, {"threshold": 0.5}, source=onnx_file)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    stamp_metadata(out, {"threshold": 0.5}, source=onnx_file)
    assert read_metadata(out)["threshold"] == 0.5 and read_metadata(onnx_file).get("threshold") != 0.5
