"""The models shipped in the package: present, self-describing, and as good as their model card says."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from m2unet.data import load_dataset
from m2unet.evaluation.metrics import f1_score, threshold_counts
from m2unet.inference.predict import predict_probability
from m2unet.weights import PRETRAINED_DIR, load_pretrained, pretrained_path, read_metadata

REPO = Path(__file__).resolve().parents[1]

SHIPPED = ("drive", "chase_db1", "hrf")
REQUIRED_METADATA = ("model", "dataset", "recipe", "epochs", "best_epoch", "val_dice", "threshold", "git_commit", "jaccard", "test")


def training_record(meta: dict, name: str) -> dict:
    """A file of the committed records of the run shipped weights came from (results/train/<run>/, their trained_from)."""
    return json.loads((REPO / "results" / "train" / Path(meta["trained_from"]).parent.name / name).read_text())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_are_in_the_package_with_metadata(name):
    path = PRETRAINED_DIR / f"{name}.safetensors"
    assert pretrained_path(name) == path, "the shipped file must win over any authors' fallback"
    meta = read_metadata(path)
    for key in REQUIRED_METADATA:
        assert meta.get(key) is not None, key
    assert meta["dataset"] == name and meta["model"] == "m2unet" and meta["epochs"] == 300
    assert 0.0 < meta["threshold"] < 1.0
    model = load_pretrained(name)
    assert not model.training and model.metadata["threshold"] == meta["threshold"]


@pytest.mark.parametrize("name", (*SHIPPED, "universal"))
def test_shipped_onnx_is_the_export_of_the_shipped_weights(name, tmp_path, monkeypatch):
    """NAME.onnx (for installs without PyTorch) was made from exactly NAME.safetensors: same outputs, same metadata,
    and the cache takes it instead of exporting. After retraining: python scripts/ship_pretrained.py --onnx-only."""
    import onnxruntime as ort
    import torch

    from m2unet.export import cached_export
    from m2unet.weights import shipped_onnx

    weights = PRETRAINED_DIR / f"{name}.safetensors"
    assert shipped_onnx(weights) == PRETRAINED_DIR / f"{name}.onnx", "stale or missing: python scripts/ship_pretrained.py --onnx-only"
    onnx_meta, meta = read_metadata(PRETRAINED_DIR / f"{name}.onnx"), read_metadata(weights)
    assert {k: onnx_meta[k] for k in meta} == meta and onnx_meta["exported_from"] == weights.name
    image = torch.rand(1, 3, 64, 80)
    with torch.no_grad():
        expected = torch.sigmoid(load_pretrained(name)(image)).numpy()
    session = ort.InferenceSession(str(PRETRAINED_DIR / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    assert float(np.abs(session.run(None, {"image": image.numpy()})[0] - expected).max()) < 1e-4
    monkeypatch.setenv("M2UNET_CACHE", str(tmp_path))
    cached = cached_export(weights, "onnx")
    assert cached.read_bytes() == (PRETRAINED_DIR / f"{name}.onnx").read_bytes()


@pytest.mark.parametrize("name, run", [("drive", "drive-global"), ("chase_db1", "chase_db1-global"), ("hrf", "hrf-global")])
def test_metadata_quotes_the_committed_evaluation(name, run):
    meta = read_metadata(PRETRAINED_DIR / f"{name}.safetensors")
    metrics = json.loads((REPO / "results" / "ours" / run / "metrics.json").read_text())
    assert meta["test"]["fov"]["f1_a_priori"] == pytest.approx(metrics["pooled"]["fov"]["a_priori"]["f1"])
    assert metrics["pooled"]["fov"]["a_priori"]["threshold"] == pytest.approx(meta["threshold"], abs=1e-3)


def test_shipped_drive_model_reaches_its_stated_f1(datasets_root):
    """Recompute from scratch: pooled F1 inside the FOV at the stored threshold, all 20 DRIVE test images."""
    model = load_pretrained("drive")
    threshold = model.metadata["threshold"]
    index = int(round(threshold * 1000))
    totals = None
    for sample in load_dataset("drive", "test", root=datasets_root):
        counts = threshold_counts(predict_probability(model, sample.image), sample.label, sample.mask)
        totals = counts if totals is None else {k: totals[k] + counts[k] for k in counts}
    f1 = float(f1_score(totals["tp"][index], totals["fp"][index], totals["fn"][index]))
    assert f1 == pytest.approx(model.metadata["test"]["fov"]["f1_a_priori"], abs=0.002)
    assert f1 >= 0.809  # the paper's best-threshold F1, reached at the a-priori threshold


def test_segment_without_weights_picks_the_shipped_model(datasets_root, tmp_path, export_cache):  # as a user runs it: default backend
    drive_image = datasets_root / "DRIVE" / "test" / "images" / "01_test.tif"
    chase_image = REPO / "examples" / "chase_db1_Image_11L.jpg"
    hrf_image = datasets_root / "HRF" / "images" / "06_h.jpg"  # a test image of the HRF model
    result = subprocess.run(
        [sys.executable, "-m", "m2unet", "segment", str(drive_image), str(chase_image), str(hrf_image), "-o", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "universal.safetensors ×3" in result.stdout  # --model auto: the universal model, for any camera
    for stem in ("01_test", "chase_db1_Image_11L", "06_h"):
        vessels = np.asarray(Image.open(tmp_path / f"{stem}_vessels.png"))
        assert 0.05 < (vessels > 0).mean() < 0.2  # a vessel map, not an empty or full one


def test_universal_model_is_shipped_with_its_scale_and_quotes_each_evaluation():
    from m2unet.data.contrast import model_contrast_floor
    from m2unet.data.scale import WidthRule, model_scale, scale_record

    meta = read_metadata(PRETRAINED_DIR / "universal.safetensors")
    assert pretrained_path("universal") == PRETRAINED_DIR / "universal.safetensors"
    scale = model_scale(meta)  # how it runs a photograph, chosen on held-out training images, as committed
    assert meta["datasets"] == ["drive", "chase_db1", "hrf"] and 0.0 < meta["threshold"] < 1.0
    assert meta["epochs_trained"] == meta["epochs"] >= 150  # trained to its last epoch, at least the MULTI preset's
    if meta.get("trained_from"):  # its committed training record says the same
        config = training_record(meta, "config.json")
        assert config["config"]["epochs"] == meta["epochs"] and config["config"].get("ema_half_life") == meta.get("ema_half_life")
    if isinstance(scale, WidthRule):  # trained at one vessel width: each dataset at its own FOV diameter
        record = training_record(meta, "summary.json")
        assert record["run_vessel_width"] == scale_record(scale) and record["threshold"] == pytest.approx(meta["threshold"])
        diameters = meta["run_vessel_width_choice"]["dataset_fov_diameters"]
        assert diameters["drive"] < 1024 < diameters["hrf"] and 4 < scale.map_width < 16  # HRF's thin vessels: a larger FOV
    else:
        low, high = scale
        assert meta["fov_diameter"] == 1024 <= low <= high
        assert f"| `universal` | drive, chase_db1, hrf | {low}–{high} px |" in (REPO / "results" / "scale" / "run_diameter.md").read_text()
    evaluations = meta.get("test_evaluations") or {d: f"results/ours/universal/{d}/metrics.json" for d in meta["datasets"]}
    assert sorted(evaluations) == sorted(meta["datasets"])
    for dataset in meta["datasets"]:
        metrics = json.loads((REPO / evaluations[dataset]).read_text())
        assert meta["test"][dataset]["fov"]["f1_a_priori"] == pytest.approx(metrics["pooled"]["fov"]["a_priori"]["f1"])
        assert metrics["pooled"]["fov"]["a_priori"]["threshold"] == pytest.approx(meta["threshold"], abs=1e-3)
        assert metrics["weights"]["metadata"]["run_at_fov_diameter"] == scale_record(scale)  # evaluated as segment runs it
        assert metrics["weights"]["metadata"].get("run_at_contrast_floor") == model_contrast_floor(meta)  # ... and at its contrast


def test_universal_model_segments_the_sample_at_any_resolution(datasets_root, export_cache):
    """The bundled CHASE_DB1 photograph as it is and shrunk to half: the universal model keeps its F1, the
    CHASE_DB1 model (run as it is on the half-size photograph) does not (results/scale, docs/camera_robustness.png)."""
    import m2unet
    from m2unet.data.scale import resize_image, resize_plane

    sample = next(s for s in load_dataset("chase_db1", "test", root=datasets_root) if s.name == "Image_11L")
    half = (sample.image.shape[0] // 2, sample.image.shape[1] // 2)
    variants = [(sample.image, sample.label, sample.mask),
                (resize_image(sample.image, half), resize_plane(sample.label.astype("float32"), half) >= 0.5,
                 resize_plane(sample.mask.astype("float32"), half) >= 0.5)]
    scores = {}
    for index, (image, label, mask) in enumerate(variants):
        for model in ("universal", "chase_db1"):
            weights = pretrained_path(model)
            vessels = m2unet.segment(image, weights=weights, backend="onnxruntime", fov_mask=mask, rescale=model == "universal")
            vessels = vessels >= read_metadata(weights)["threshold"]
            tp = np.count_nonzero(vessels & label & mask)
            scores[model, index] = 2 * tp / (np.count_nonzero(vessels & mask) + np.count_nonzero(label & mask))
    assert scores["universal", 0] > 0.78 and scores["universal", 1] > 0.76
    # measured: universal 0.814 / 0.773, chase_db1 0.796 / 0.746. The half-size photograph runs enlarged 2.2×, past the
    # 1.67× from which a model trained on DRIVE's pooled labels brings its map back by the maximum (back_max_from):
    # by the mean it would score 0.816 here (measured once with back_max_from patched), and zoom15's model, whose maximum
    # starts at 2.86×, scores 0.820
    assert scores["chase_db1", 1] < scores["universal", 1] - 0.02


def test_int8_calibration_of_the_universal_model_uses_its_datasets_at_its_scale(datasets_root):
    """int8 ranges are measured on what the model sees: the universal model's calibration images come from all three
    of its datasets, each brought to the FOV it runs at first (a DRIVE photograph enlarged about 1.9× to 1024 px, an
    HRF one shrunk to 1792 px)."""
    from m2unet.export.quantize import calibration_images
    from m2unet.weights import calibration_for

    assert calibration_for(pretrained_path("universal")) == "drive,chase_db1,hrf"
    assert calibration_for(pretrained_path("drive")) == "drive" and calibration_for("mine.onnx", "hrf") == "hrf"
    native = calibration_images("drive", limit=1, root=datasets_root)
    scaled = calibration_images("drive,hrf", limit=2, root=datasets_root, scale=(1024, 1792))
    assert native[0].shape == (1, 3, 544, 544)  # DRIVE as the paper crops it
    assert scaled[0].shape == (1, 3, 1024, 1024)  # enlarged to a 1024-px FOV, centre crop ≤ 1024
    assert len(scaled) == 2 and scaled[1].shape == (1, 3, 1024, 1024)  # HRF at 1792 px: ~1280 px tall, centre crop
    at_1024 = calibration_images("hrf", limit=1, root=datasets_root, scale=(1024, 1024))
    assert at_1024[0].shape[2] < 1024 == at_1024[0].shape[3]  # shrunk to 1024 px: its FOV is cut top and bottom


def test_model_card_names_every_setting_the_shipped_universal_run_changed():
    """The model card's training command for `universal` is read from the run's committed config: every recipe and
    augmentation setting it changed from the MULTI preset appears as an option, so the command retrains that model."""
    import importlib.util

    from m2unet.training.augment import AugmentConfig
    from m2unet.training.presets import preset_for

    spec = importlib.util.spec_from_file_location("model_card", REPO / "scripts" / "model_card.py")
    card = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(card)
    meta = read_metadata(PRETRAINED_DIR / "universal.safetensors")
    command = card.training_command(meta)
    config = training_record(meta, "config.json")["config"]
    preset = preset_for(",".join(meta["datasets"]))
    assert command.startswith("m2unet train --dataset drive,chase_db1,hrf")
    options = card.train_options(config)
    assert {"epochs", "ema_half_life", "lr", "seed"} <= set(options) and "dataset" not in options
    for key, flag in options.items():
        assert (f"{flag} " in command) == (config[key] != preset.get(key)), flag
    augment_preset = {**vars(AugmentConfig()), **preset["augment"]}
    for key, value in config["augment"].items():
        assert (f"--augment {key}=" in command) == (value != augment_preset[key]), key
    assert f"`{command}`" in (REPO / "results" / "model_card.md").read_text()  # the committed card is current
    from m2unet.cli import main as cli

    parsed = cli.commands["train"].make_context("train", shlex.split(command)[2:]).params  # it runs as typed (a flag takes no value)
    changed = [key for key in options if config[key] != preset.get(key)]
    assert changed and all(parsed[key] == pytest.approx(config[key]) for key in changed), parsed
