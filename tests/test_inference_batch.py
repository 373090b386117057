"""Segmenting a collection (m2unet.inference.batch): output names that never clash, results.parquet, resume,
manifests; and the input fixes found with it (EXIF orientation, broken links, the lens ring around the FOV)."""

from __future__ import annotations

import os

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from m2unet.cli import main
from m2unet.data import estimate_fov_mask, read_image
from m2unet.errors import M2UNetError
from m2unet.inference.batch import JOURNAL_FILE, RESULTS_FILE, collect_inputs, uniform_columns, unique_stems


@pytest.fixture(scope="module")
def drive_small(datasets_root):
    """A DRIVE test photograph at half size (fast to segment with the drive model)."""
    image = Image.open(datasets_root / "DRIVE/test/images/01_test.tif").convert("RGB")
    return np.asarray(image.resize((282, 292)))


def test_exif_orientation_is_applied(tmp_path, drive_small):
    picture = Image.fromarray(drive_small)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": stored sideways, as phones do
    picture.save(tmp_path / "sideways.jpg", exif=exif, quality=95)
    picture.save(tmp_path / "plain.jpg", quality=95)
    sideways, plain = read_image(tmp_path / "sideways.jpg"), read_image(tmp_path / "plain.jpg")
    assert sideways.shape == (plain.shape[1], plain.shape[0], 3)
    shown = np.rot90(plain, k=-1)  # what a viewer shows: the stored pixels turned 90° clockwise
    assert np.abs(sideways - shown).mean() < 0.01


def test_fov_estimate_keeps_to_the_retina_inside_a_lens_ring():
    h, w = 720, 960
    yy, xx = np.mgrid[:h, :w]
    radius = np.hypot(yy - h / 2, xx - w / 2)
    retina = radius < 250
    image = np.zeros((h, w, 3), np.float32)
    image[retina] = [0.7, 0.35, 0.15]
    image[(radius > 290) & (radius < 330)] = 0.9  # the bright ring of a smartphone lens adapter, past a dark gap
    mask = estimate_fov_mask(image)
    iou = np.count_nonzero(mask & retina) / np.count_nonzero(mask | retina)
    assert iou > 0.99, iou
    image[(radius > 290) & (radius < 330)] = 0  # and without the ring: the same disk
    assert np.count_nonzero(estimate_fov_mask(image) ^ mask) == 0


def test_clashing_names_get_distinct_output_stems(tmp_path):
    for relative in ("left/001.jpg", "right/001.jpg", "scans/scan.bmp", "scans/scan.webp", "scans/other.png"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"x")
    jobs = collect_inputs([str(tmp_path / "left/001.jpg"), str(tmp_path / "right/001.jpg"), str(tmp_path / "scans"),
                           str(tmp_path / "left/001.jpg")])  # the same file twice: once
    assert [job.stem for job in jobs] == ["left/001", "right/001", "other", "scan.bmp", "scan.webp"]
    # names that differ only in case clash on macOS / Windows file systems: refused up front, naming both
    with pytest.raises(M2UNetError, match="Scan.jpg and .*scan.jpg would write the same outputs"):
        unique_stems([(tmp_path / "a/Scan.jpg", "Scan"), (tmp_path / "a/scan.jpg", "scan")])


def _table(out):
    return {os.path.basename(row["path"]): row for row in pq.read_table(out / RESULTS_FILE).to_pylist()}


