"""Vessel measurements on drawn shapes with known answers (issue 18, validation 1)."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("skan")

from m2unet.errors import InputFileError  # noqa: E402
from m2unet.measure import SUMMARY_COLUMNS, measure  # noqa: E402
from m2unet.measure.fractal import fractal_dimension  # noqa: E402


def thick_segments(size, segments, width):
    """Union of straight strokes ((x0, y0), (x1, y1)) of the given width with round caps."""
    yy, xx = np.mgrid[:size, :size].astype(float)
    mask = np.zeros((size, size), dtype=bool)
    for (x0, y0), (x1, y1) in segments:
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
        mask |= np.hypot(xx - (x0 + t * dx), yy - (y0 + t * dy)) <= width / 2
    return mask


def ray(centre, heading_deg, length):
    """A stroke from ``centre`` along ``heading_deg`` (x right, y up)."""
    a = math.radians(heading_deg)
    return centre, (centre[0] + length * math.cos(a), centre[1] - length * math.sin(a))


def flat_bar(angle_deg, width, length=160, size=260):
    """A rectangle length × width (flat ends) at an angle; returns the mask."""
    from skimage.draw import polygon

    a = math.radians(angle_deg)
    c = np.array([size / 2, size / 2])
    d = np.array([math.cos(a), -math.sin(a)])
    n = np.array([math.sin(a), math.cos(a)])
    p0, p1 = c - d * length / 2, c + d * length / 2
    corners = np.array([p0 + n * width / 2, p1 + n * width / 2, p1 - n * width / 2, p0 - n * width / 2])
    mask = np.zeros((size, size), dtype=bool)
    rr, cc = polygon(corners[:, 1], corners[:, 0], mask.shape)
    mask[rr, cc] = True
    return mask


def capped_arc(radius, theta_deg, start_deg, width):
    """Pixels within width/2 of a circular arc (round caps)."""
    size = int(2 * radius + 2 * width + 20)
    c = size / 2
    t = np.radians(np.linspace(start_deg, start_deg + theta_deg, int(radius * math.radians(theta_deg) * 4) + 2))
    points = [((c + radius * math.cos(a0), c - radius * math.sin(a0)), (c + radius * math.cos(a1), c - radius * math.sin(a1))) for a0, a1 in zip(t[:-1], t[1:], strict=True)]
    return thick_segments(size, points, width)


def single(result):
    assert len(result.segments) == 1, [row["kind"] for row in result.segments]
    return result.segments[0]


@pytest.mark.parametrize("width", [1, 3, 7, 15])
def test_straight_bars_have_tortuosity_one_at_any_angle(width):
    for angle in np.arange(0.0, 180.0, 11.25):
        segment = single(measure(flat_bar(angle, width)))
        assert abs(segment["tortuosity"] - 1.0) <= 0.005, (angle, segment["tortuosity"])
        assert abs((segment["orientation_deg"] - angle + 90) % 180 - 90) < 1.0, (angle, segment["orientation_deg"])
        assert segment["turning_deg"] < 15.0


@pytest.mark.parametrize("width", [3, 5])
def test_circular_arcs_have_tortuosity_theta_over_chord(width):
    for theta in (45, 90, 135, 180):
        for start in (0, 37, 100):
            segment = single(measure(capped_arc(100, theta, start, width)))
            t = math.radians(theta)
            expected = t / (2 * math.sin(t / 2))
            assert segment["tortuosity"] == pytest.approx(expected, rel=0.01), (theta, start)
            assert segment["length_px"] == pytest.approx(100 * t, abs=width + 1)  # the skeleton runs into the round caps
            if theta >= 90:
                assert segment["turning_deg"] == pytest.approx(theta, rel=0.15)


@pytest.mark.parametrize("width", [3, 4, 5, 8, 11, 15])
def test_bar_widths_within_half_a_pixel(width):
    for angle in (0, 10, 30, 45, 60, 90, 125):
        mask = flat_bar(angle, width)
        true_width = mask.sum() / 160  # the drawn (digital) width: area / length
        segment = single(measure(mask))
        assert abs(segment["width_median_px"] - true_width) <= 0.5, (angle, segment["width_median_px"], true_width)


@pytest.mark.parametrize("width", [3, 5, 9])
def test_y_shape_is_one_bifurcation_with_its_angle(width):
    centre = (150.0, 150.0)
    for rotation in (0, 20, 47):
        for spread in (40, 70, 100):
            heads = (rotation + 270, rotation + 90 - spread / 2, rotation + 90 + spread / 2)
            result = measure(thick_segments(300, [ray(centre, h, 120) for h in heads], width))
            assert [row["kind"] for row in result.junctions] == ["bifurcation"]
            assert result.junctions[0]["angle_deg"] == pytest.approx(spread, abs=3.0)
            assert len(result.segments) == 3
            assert (result.summary["bifurcations"], result.summary["crossings"], result.summary["end_points"]) == (1, 0, 3)


@pytest.mark.parametrize("width", [3, 5, 9])
def test_x_shape_is_one_crossing_with_its_angle(width):
    centre = (150.0, 150.0)
    for rotation in (0, 20, 47):
        for angle in (60, 75, 90):
            heads = (rotation, rotation + 180, rotation + angle, rotation + angle + 180)
            result = measure(thick_segments(300, [ray(centre, h, 120) for h in heads], width))
            assert [row["kind"] for row in result.junctions] == ["crossing"], (rotation, angle)
            assert result.junctions[0]["angle_deg"] == pytest.approx(angle, abs=3.0)
            assert (result.summary["bifurcations"], result.summary["crossings"], result.summary["segments"]) == (0, 1, 4)


def koch_curve(order, size):
    points = np.array([[0.0, 0.0], [1.0, 0.0]])
    turn = np.array([[0.5, -math.sqrt(3) / 2], [math.sqrt(3) / 2, 0.5]])
    for _ in range(order):
        new = []
        for a, b in zip(points[:-1], points[1:], strict=True):
            d = (b - a) / 3
            new += [a, a + d, a + d + turn @ d, a + 2 * d]
        points = np.array([*new, points[-1]])
    return points * size


def test_box_counting_dimension_of_disc_line_and_koch_curve():
    from skimage.draw import disk, line

    disc = np.zeros((1010, 1010), dtype=bool)
    disc[disk((505, 505), 500)] = True
    assert fractal_dimension(disc) == pytest.approx(2.0, abs=0.03)
    for end_row, end_col in ((5, 1005), (1005, 5), (1005, 1005), (150, 1005)):  # horizontal, vertical, diagonal, shallow
        straight = np.zeros((1010, 1010), dtype=bool)
        straight[line(5, 5, end_row, end_col)] = True
        assert fractal_dimension(straight) == pytest.approx(1.0, abs=0.03), (end_row, end_col)
    koch = np.zeros((700, 2200), dtype=bool)
    points = np.rint(koch_curve(6, 2187)).astype(int) + 5
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:], strict=True):
        koch[line(y0, x0, y1, x1)] = True
    assert fractal_dimension(koch) == pytest.approx(math.log(4) / math.log(3), abs=0.03)
    assert measure(disc).summary["fractal_dimension"] == pytest.approx(2.0, abs=0.03)


def test_summary_has_every_column_and_units():
    mask = thick_segments(300, [ray((150.0, 150.0), h, 120) for h in (270, 55, 125)], 5)
    plain = measure(mask).summary
    assert tuple(plain) == SUMMARY_COLUMNS
    assert math.isnan(plain["width_median_um"])
    assert plain["vessel_density"] == pytest.approx(mask.sum() / mask.size)
    scaled = measure(mask, pixel_size_um=10.0).summary
    assert scaled["width_median_um"] == pytest.approx(10.0 * scaled["width_median_px"])
    assert scaled["centreline_length_um"] == pytest.approx(10.0 * scaled["centreline_length_px"])
    yy, xx = np.mgrid[:300, :300]
    fov = (yy - 150) ** 2 + (xx - 150) ** 2 <= 100**2  # a disc 201 px across
    angled = measure(mask, fov=fov, field_of_view_deg=45).summary
    assert angled["fov_diameter_px"] == 201 and angled["pixel_size_um"] == pytest.approx(45 * 288 / 201)
    framed = measure(mask[60:240, 40:260], fov=fov[60:240, 40:260], field_of_view_deg=45).summary  # the same disc cut on all sides
    assert framed["fov_diameter_px"] == pytest.approx(201, abs=3)
    assert angled["disc_diameter_px"] == pytest.approx(1800 / angled["pixel_size_um"])


def test_empty_and_bad_maps():
    empty = measure(np.zeros((64, 64), dtype=bool), name="empty")
    assert empty.summary["vessel_density"] == 0 and empty.summary["segments"] == 0
    assert empty.summary["note"] and empty.segments == [] and empty.junctions == []
    dots = np.zeros((64, 64), dtype=bool)
    dots[10, 10] = dots[40, 40] = True
    assert measure(dots).summary["note"]
    with pytest.raises(InputFileError, match="does not match"):
        measure(np.zeros((64, 64), dtype=bool), fov=np.ones((32, 64), dtype=bool), name="a.png")
    with pytest.raises(InputFileError, match="H×W"):
        measure(np.zeros((4, 64, 64)), name="stack.tif")


def test_top_level_api_is_callable_before_and_after_submodule_imports():
    import m2unet

    mask = thick_segments(120, [ray((60.0, 60.0), 0, 50), ray((60.0, 60.0), 180, 50)], 3)
    first = m2unet.measure(mask)
    import m2unet.measure.fractal  # noqa: F401  (sets the attribute m2unet.measure to the package)

    again = m2unet.measure(mask, pixel_size_um=5.0)
    assert first.summary["segments"] == again.summary["segments"] == 1
    assert again.summary["centreline_length_um"] == pytest.approx(5.0 * first.summary["centreline_length_px"])


def _save(path, array):
    from PIL import Image

    Image.fromarray(array).save(path)
    return path


def test_cli_measures_masks_and_reports_bad_files_in_one_line(tmp_path):
    import csv

    from click.testing import CliRunner

    from m2unet.cli import main

    folder = tmp_path / "in"
    folder.mkdir()
    y_shape = thick_segments(300, [ray((150.0, 150.0), h, 120) for h in (270, 55, 125)], 5)
    _save(folder / "y_vessels.png", (y_shape * 255).astype(np.uint8))
    _save(folder / "empty.png", np.zeros((64, 64), np.uint8))
    _save(folder / "grey.png", (np.arange(64 * 64).reshape(64, 64) % 256).astype(np.uint8))  # not binary
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["measure", str(folder), "-o", str(out), "--pixel-size", "10"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "2 failed" in result.output and "not a binary vessel mask" in result.output and "broken.png" in result.output
    rows = {row["image"]: row for row in csv.DictReader(open(out / "measurements.csv"))}
    assert set(rows) == {"y_vessels", "empty", "grey", "broken"}
    assert (rows["y_vessels"]["bifurcations"], rows["y_vessels"]["crossings"], rows["y_vessels"]["segments"]) == ("1", "0", "3")
    assert float(rows["y_vessels"]["width_median_um"]) == pytest.approx(10 * float(rows["y_vessels"]["width_median_px"]))
    assert rows["empty"]["vessel_density"] == "0" and "no vessel" in rows["empty"]["note"]
    assert rows["grey"]["note"].startswith("failed:") and rows["grey"]["vessel_density"] == ""
    segments = list(csv.DictReader(open(out / "segments.csv")))
    assert len(segments) == 3 and {row["image"] for row in segments} == {"y_vessels"}
    junctions = list(csv.DictReader(open(out / "junctions.csv")))
    assert [row["kind"] for row in junctions] == ["bifurcation"]
    assert float(junctions[0]["angle_deg"]) == pytest.approx(70, abs=3)
    assert sorted(p.name for p in out.glob("*.png")) == ["empty_measure.png", "y_vessels_measure.png"]

    # a second run into the same folder does not replace the first's tables unless asked to
    table = (out / "measurements.csv").read_bytes()
    result = CliRunner().invoke(main, ["measure", str(folder / "empty.png"), "-o", str(out)])
    assert result.exit_code == 1 and "holds the measurements of an earlier run" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and (out / "measurements.csv").read_bytes() == table
    result = CliRunner().invoke(main, ["measure", str(folder / "empty.png"), "-o", str(out), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert [row["image"] for row in csv.DictReader(open(out / "measurements.csv"))] == ["empty"]


def test_cli_wrong_sized_mask_and_conflicting_units_are_one_line(tmp_path):
    from click.testing import CliRunner

    from m2unet.cli import main

    vessels = _save(tmp_path / "v.png", (thick_segments(100, [((10.0, 50.0), (90.0, 50.0))], 3) * 255).astype(np.uint8))
    fov = _save(tmp_path / "fov.png", np.full((80, 100), 255, np.uint8))
    result = CliRunner().invoke(main, ["measure", str(vessels), "--mask", str(fov), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1 and "does not match" in result.output and "fov.png" in result.output
    result = CliRunner().invoke(main, ["measure", str(vessels), "--pixel-size", "5", "--field-of-view", "45"])
    assert result.exit_code == 1 and result.output.strip() == "error: give --pixel-size or --field-of-view, not both"
