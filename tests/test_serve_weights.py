"""``m2unet serve --weights``: a model calibrated to one camera served beside the pretrained ones."""

from __future__ import annotations

import base64
import io
import warnings

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's notice about httpx vs httpx2 in its TestClient
    from fastapi.testclient import TestClient

from m2unet.cli import main
from m2unet.data.fov import estimate_fov_mask
from m2unet.data.io import read_image
from m2unet.errors import M2UNetError
from m2unet.serve.app import Settings, create_app
from m2unet.serve.work import served_weights
from m2unet.weights import read_metadata
from serve_server import free_port, start_server


def test_served_names_come_from_the_stem_or_are_given(tmp_path):
    first, second = tmp_path / "my-camera.safetensors", tmp_path / "b.onnx"
    first.write_bytes(b"x")
    second.write_bytes(b"x")
    assert served_weights([str(first), f"ward_2={second}"]) == {"my-camera": first.resolve(), "ward_2": second.resolve()}
    refusals = {
        (str(tmp_path / "missing.safetensors"),): "no such file",
        (f"drive={first}",): "the name 'drive' is taken",
        (str(first), f"my-camera={second}"): "the name 'my-camera' is taken",
        (f"a b={first}",): "'a b' cannot name a model",
        (str(tmp_path),): "no such file",
    }
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    refusals[(str(notes),)] = "not a model file"
    for values, reason in refusals.items():
        with pytest.raises(M2UNetError, match=reason):
            served_weights(list(values))


def test_the_calibrated_model_is_listed_default_and_runs_as_calibrated(clinic, export_cache):
    from m2unet.inference.pipeline import get_segmenter
    from m2unet.weights import calibration_for

    path, photo_file = clinic
    photo = photo_file.read_bytes()
    meta = read_metadata(path)
    record = meta["camera_calibration"]
    with TestClient(create_app(Settings(backend="onnxruntime", model="clinic", weights={"clinic": path}))) as client:
        listed = client.get("/v1/models").json()
        assert listed["default"] == "clinic"
        served = [m for m in listed["models"] if m["name"] == "clinic"]
        assert served == [{"name": "clinic", "threshold": meta["threshold"], "loaded": False, "file": "clinic.safetensors",
                           "calibration": {"photographs": 2, "dataset": "photos", "f1_before": record["f1_before"],
                                           "f1_after": record["f1_after"],
                                           "run_fov_diameter": meta["run_fov_diameter"]}}]
        assert {m["name"] for m in listed["models"]} >= {"universal", "drive", "clinic"}

        answer = client.post("/v1/segment", files={"image": ("eye1.png", photo)}).json()
        assert answer["model"] == "clinic" and answer["threshold"] == pytest.approx(meta["threshold"], abs=1e-6)
        assert answer["search_diameter"] is False  # a weights file runs as calibrated, as `segment --weights` does
        low, high = meta["run_fov_diameter"]
        assert low <= answer["run_fov_diameter"] <= high

        # the same maps as the pipeline gives for that file on that backend
        image = read_image(photo_file)
        expected = get_segmenter(path, "onnxruntime", calibration=calibration_for(path)).run(image, estimate_fov_mask(image))
        probability = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["probability_png"]))))
        assert np.array_equal(probability, np.clip(np.rint(expected.probability * 255), 0, 255).astype(np.uint8))
        vessels = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["vessels_png"])))) > 0
        assert np.array_equal(vessels, expected.probability >= meta["threshold"])

        other = client.post("/v1/segment", files={"image": ("eye1.png", photo)}, data={"model": "universal"}).json()
        assert other["model"] == "universal" and other["threshold"] != answer["threshold"]
        assert client.get("/v1/models").json()["models"][-1]["loaded"] is True
        refused = client.post("/v1/segment", files={"image": ("eye1.png", photo)}, data={"model": "ward_9"})
        assert refused.status_code == 400
        assert refused.json() == {"error": "unknown model 'ward_9'; choose one of auto, drive, chase_db1, hrf, universal, clinic"}


def test_serve_refuses_bad_weights_in_one_line(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["serve", "--port", str(free_port()), "--weights", str(tmp_path / "none.safetensors")])
    assert result.exit_code == 1 and result.output == f"error: --weights {tmp_path / 'none.safetensors'}: no such file\n"
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not safetensors")
    result = runner.invoke(main, ["serve", "--port", str(free_port()), "--backend", "onnxruntime", "--weights", str(broken)])
    assert result.exit_code == 1 and result.output.startswith("error: ") and len(result.output.splitlines()) == 1
    assert "broken.safetensors" in result.output
    result = runner.invoke(main, ["serve", "--port", str(free_port()), "--model", "ward_9"])
    assert result.exit_code == 1 and result.output == "error: --model ward_9: choose auto, drive, chase_db1, hrf, universal or a --weights name\n"


def test_serve_process_loads_the_weights_before_it_answers(clinic, export_cache):
    path, photo_file = clinic
    photo = photo_file.read_bytes()
    port = free_port()
    server = start_server(port, "--weights", f"clinic={path}")
    try:
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz", timeout=10).json()["loaded"] == ["clinic"]  # compiled before listening
        answer = httpx.post(f"{base}/v1/segment", files={"image": ("eye1.png", photo)}, timeout=120).json()
        assert answer["model"] == "clinic" and answer["threshold"] == pytest.approx(read_metadata(path)["threshold"], abs=1e-6)
    finally:
        server.terminate()
        server.wait(timeout=30)