def test_segment_writes_a_table_resumes_and_never_overwrites(tmp_path, drive_small, export_cache):
    inputs = tmp_path / "in"
    for folder in ("left", "right"):
        (inputs / folder).mkdir(parents=True)
        Image.fromarray(drive_small if folder == "left" else drive_small[::-1].copy()).save(inputs / folder / "001.png")
    Image.fromarray(drive_small).save(inputs / "scan.png")
    Image.fromarray(drive_small[:, ::-1].copy()).save(inputs / "scan.bmp")
    os.symlink(inputs / "gone.png", inputs / "link.png")  # a broken link: reported, not skipped in silence
    out = tmp_path / "out"
    command = ["segment", str(inputs / "left/001.png"), str(inputs / "right/001.png"), str(inputs / "scan.png"), str(inputs / "scan.bmp"),
               str(inputs / "link.png"), "-o", str(out), "--model", "drive", "--backend", "onnxruntime"]
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "link.png: broken symbolic link" in result.output and "segmented 4/5 image(s)" in result.output, result.output
    for stem in ("left/001", "right/001", "scan.png", "scan.bmp"):
        assert (out / f"{stem}_probability.png").is_file() and (out / f"{stem}_vessels.png").is_file(), stem
    left, right = (np.asarray(Image.open(out / f"{side}/001_probability.png"), dtype=np.float32) for side in ("left", "right"))
    # each input's own map (right/001 is left/001 upside down), not one written over the other
    assert np.abs(left[::-1] - right).mean() < 0.3 * np.abs(left - right).mean()
    table = pq.read_table(out / RESULTS_FILE).to_pylist()
    assert len(table) == 5 and [row["status"] for row in table] == ["ok", "ok", "ok", "ok", "failed"]
    assert "broken symbolic link" in table[4]["error"] and table[0]["model"] == "drive.safetensors"
    assert table[1]["vessels"] == "right/001_vessels.png" and table[0]["threshold"] > 0 and table[0]["seconds"] > 0
    assert 100 < table[0]["run_fov_diameter"] <= 538 * 1.05 and table[4]["run_fov_diameter"] is None  # DRIVE's model shrinks only
    assert table[0]["contrast_gain"] == 1.0 and table[4]["contrast_gain"] is None  # DRIVE's model keeps a photograph's contrast
    assert not (out / JOURNAL_FILE).exists()

    # a rerun skips what is complete and recorded; a missing output is made again, and only that input
    (out / "scan.bmp_vessels.png").unlink()
    stale = out / "left" / ".001_probability.abcd1234.png"  # the temporary of a write that a kill interrupted
    stale.write_bytes(b"partial")
    result = CliRunner().invoke(main, command)
    assert "segmented 4/5 image(s); 3 already done by an earlier run" in result.output, result.output
    rows = pq.read_table(out / RESULTS_FILE).to_pylist()
    assert [row["resumed"] for row in rows] == [True, True, True, False, False] and len(rows) == 5
    assert (out / "scan.bmp_vessels.png").is_file() and not stale.exists()

    # other options (here the threshold) mean other outputs: nothing is taken from the earlier run
    result = CliRunner().invoke(main, command + ["--threshold", "0.3"])
    rows = pq.read_table(out / RESULTS_FILE).to_pylist()
    assert not any(row["resumed"] for row in rows) and rows[0]["threshold"] == 0.3, result.output


