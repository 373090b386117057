"""Calibrating a model to one camera (m2unet.evaluation.calibrate, `m2unet calibrate`)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from m2unet.cli import main
from m2unet.evaluation.calibrate import MARGIN, Candidate, candidates, choose
from m2unet.weights import pretrained_path, read_metadata, read_state_dict


def candidate(scale, f1, stored=False) -> Candidate:
    return Candidate(scale, stored, threshold=0.5, f1=f1)


def test_within_the_margin_the_stored_scale_then_the_nearest_diameter_wins():
    stored = candidate((1024, 1792), 0.800, stored=True)
    near, far = candidate((896, 896), 0.801), candidate((640, 640), 0.8015)
    assert choose([stored, near, far], 1024) is stored  # every gain within the margin: the model stays as it was trained
    stored.f1 = 0.79
    assert choose([stored, near, far], 1024) is near  # 640 px is better by less than the margin than 896 px
    far.f1 = near.f1 + 2 * MARGIN
    assert choose([stored, near, far], 1024) is far


def test_candidates_are_the_stored_scale_and_fixed_multiples_of_the_training_diameter():
    universal = candidates(read_metadata(pretrained_path("universal")))
    assert universal[0].stored and universal[0].scale == (1024, 1792)
    assert [c.scale[0] for c in universal[1:]] == [640, 768, 896, 1024, 1280, 1536, 1792]
    high_resolution = candidates(read_metadata(pretrained_path("universal")), largest_fov=2600)
    assert [c.scale[0] for c in high_resolution[8:]] == [2048, 2560]  # above the range only up to the photographs' own FOV
    drive = candidates(read_metadata(pretrained_path("drive")))
    assert drive[0].scale == (0, 538) and [c.scale[0] for c in drive[1:]] == [336, 404, 471, 538, 672, 807, 942]
    assert [(c.scale, c.stored) for c in candidates({"threshold": 0.5})] == [(None, True)]  # no scale known: threshold only


def test_calibrate_writes_the_chosen_threshold_and_diameter_and_evaluate_agrees(camera, tmp_path):
    root, weights = camera
    out = tmp_path / "calibrated.safetensors"
    runner = CliRunner()
    result = runner.invoke(main, ["calibrate", str(root / "photos"), "--weights", str(weights), "-o", str(out)])
    assert result.exit_code == 0, result.output
    record = read_metadata(out)["camera_calibration"]
    assert record["photographs"] == 2 and record["failures"] == [] and len(record["candidates"]) == 8
    assert record["from"]["file"] == "small.safetensors" and "test_evaluations" not in read_metadata(out)
    assert record["f1_after"] >= record["f1_before"]  # the stored way is a candidate, at its own best threshold too
    tensors, original = read_state_dict(out), read_state_dict(weights)
    assert tensors.keys() == original.keys() and all(np.array_equal(tensors[k], original[k]) for k in tensors)

    meta = read_metadata(out)
    chosen = record["candidates"][record["chosen"]]
    assert chosen["f1"] == record["f1_after"] and chosen["threshold"] == meta["threshold"]
    ran_at = chosen["run_fov_diameter"]
    assert meta["run_fov_diameter"] == ran_at  # [d, d], or the stored range when that won
    assert "chosen: photographs run at FOV diameter" in result.output and "calibrated" in result.output
    assert f"m2unet serve --weights {out}" in result.output

    # scored again by `evaluate`, on the same runtime, the photographs give the F1 the calibration recorded
    evaluated = tmp_path / "eval"
    result = runner.invoke(main, ["evaluate", "--dataset", str(root / "photos"), "--weights", str(out), "--out", str(evaluated), "--no-maps",
                                  "--backend", "openvino", "--precision", "fp32", "--bootstrap", "100"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((evaluated / "metrics.json").read_text())
    assert metrics["pooled"]["fov"]["a_priori"]["f1"] == pytest.approx(record["f1_after"], abs=1e-4)
    with open(evaluated / "per_image.csv") as handle:
        assert {int(row["run_fov_diameter"]) for row in csv.DictReader(handle)} <= set(range(ran_at[0], ran_at[1] + 1))


def test_calibrate_never_overwrites_and_bad_input_is_one_line(camera, tmp_path):
    root, weights = camera
    runner = CliRunner()
    taken = tmp_path / "taken.safetensors"
    taken.write_bytes(b"keep me")
    result = runner.invoke(main, ["calibrate", str(root / "photos"), "--weights", str(weights), "-o", str(taken)])
    assert result.exit_code == 1 and "already exists" in result.output and taken.read_bytes() == b"keep me"
    unlabelled = tmp_path / "unlabelled" / "images"
    unlabelled.mkdir(parents=True)
    (unlabelled / "eye.png").write_bytes((root / "photos" / "images" / "eye0.png").read_bytes())
    for args, message in (
        ([str(unlabelled.parent), "--weights", str(weights), "-o", str(tmp_path / "a.safetensors")], "no label"),
        ([str(root / "photos"), "--weights", str(weights), "-o", str(tmp_path / "a.onnx")], "a .safetensors file"),
        ([str(root / "photos"), "--weights", str(weights), "-o", str(weights)], "already exists"),
        (["/no/such/folder", "-o", str(tmp_path / "a.safetensors")], "/no/such/folder"),
        ([str(root / "photos"), "--model", "universal", "--weights", str(weights), "-o", str(tmp_path / "a.safetensors")], "either --weights or --model"),
    ):
        result = runner.invoke(main, ["calibrate", *args])
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output, result.output
    assert not (tmp_path / "a.safetensors").exists()
