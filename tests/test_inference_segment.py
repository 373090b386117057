"""``m2unet segment`` and ``m2unet.segment``: formats, bad files, FOV mask, the --model auto rule."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from PIL import Image

import m2unet
from m2unet.cli import main
from m2unet.data import estimate_fov_mask, read_binary, read_image
from m2unet.inference.pipeline import fov_width
from m2unet.weights import SEARCH_TIME, auto_run, closest_dataset_model, pretrained_path, resolve_weights


def test_search_time_is_the_committed_latency():
    # the help texts' "3.6–6× the time" (m2unet.weights.SEARCH_TIME) spans the ratios results/scale/latency.md measured
    import re
    from pathlib import Path

    latency = (Path(__file__).resolve().parents[1] / "results" / "scale" / "latency.md").read_text()
    measured = [float(r) for r in re.findall(r"; ([0-9.]+)× the universal's time\)", latency)]
    low, high = (float(v) for v in re.match(r"([0-9.]+)–([0-9.]+)× the time", SEARCH_TIME).groups())
    assert len(measured) == 3 and round(min(measured), 1) == low and high - 0.5 <= max(measured) <= high


def test_auto_model_rule():
    # --model auto is the universal model with its diameter searched (results/scale/loo.md); the per-dataset rule it
    # replaced stays as the baseline: native FOV widths (results/fov_iou.md): DRIVE 540, CHASE_DB1 922, HRF 3262
    assert resolve_weights("auto") == pretrained_path("universal")
    assert auto_run("auto").search_diameter and not auto_run("universal").search_diameter and not auto_run("drive").search_diameter
    assert not auto_run("auto", "my.safetensors").search_diameter  # a weights file runs as asked, whatever --model says
    assert not auto_run("auto", search_diameter=False).search_diameter and auto_run("universal", search_diameter=True).search_diameter
    # and with flips of the map it keeps, by the same rule (m2unet.weights.auto_run)
    assert auto_run("auto").tta and not auto_run("universal").tta and not auto_run("auto", "my.safetensors").tta
    assert not auto_run("auto", tta=False).tta and auto_run("drive", tta=True).tta
    assert closest_dataset_model(540) == "drive"
    assert closest_dataset_model(700) == "drive"
    assert closest_dataset_model(701) == "chase_db1"
    assert closest_dataset_model(922) == "chase_db1"
    assert closest_dataset_model(1500) == "chase_db1"
    assert closest_dataset_model(1501) == "hrf"
    assert closest_dataset_model(3262) == "hrf"
    mask = np.zeros((10, 20), dtype=bool)
    mask[2:8, 3:15] = True
    assert fov_width(mask, 20) == 12
    assert fov_width(None, 20) == 20


@pytest.mark.parametrize(
    "relative,mask_relative",
    [
        ("DRIVE/test/images/01_test.tif", "DRIVE/test/mask/01_test_mask.gif"),
        ("DRIVE/training/images/21_training.tif", "DRIVE/training/mask/21_training_mask.gif"),
        ("CHASE_DB1/Image_14R.jpg", "CHASE_DB1_fov_mask_unofficial/Image_14R.png"),  # the darkest FOV border
        ("HRF/images/01_h.jpg", "HRF/mask/01_h_mask.tif"),
    ],
)
def test_fov_estimate_matches_dataset_masks(datasets_root, relative, mask_relative):
    image = read_image(datasets_root / relative)
    reference = read_binary(datasets_root / mask_relative, image.shape[:2])
    estimate = estimate_fov_mask(image)
    iou = np.count_nonzero(estimate & reference) / np.count_nonzero(estimate | reference)
    assert iou > 0.95, f"{relative}: IoU {iou:.4f}"


@pytest.fixture(scope="module")
def drive_rgb(datasets_root):
    return np.asarray(Image.open(datasets_root / "DRIVE/test/images/01_test.tif"))  # 565×584 uint8 RGB


def test_python_api_on_arrays_and_paths(drive_rgb, datasets_root, authors_dir, export_cache):
    probability = m2unet.segment(drive_rgb, model="drive", backend="openvino", precision="fp32")
    assert probability.shape == drive_rgb.shape[:2] and probability.dtype == np.float32
    mask = estimate_fov_mask(drive_rgb.astype(np.float32) / 255)
    assert probability[~mask].max() == 0.0  # nothing outside the FOV
    assert 0.05 < np.mean(probability[mask] >= 0.5) < 0.25  # vessels cover ~12 % of a DRIVE FOV
    from_path = m2unet.segment(datasets_root / "DRIVE/test/images/01_test.tif", model="drive", backend="openvino", precision="fp32")
    assert np.abs(from_path - probability).max() < 1e-6
    reference = m2unet.segment(drive_rgb, model="drive", backend="torch", fov_mask=False)
    unmasked = m2unet.segment(drive_rgb, model="drive", backend="openvino", precision="fp32", fov_mask=False)
    assert np.abs(unmasked - reference).max() < 1e-4



def test_binary_map_api_and_the_default_model(drive_rgb, export_cache):
    from m2unet.weights import read_metadata, threshold_of

    options = dict(backend="openvino", precision="fp32")
    probability = m2unet.segment(drive_rgb, **options)  # no model named: auto, as on the command line
    # auto: the universal model with the photograph's diameter searched and the kept view's flips averaged
    # (m2unet.weights.auto_run)
    assert np.array_equal(probability, m2unet.segment(drive_rgb, model="universal", search_diameter=True, tta=True, **options))
    searched = m2unet.segment(drive_rgb, model="universal", search_diameter=True, **options)
    assert 0 < np.abs(probability - searched).mean() < 0.02  # the flips move the map a little
    unsearched = m2unet.segment(drive_rgb, model="universal", **options)
    assert not np.array_equal(probability, unsearched)
    assert np.array_equal(m2unet.segment(drive_rgb, search_diameter=False, tta=False, **options), unsearched)
    assert not np.array_equal(probability, m2unet.segment(drive_rgb, model="drive", **options))
    stored = threshold_of(read_metadata(pretrained_path("universal")))
    binary = m2unet.vessels(drive_rgb, **options)
    assert binary.dtype == bool and np.array_equal(binary, probability >= stored)
    assert 0.05 < binary.mean() < 0.2
    looser = m2unet.vessels(drive_rgb, model="universal", threshold=stored / 2, **options)  # the threshold argument, without a third search
    assert np.array_equal(looser, unsearched >= stored / 2) and looser.sum() > (unsearched >= stored).sum()


def test_the_diameter_search_compiles_a_cameras_shapes_once(datasets_root, export_cache, monkeypatch):
    """auto runs a large photograph at several shapes (its search climbs above the stored range); all of them stay
    compiled (backends.SHAPE_CACHE), so the next photograph of the camera compiles none again (results/bench/shape_cache.md:
    1.6x on a folder of HRF photographs, which compiled 6 shapes each time when 4 were kept)."""
    from m2unet.inference import backends

    hrf = Image.open(datasets_root / "HRF/images/01_h.jpg")
    photo = np.asarray(hrf.resize((hrf.width * 3 // 4, hrf.height * 3 // 4)))  # 2628x1752: FOV ~2450 px
    used, compiled = [], []
    request = backends.OpenVINOBackend.request

    def counting(self, shape):
        used.append(shape)
        if shape not in self.compiled:
            compiled.append(shape)
        return request(self, shape)

    monkeypatch.setattr(backends.OpenVINOBackend, "request", counting)
    options = dict(backend="openvino", precision="fp32")
    m2unet.segment(photo, **options)  # compiles what an earlier test did not
    first_run, compiled_before = list(used), len(compiled)
    m2unet.segment(photo, **options)
    shapes = set(first_run)
    assert 4 < len(shapes) <= backends.SHAPE_CACHE  # more than the 4 kept before
    assert set(used[len(first_run):]) == shapes and len(compiled) == compiled_before  # the same shapes, none compiled again


def test_search_diameter_on_the_command_line_records_where_each_photograph_ran(tmp_path, drive_rgb, export_cache):
    import hashlib

    import pandas as pd

    from m2unet.inference.batch import Options

    Image.fromarray(drive_rgb).save(tmp_path / "photo.png")
    ran_at = {}
    for name, flags in {"universal": ["--model", "universal"], "searched": ["--model", "universal", "--search-diameter"],
                        "auto": [], "auto, not searched": ["--no-search-diameter"]}.items():
        out = tmp_path / name
        result = CliRunner().invoke(main, ["segment", str(tmp_path / "photo.png"), "-o", str(out), "--backend", "openvino", "--precision", "fp32", *flags])
        assert result.exit_code == 0, result.output
        ran_at[name] = int(pd.read_parquet(out / "results.parquet")["run_fov_diameter"][0])
    assert ran_at["universal"] == ran_at["auto, not searched"] == 1024  # DRIVE's 540-px FOV clamped into the stored 1024–1792
    # its map is surer enlarged further (results/scale/file_layouts.md: DRIVE's photographs at 1536–1792 px), and a
    # photograph narrower than the range is only tried within it (256-px steps); auto searches by default
    assert ran_at["searched"] == ran_at["auto"] and ran_at["auto"] in (1280, 1536, 1792)
    plain = Options(out="x", backend="openvino")
    settings = {k: v for k, v in plain.__dict__.items() if k not in ("out", "threads", "search_diameter")}
    assert plain.fingerprint() == hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]  # older folders resume
    searched = Options(out="x", backend="openvino", search_diameter=True).fingerprint()
    first_search = hashlib.sha1(json.dumps({**settings, "search_diameter": True}, sort_keys=True).encode()).hexdigest()[:12]
    assert searched not in (plain.fingerprint(), first_search)  # nor does a folder of the search before it went above the range
    from m2unet.data.scale import SEARCH_VERSION

    flipped = Options(out="x", backend="openvino", search_diameter=True, tta=True).fingerprint()
    older_flips = hashlib.sha1(json.dumps({**settings, "tta": True, "search_diameter": SEARCH_VERSION}, sort_keys=True).encode()).hexdigest()[:12]
    assert flipped not in (searched, older_flips)  # searched and flipped before the flips were of the kept view: no resume
    flips_alone = hashlib.sha1(json.dumps({**settings, "tta": True}, sort_keys=True).encode()).hexdigest()[:12]
    assert Options(out="x", backend="openvino", tta=True).fingerprint() == flips_alone  # flips without a search: as before, resumes

def test_settings_that_only_change_how_a_model_runs_share_one_compiled_model(drive_rgb, export_cache):
    from m2unet.inference.pipeline import get_segmenter

    weights = pretrained_path("drive")
    plain = get_segmenter(weights, "openvino", calibration="drive")
    flipped = get_segmenter(weights, "openvino", calibration="drive", tta=True, restore_contrast=False)
    assert flipped is not plain and flipped.tta and flipped.backend is plain.backend
    assert get_segmenter(weights, "openvino", calibration="drive") is plain
    assert get_segmenter(weights, "torch", calibration="drive").backend is not plain.backend

def test_bad_files_are_reported_and_the_rest_segmented(tmp_path, drive_rgb, authors_dir, export_cache):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(drive_rgb).save(folder / "good.jpg", quality=90)
    data = (folder / "good.jpg").read_bytes()
    (folder / "corrupt.jpg").write_bytes(data[: len(data) // 3])
    (folder / "empty.png").write_bytes(b"")
    (folder / "fake.png").write_text("not an image")
    (folder / "notes.txt").write_text("a text file")
    tifffile.imwrite(folder / "sub" / "sixteen.tif", drive_rgb.astype(np.uint16) * 257)
    rgba = np.dstack([drive_rgb, np.full(drive_rgb.shape[:2], 200, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(folder / "sub" / "rgba.png")
    Image.fromarray(drive_rgb[..., 1]).save(folder / "gray.png")
    Image.fromarray(drive_rgb).save(folder / "photo.ppm")
    Image.fromarray(drive_rgb).convert("P").save(folder / "palette.gif")
    big = np.asarray(Image.fromarray(drive_rgb).resize((1300, 1344)))  # FOV ~1240 px wide: chase_db1; over one tile: tiled
    Image.fromarray(big).save(folder / "big.png")
    out = tmp_path / "out"
    # universal without the diameter search: this is about files, and the search would run each photograph 4-5 times
    result = CliRunner().invoke(main, ["segment", str(folder), "-o", str(out), "--model", "universal", "--overlay", "--backend", "openvino",
                                       "--precision", "fp32", "--tile", "1024"])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    for bad, problem in [("corrupt.jpg", "truncated"), ("empty.png", "empty"), ("fake.png", "not an image")]:
        assert sum(bad in line and problem in line for line in lines) >= 1, (bad, result.output)
    assert any("notes.txt" in line and "skipped" in line for line in lines)
    assert "Traceback" not in result.output
    assert "segmented 7/10 image(s)" in result.output
    for stem in ["good", "gray", "photo", "palette", "big", "sub/sixteen", "sub/rgba"]:
        for kind in ("probability", "vessels", "overlay"):
            assert (out / f"{stem}_{kind}.png").is_file(), (stem, kind)
    sixteen = np.asarray(Image.open(out / "sub/sixteen_probability.png"), dtype=np.int16)
    rgba_out = np.asarray(Image.open(out / "sub/rgba_probability.png"), dtype=np.int16)
    assert np.abs(sixteen - rgba_out).max() <= 1  # 16-bit TIFF = same pixels as the 8-bit RGBA: same map
    assert Image.open(out / "big_vessels.png").size == (1300, 1344)
    assert "universal.safetensors ×7" in result.output  # auto: the universal model for every photograph


def test_when_every_file_fails_the_summary_says_nothing_was_written(tmp_path):
    (tmp_path / "fake.png").write_text("not an image")
    result = CliRunner().invoke(main, ["segment", str(tmp_path / "fake.png"), str(tmp_path / "missing.jpg"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "segmented 0/2 image(s): nothing written" in result.output and "2 failed:" in result.output, result.output
    assert not any((tmp_path / "out").rglob("*.png"))  # no maps; results.parquet records the two failures


def test_missing_weights_is_one_line_error(tmp_path, drive_rgb):
    Image.fromarray(drive_rgb).save(tmp_path / "a.png")
    result = CliRunner().invoke(main, ["segment", str(tmp_path / "a.png"), "--weights", str(tmp_path / "nope.safetensors")])
    assert result.exit_code == 1 and "no such weights file" in result.output and "Traceback" not in result.output


def test_device_cuda_picks_the_gpu_backends_and_fails_in_one_line_without_a_gpu(tmp_path, drive_rgb):
    import torch

    from m2unet.errors import M2UNetError
    from m2unet.inference.backends import TorchBackend, backend_name
    from m2unet.weights import pretrained_path

    assert [backend_name("torch", p, "cuda") for p in ("auto", "fp32", "fp16", "bf16")] == ["cuda", "cuda", "cuda-fp16", "cuda-bf16"]
    for runtime, precision, device, message in [("openvino", "auto", "cuda", "runs the torch backend"), ("torch", "int8", "cuda", "int8 runs on the CPU"),
                                                ("torch", "fp16", "cpu", "fp16 is for --device cuda")]:
        with pytest.raises(M2UNetError, match=message):
            backend_name(runtime, precision, device)
    # the GPU backend's code path (model and input on a device, autocast, result back to the host), here on the CPU
    model = m2unet.load_pretrained("drive")
    batch = np.random.default_rng(0).random((1, 3, 64, 96), dtype=np.float32)
    fp32 = TorchBackend(model)(batch)
    bf16 = TorchBackend(model, autocast=torch.bfloat16, device="cpu", name="cuda-bf16")(batch)
    assert bf16.shape == fp32.shape == (1, 1, 64, 96) and bf16.dtype == np.float32 and np.abs(bf16 - fp32).max() < 0.05
    if torch.cuda.is_available():
        assert np.abs(TorchBackend(model, device="cuda")(batch) - fp32).max() < 1e-3
        return
    Image.fromarray(drive_rgb).save(tmp_path / "a.png")
    result = CliRunner().invoke(main, ["segment", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--device", "cuda"])
    assert result.exit_code == 1 and result.output.strip() == "error: --device cuda: no CUDA device visible to this torch build (torch.cuda.is_available() is False)"
    with pytest.raises(M2UNetError, match="no CUDA device"):
        m2unet.segment(drive_rgb, weights=pretrained_path("drive"), backend="cuda-fp16")


def test_export_and_bench_commands(tmp_path, authors_dir, export_cache):
    import onnx

    onnx_out = tmp_path / "m.onnx"
    result = CliRunner().invoke(main, ["export", "--format", "onnx", "-o", str(onnx_out)])
    assert result.exit_code == 0, result.output
    assert "fp32 parity" in result.output and onnx.load(str(onnx_out)).graph.input[0].name == "image"
    xml = tmp_path / "m.xml"
    result = CliRunner().invoke(main, ["export", "--format", "openvino", "-o", str(xml)])
    assert result.exit_code == 0 and xml.is_file() and xml.with_suffix(".bin").is_file(), result.output
    difference = float(result.output.split("544×544: ")[1].split()[0])
    assert difference < 1e-4
    bench_out = tmp_path / "bench"
    result = CliRunner().invoke(main, ["bench", "--sizes", "64x48", "--backends", "openvino", "--repeats", "2", "-o", str(bench_out)])
    assert result.exit_code == 0, result.output
    report = json.loads((bench_out / "bench.json").read_text())
    assert [c["backend"] for c in report["cells"]] == ["torch", "openvino"]  # the eager baseline always runs
    assert all(c["median_ms"] > 0 and c["peak_rss_mb"] > 50 and len(c["loadavg_before"]) == 3 for c in report["cells"])
    assert (bench_out / "bench.png").stat().st_size > 1000 and "| torch | 64×48 |" in (bench_out / "bench.md").read_text()


def _fundus_like(height, width, radius):
    """A bright disc (the FOV) with dark lines (vessels) on black, float RGB."""
    yy, xx = np.mgrid[:height, :width]
    fov = (yy - height / 2) ** 2 + (xx - width / 2) ** 2 <= radius**2
    image = np.zeros((height, width, 3), np.float32)
    image[fov] = (0.8, 0.4, 0.2)
    image[(np.abs(yy - xx) < 3) & fov] *= 0.4
    return image, fov


class RecordingBackend:
    def __init__(self):
        self.shapes = []

    def __call__(self, batch):
        self.shapes.append(batch.shape)
        return np.full((batch.shape[0], 1, *batch.shape[2:]), 0.7, np.float32)


@pytest.mark.parametrize("metadata, photo_radius, expected_side, expected_diameter", [
    ({"fov_diameter": 256}, 400, 256 * 1.04, 256),  # a scale-normalised model: shrunk to its diameter ...
    ({"fov_diameter": 256}, 60, 256 * 1.04, 256),  # ... and enlarged to it
    ({"dataset": "drive"}, 400, 538 * 1.04, 538),  # a DRIVE model: shrunk to DRIVE's FOV ...
    ({"dataset": "drive"}, 200, None, 401),  # ... but a smaller photograph runs as it is (its own FOV diameter)
    ({}, 400, None, None),  # a model without a scale: as it is
])
def test_segmenter_runs_the_photograph_at_the_models_fov_diameter(tmp_path, export_cache, metadata, photo_radius, expected_side, expected_diameter):
    from m2unet.inference.pipeline import Segmenter
    from m2unet.models import create_model
    from m2unet.weights import save_weights

    weights = save_weights(create_model("m2unet"), tmp_path / "model.safetensors", {**metadata, "threshold": 0.5})
    segmenter = Segmenter(weights, "torch")
    segmenter.backend = recording = RecordingBackend()
    image, fov = _fundus_like(2 * photo_radius + 40, 2 * photo_radius + 100, photo_radius)
    probability = segmenter(image, fov)
    side = max(recording.shapes[0][2:])
    if expected_side is None:
        assert side == -(-image.shape[1] // 16) * 16  # the whole photograph, padded to 16
    else:
        assert abs(side - expected_side) <= 24  # the FOV box at the diameter (plus margin), padded to 16
    assert probability.shape == fov.shape and probability[~fov].max() == 0.0
    assert np.allclose(probability[fov], 0.7, atol=1e-3)  # mapped back onto the whole photograph
    diameter = segmenter.run(image, fov)[1]  # what results.parquet's run_fov_diameter records
    assert diameter is None if expected_diameter is None else abs(diameter - expected_diameter) <= 2
    no_scale = Segmenter(weights, "torch", rescale=False)
    no_scale.backend = recording = RecordingBackend()
    no_scale(image, fov)
    assert max(recording.shapes[0][2:]) == -(-image.shape[1] // 16) * 16  # --no-rescale: as it is


class KeepingBackend(RecordingBackend):
    def __call__(self, batch):
        self.batches = getattr(self, "batches", []) + [np.array(batch)]
        return super().__call__(batch)


def test_segmenter_restores_a_flat_photograph_to_the_models_contrast_floor(tmp_path, export_cache):
    from m2unet.data.contrast import local_contrast
    from m2unet.evaluation.camera_shift import low_contrast
    from m2unet.inference.pipeline import Segmenter
    from m2unet.models import create_model
    from m2unet.weights import save_weights

    image, fov = _fundus_like(300, 360, 130)
    flat = low_contrast(0.4)(image, fov, fov)[0]
    floor = local_contrast(image, fov)
    seen = {}
    for name, metadata, photograph in [("original", {"contrast_floor": floor}, image), ("restored", {"contrast_floor": floor}, flat),
                                       ("no floor", {}, flat), ("kept", {"contrast_floor": floor}, flat)]:
        weights = save_weights(create_model("m2unet"), tmp_path / f"{name}.safetensors", {"fov_diameter": 256, "threshold": 0.5, **metadata})
        segmenter = Segmenter(weights, "torch", restore_contrast=name != "kept")
        segmenter.backend = KeepingBackend()
        gain = segmenter.run(photograph, fov).contrast_gain  # what results.parquet's contrast_gain records
        assert gain == (pytest.approx(1 / 0.4, rel=0.05) if name == "restored" else 1.0)
        seen[name] = segmenter.backend.batches[0]
    assert np.abs(seen["restored"] - seen["original"]).max() < 0.03  # the model sees the photograph at its old contrast
    assert np.abs(seen["no floor"] - seen["original"]).max() > 0.1  # a model without a floor sees it flat
    assert np.array_equal(seen["kept"], seen["no floor"])  # restore_contrast=False: as if the model had no floor