def test_manifest_with_relative_paths_and_per_image_columns(tmp_path, drive_small, export_cache):
    (tmp_path / "site/a").mkdir(parents=True)
    Image.fromarray(drive_small).save(tmp_path / "site/a/eye.jpg")
    manifest = tmp_path / "site" / "manifest.csv"
    manifest.write_text("path,pixel_size_um,subject\na/eye.jpg,6.5,S001\nmissing.jpg,7.0,S002\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["segment", str(manifest), "-o", str(out), "--model", "drive", "--backend", "onnxruntime"])
    assert result.exit_code == 1 and "missing.jpg: no such file" in result.output, result.output
    rows = _table(out)
    assert rows["eye.jpg"]["status"] == "ok" and rows["eye.jpg"]["pixel_size_um"] == 6.5 and rows["eye.jpg"]["subject"] == "S001"
    assert (out / "a/eye_vessels.png").is_file() and rows["missing.jpg"]["status"] == "failed"
    (tmp_path / "bad.csv").write_text("file\nx.jpg\n")
    result = CliRunner().invoke(main, ["segment", str(tmp_path / "bad.csv"), "-o", str(out), "--backend", "onnxruntime"])
    assert result.exit_code == 1 and "bad.csv: the manifest has no `path` column (columns: file)" in result.output, result.output


def test_auto_precision_is_measured_once_per_cpu_model_and_cached(tmp_path, monkeypatch):
    from m2unet.inference import autoprecision
    from m2unet.inference.backends import backend_name

    monkeypatch.setenv("M2UNET_CACHE", str(tmp_path))
    from m2unet.inference.backends import cpu_has_bf16, create_backend

    result = autoprecision.measure(create_backend, cpu_has_bf16, candidates=("fp32", "bf16"))
    assert result["choice"] in result["ms"] and result["ms"]["fp32"] > 0 and result["cpu"] == autoprecision.cpu_model()
    assert result["choice"] == min(result["ms"], key=result["ms"].get)
    assert autoprecision.cache_file().parent == tmp_path / "precision"
    for cached in ("fp32", "int8"):  # a cached choice is used as it is, without timing again
        autoprecision.cache_file().parent.mkdir(exist_ok=True)
        autoprecision.cache_file().write_text(f'{{"choice": "{cached}"}}')
        autoprecision.precision_record.cache_clear()
        assert backend_name("openvino", "auto") == ("openvino" if cached == "fp32" else "openvino-int8")
        assert backend_name("onnxruntime", "auto") == "onnxruntime"
    autoprecision.precision_record.cache_clear()


def test_a_second_batch_into_the_same_folder_adds_rows_and_never_replaces_earlier_maps(tmp_path, drive_small, export_cache):
    for folder, picture in (("first", drive_small), ("second", drive_small[::-1].copy())):
        (tmp_path / folder).mkdir()
        Image.fromarray(picture).save(tmp_path / folder / "001.png")
    Image.fromarray(drive_small[:, ::-1].copy()).save(tmp_path / "second" / "002.png")
    out = tmp_path / "out"
    options = ["-o", str(out), "--model", "drive", "--backend", "onnxruntime"]
    assert CliRunner().invoke(main, ["segment", str(tmp_path / "first"), *options]).exit_code == 0
    first_map = (out / "001_probability.png").read_bytes()

    # the second batch's 001.png would take the same names: it fails on one line, the first batch's map stays
    result = CliRunner().invoke(main, ["segment", str(tmp_path / "second"), *options])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert f"001_* hold the maps of {tmp_path / 'first' / '001.png'}" in result.output, result.output
    assert (out / "001_probability.png").read_bytes() == first_map and (out / "002_vessels.png").is_file()
    rows = pq.read_table(out / RESULTS_FILE).to_pylist()
    assert [(os.path.basename(os.path.dirname(row["path"])), row["stem"], row["status"]) for row in rows] == [
        ("first", "001", "ok"), ("second", "001", "failed"), ("second", "002", "ok")]

    # with the first batch's maps moved away, the rerun segments the second 001.png and its row replaces the first's
    for name in ("001_probability.png", "001_vessels.png"):
        (out / name).rename(tmp_path / name)
    result = CliRunner().invoke(main, ["segment", str(tmp_path / "second"), *options])
    assert result.exit_code == 0 and "1 already done by an earlier run" in result.output, result.output
    rows = pq.read_table(out / RESULTS_FILE).to_pylist()
    assert [(os.path.basename(os.path.dirname(row["path"])), row["stem"], row["status"]) for row in rows] == [
        ("second", "001", "ok"), ("second", "002", "ok")]
    assert (out / "001_probability.png").read_bytes() != first_map


def test_segment_measure_adds_the_measurements(tmp_path, drive_small, export_cache):
    Image.fromarray(drive_small).save(tmp_path / "eye.png")
    (tmp_path / "list.csv").write_text("path,pixel_size_um\neye.png,12.0\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["segment", str(tmp_path / "list.csv"), "-o", str(out), "--model", "drive", "--backend", "onnxruntime", "--measure"])
    assert result.exit_code == 0, result.output
    row = pq.read_table(out / RESULTS_FILE).to_pylist()[0]
    assert 0.03 < row["vessel_density"] < 0.3 and row["segments"] > 10 and row["pixel_size_um"] == 12.0
    assert abs(row["width_median_um"] - 12.0 * row["width_median_px"]) < 1e-6
    header, line = (out / "measurements.csv").read_text().splitlines()[:2]
    assert header.startswith("image,") and line.startswith("eye,")
    assert len((out / "eye_segments.csv").read_text().splitlines()) == row["segments"] + 1
    assert (out / "eye_junctions.csv").is_file()
    # a second batch into the folder: both images' measurements (and rows) stay, a manifest column of another kind too
    Image.fromarray(drive_small[::-1].copy()).save(tmp_path / "eye2.png")
    (tmp_path / "more.csv").write_text("path,pixel_size_um\neye2.png,\n")
    result = CliRunner().invoke(main, ["segment", str(tmp_path / "more.csv"), "-o", str(out), "--model", "drive", "--backend", "onnxruntime", "--measure"])
    assert result.exit_code == 0, result.output
    assert [line.split(",")[0] for line in (out / "measurements.csv").read_text().splitlines()[1:]] == ["eye", "eye2"]
    assert [row["pixel_size_um"] for row in pq.read_table(out / RESULTS_FILE).to_pylist()] == [12.0, None]


def test_table_columns_of_mixed_kinds_become_text():
    rows = uniform_columns([{"subject": 7, "age": 61, "eye": None}, {"subject": "P-8", "age": 62.5, "eye": "left"}], ["subject", "age", "eye"])
    assert [row["subject"] for row in rows] == ["7", "P-8"] and [row["age"] for row in rows] == [61, 62.5]
    assert [row["eye"] for row in rows] == [None, "left"]


def test_without_pyarrow_segment_still_segments_and_keeps_the_journal(tmp_path, drive_small, monkeypatch, export_cache):
    import sys

    Image.fromarray(drive_small).save(tmp_path / "eye.png")
    for name in ("pyarrow", "pyarrow.parquet"):
        monkeypatch.setitem(sys.modules, name, None)  # import pyarrow now raises ImportError, as on a small device
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["segment", str(tmp_path / "eye.png"), "-o", str(out), "--model", "drive", "--backend", "onnxruntime"])
    assert result.exit_code == 0 and "not written (pip install pyarrow)" in result.output, result.output
    assert (out / "eye_vessels.png").is_file() and not (out / RESULTS_FILE).exists()
    assert '"status": "ok"' in (out / JOURNAL_FILE).read_text()


def test_a_file_name_that_is_not_utf8_gets_its_row_and_resumes(tmp_path, drive_small, export_cache):
    inputs = tmp_path / "in"
    inputs.mkdir()
    name = os.fsdecode(b"caf\xe9.png")  # Latin-1 "café.png", as an old camera or Windows export may name it
    try:
        Image.fromarray(drive_small).save(inputs / name)
    except OSError:
        pytest.skip("this file system does not take a file name that is not UTF-8")
    out = tmp_path / "out"
    command = ["segment", str(inputs), "-o", str(out), "--model", "drive", "--backend", "onnxruntime"]
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 0 and (out / name.replace(".png", "_vessels.png")).is_file(), result.output
    rows = pq.read_table(out / RESULTS_FILE).to_pylist()  # Parquet holds UTF-8 only: the byte is written \xe9
    assert [(row["path"], row["status"]) for row in rows] == [(str(inputs / "caf\\xe9.png"), "ok")]
    result = CliRunner().invoke(main, command)
    assert "1 already done by an earlier run" in result.output, result.output
    assert pq.read_table(out / RESULTS_FILE).to_pylist()[0]["resumed"] is True
