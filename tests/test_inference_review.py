"""Which maps segment flags for review (m2unet.inference.review): the two measures, their limits, and the flag in the
results table, the closing line and the service's answer."""

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import disk_photograph
from m2unet.cli import main
from m2unet.evaluation.camera_shift import blurred
from m2unet.inference.batch import RESULTS_FILE, review_of
from m2unet.inference.review import LIMITS, chosen_limits, limits_for, map_measures, review_map, review_reasons
from m2unet.weights import pretrained_path

REPO = Path(__file__).resolve().parents[1]
UNIVERSAL = LIMITS["universal"]
MIN_VESSEL_FRACTION, MIN_SELF_CONSISTENCY = UNIVERSAL


def vessel_map(fraction: float, inside: float, outside: float = 0.0, shape=(200, 200)) -> np.ndarray:
    """A probability map whose first ``fraction`` of pixels (row-major) hold ``inside`` and the rest ``outside``."""
    probability = np.full(shape, outside, dtype=np.float32)
    probability.reshape(-1)[: round(fraction * probability.size)] = inside
    return probability


def test_a_confident_map_of_typical_vessel_area_is_not_flagged():
    probability = vessel_map(0.11, 0.97, 0.01)
    fraction, consistency = map_measures(probability, 0.5)
    assert fraction == pytest.approx(0.11) and consistency > 0.9
    assert review_reasons(probability, 0.5, None, UNIVERSAL) is None


def test_few_vessels_and_an_unsure_map_are_each_named():
    sparse = review_reasons(vessel_map(0.5 * MIN_VESSEL_FRACTION, 0.97, 0.01), 0.5, None, UNIVERSAL)
    assert sparse.startswith("few vessels:") and "unsure" not in sparse
    # as much vessel as usual, but every vessel pixel barely above the threshold and much of the rest just below it
    hovering = vessel_map(0.11, 0.52, 0.0)
    hovering[100:] = np.where(hovering[100:] == 0, 0.45, hovering[100:])
    unsure = review_reasons(hovering, 0.5, None, UNIVERSAL)
    assert unsure.startswith("unsure map: self-consistency") and map_measures(hovering, 0.5)[1] < MIN_SELF_CONSISTENCY
    both = review_reasons(vessel_map(0.01, 0.52, 0.45), 0.5, None, UNIVERSAL)
    assert "few vessels" in both and "; unsure map" in both


def test_the_measures_count_inside_the_fov_and_without_a_mask_in_the_estimated_one():
    image, _, fov = disk_photograph()
    probability = np.where(fov, 0.01, 0.0).astype(np.float32)
    rows = np.flatnonzero(fov.any(axis=1))
    probability[rows[: len(rows) // 8]] = np.where(fov[rows[: len(rows) // 8]], 0.97, 0.0)  # the top eighth of the disk
    assert review_reasons(probability, 0.5, fov, UNIVERSAL) is None
    assert map_measures(probability, 0.5)[0] < map_measures(probability, 0.5, fov)[0]  # the black border dilutes it
    universal = pretrained_path("universal")
    assert review_of(image, None, probability, universal) == review_of(image, fov, probability, universal) is None
    assert review_of(image, fov, probability * 0.3, universal).startswith("few vessels")  # nothing above the threshold


def test_only_the_shipped_models_are_reviewed_each_with_the_limits_its_benchmark_rows_give(tmp_path):
    assert limits_for(pretrained_path("universal")) == UNIVERSAL
    copy = tmp_path / "universal.safetensors"
    copy.write_bytes(pretrained_path("universal").read_bytes())
    assert limits_for(copy) is None  # weights of one's own (or a calibrated copy): limits not measured, no review
    assert review_map(vessel_map(0.0, 0.0), copy, None) is None
    rows = json.loads((REPO / "results/scale/review_flags.json").read_text())["rows"]
    for model, limits in LIMITS.items():
        training = [row for row in rows if row["model"] == model and row["split"] == "train"]
        assert len(training) >= 100 and chosen_limits(training) == limits, model


def test_segment_flags_the_map_of_a_photograph_far_out_of_focus(tmp_path, datasets_root, export_cache):
    from m2unet.data import read_image
    from m2unet.evaluation.camera_shift import as_8bit

    photograph = read_image(datasets_root / "DRIVE/test/images/01_test.tif")
    fov = read_image(datasets_root / "DRIVE/test/mask/01_test_mask.gif")[..., 0] > 0.5
    Image.fromarray(as_8bit(photograph)).save(tmp_path / "sharp.png")
    Image.fromarray(as_8bit(blurred(0.01)(photograph, fov, fov)[0])).save(tmp_path / "blurred.png")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["segment", str(tmp_path / "sharp.png"), str(tmp_path / "blurred.png"), "-o", str(out),
                                       "--model", "universal", "--backend", "onnxruntime", "--measure"])
    assert result.exit_code == 0, result.output
    assert "1 map(s) to look at before use (column review)" in result.output
    rows = {row["stem"]: row for row in pq.read_table(out / RESULTS_FILE).to_pylist()}
    assert rows["sharp"]["review"] is None
    assert rows["blurred"]["review"].startswith("few vessels")
    # measurements.csv, read without the table, says it beside the blurred photograph's measures
    notes = {row["image"]: row["note"] for row in csv.DictReader(open(out / "measurements.csv"))}
    assert notes["sharp"] == "" and notes["blurred"] == f"map to look at before use: {rows['blurred']['review']}"


def test_the_python_api_reviews_a_map_as_segment_does(datasets_root, export_cache):
    import m2unet
    from m2unet.data import read_image

    photograph = read_image(datasets_root / "DRIVE/test/images/01_test.tif")
    probability = m2unet.segment(photograph, model="universal", backend="onnxruntime")
    assert m2unet.review(probability, model="universal") is None
    faint = probability * 0.5  # a map drawn as faintly as a photograph far out of focus gives
    assert m2unet.review(faint, model="universal", fov=probability > 0).startswith("few vessels")
