"""`m2unet measure` on masks saved in other common ways, and on FOV masks it cannot use (issue 18, bad input)."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("skan")


def y_shape(size=200, width=5):
    """Three strokes from the centre: one bifurcation, three segments."""
    yy, xx = np.mgrid[:size, :size].astype(float)
    c = size / 2
    mask = np.zeros((size, size), dtype=bool)
    for heading in (270, 55, 125):
        a = math.radians(heading)
        x1, y1 = c + 80 * math.cos(a), c - 80 * math.sin(a)
        t = np.clip(((xx - c) * (x1 - c) + (yy - c) * (y1 - c)) / 80**2, 0.0, 1.0)
        mask |= np.hypot(xx - (c + t * (x1 - c)), yy - (c + t * (y1 - c))) <= width / 2
    return mask


def run(args):
    from click.testing import CliRunner

    from m2unet.cli import main

    return CliRunner().invoke(main, ["measure", *map(str, args), "--no-pictures"])


def rows(out):
    return {row["image"]: row for row in csv.DictReader(open(out / "measurements.csv"))}


def test_zero_one_sixteen_bit_and_rgba_masks_measure_like_a_plain_one(tmp_path):
    mask = y_shape()
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray((mask * 255).astype(np.uint8)).save(folder / "plain.png")
    Image.fromarray(mask.astype(np.uint8)).save(folder / "zero_one.png")  # 0/1 values: looks black
    Image.fromarray((mask * 65535).astype(np.uint16)).save(folder / "sixteen.png")
    rgba = np.zeros((*mask.shape, 4), np.uint8)
    rgba[..., :3] = mask[..., None] * 255
    rgba[..., 3] = 255
    Image.fromarray(rgba).save(folder / "rgba.png")
    result = run([folder, "-o", tmp_path / "out"])
    assert result.exit_code == 0, result.output
    table = rows(tmp_path / "out")
    for name in ("zero_one", "sixteen", "rgba"):
        for column in ("vessel_density", "segments", "bifurcations", "centreline_length_px", "width_median_px"):
            assert table[name][column] == table["plain"][column], (name, column)
    assert (table["plain"]["segments"], table["plain"]["bifurcations"]) == ("3", "1")


def test_inverted_map_gets_a_note_and_unusable_fov_masks_fail_on_one_line(tmp_path):
    mask = y_shape()
    inverted = tmp_path / "inverted.png"
    Image.fromarray((~mask * 255).astype(np.uint8)).save(inverted)
    result = run([inverted, "-o", tmp_path / "out"])
    assert result.exit_code == 0, result.output
    assert "black vessels on white" in rows(tmp_path / "out")["inverted"]["note"]

    vessels = tmp_path / "vessels.png"
    Image.fromarray((mask * 255).astype(np.uint8)).save(vessels)
    rng = np.random.default_rng(0)
    colour = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (*mask.shape, 3), dtype=np.uint8)).save(colour)
    grey = tmp_path / "grey.png"
    Image.fromarray(rng.integers(0, 256, mask.shape, dtype=np.uint8)).save(grey)
    for index, (fov, reason) in enumerate(((colour, "a colour image"), (grey, "grey levels"))):
        result = run([vessels, "--mask", fov, "-o", tmp_path / f"out2-{index}"])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert f"{fov}: not a binary FOV mask ({reason}" in result.output
        assert rows(tmp_path / f"out2-{index}")["vessels"]["note"].startswith("failed:")
    good = tmp_path / "fov.png"
    Image.fromarray(np.full(mask.shape, 255, np.uint8)).save(good)
    assert run([vessels, "--mask", good, "-o", tmp_path / "out3"]).exit_code == 0


def test_a_photograph_is_segmented_first_and_a_map_to_look_at_says_so_beside_its_measures(tmp_path, datasets_root, export_cache):
    from m2unet.data import read_image
    from m2unet.evaluation.camera_shift import as_8bit, blurred

    photograph = read_image(datasets_root / "DRIVE/test/images/01_test.tif")
    fov = read_image(datasets_root / "DRIVE/test/mask/01_test_mask.gif")[..., 0] > 0.5
    Image.fromarray(as_8bit(photograph)).save(tmp_path / "sharp.png")
    Image.fromarray(as_8bit(blurred(0.01)(photograph, fov, fov)[0])).save(tmp_path / "blurred.png")
    result = run([tmp_path / "sharp.png", tmp_path / "blurred.png", "-o", tmp_path / "out", "--model", "drive"])
    assert result.exit_code == 0, result.output
    measured = rows(tmp_path / "out")
    sharp, soft = measured["sharp"], measured["blurred"]
    assert sharp["note"] == "" and 0.08 < float(sharp["vessel_density"]) < 0.16 and int(sharp["bifurcations"]) > 20
    assert soft["note"].startswith("map to look at before use: few vessels") and float(soft["vessel_density"]) < 0.06
