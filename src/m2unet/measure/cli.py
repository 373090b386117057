"""``m2unet measure``: vessel measurements from vessel maps, binary masks or photographs."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..data.datasets import dataset_names
from ..errors import M2UNetError, one_line_errors


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--out", "out_dir", default="m2unet-measure", show_default=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--mask", "mask_option", default=None, help="FOV mask FILE, or DIR holding NAME.* / NAME_mask.* per image. "
              "Without it: the photograph's estimated FOV, or the whole image for a mask.")
@click.option("--pixel-size", "pixel_size_um", type=click.FloatRange(min=0, min_open=True), default=None, help="Micrometres per pixel.")
@click.option("--field-of-view", "field_of_view_deg", type=click.FloatRange(min=0, max=200, min_open=True), default=None,
              help="The camera's field angle in degrees (DRIVE, HRF 45; CHASE_DB1 30): pixel size = DEGREES × 288 µm / FOV diameter in px.")
@click.option("--input", "kind", default="auto", show_default=True, type=click.Choice(["auto", "mask", "photo"]),
              help="auto: colour images are photographs (segmented first), grey binary images are vessel masks.")
@click.option("--model", default="auto", show_default=True, type=click.Choice(["auto", *dataset_names()]),
              help="Model for photographs (auto: the universal model), thresholded at the weights' stored threshold.")
@click.option("--colour-by", "--color-by", "colour_by", default="width", show_default=True, type=click.Choice(["width", "tortuosity"]),
              help="What colours the centreline in the pictures.")
@click.option("--pictures/--no-pictures", default=True, show_default=True, help="Write OUT/NAME_measure.png per image.")
@click.option("--overwrite", is_flag=True, help="Replace the tables (and pictures of the same names) of an earlier run in OUT.")
@one_line_errors
def measure(inputs, out_dir, mask_option, pixel_size_um, field_of_view_deg, kind, model, colour_by, pictures, overwrite):
    """Vessel measurements: per image, per vessel segment and per junction (definitions: README, "Vessel measurements").

    INPUTS are vessel maps (NAME_vessels.png from `m2unet segment`), any binary vessel mask (vessels white on
    black), or fundus photographs (segmented first with the shipped model), as files or folders. Writes
    OUT/measurements.csv (one row per image), OUT/segments.csv, OUT/junctions.csv and OUT/NAME_measure.png
    (centreline coloured by width, bifurcations o, crossings [], optic disc and zone B). Lengths and widths are
    in pixels; with --pixel-size or --field-of-view also in µm. A file that cannot be used is reported on one
    line (and gets a row with a note); the exit status is then 1.

    \b
    Examples:
      m2unet measure out/01_test_vessels.png -o measures/ --field-of-view 45
      m2unet measure ../shared/datasets/DRIVE/test/1st_manual/01_manual1.gif --mask ../shared/datasets/DRIVE/test/mask/01_test_mask.gif -o manual/
      m2unet measure ../shared/datasets/CHASE_DB1/Image_11L.jpg --field-of-view 30 -o measures/   # a photograph, segmented first
      m2unet measure photo.jpg -o measures/ --pixel-size 6.5 --overwrite       # into a folder an earlier run wrote
    """
    from tqdm import tqdm

    from ..data.io import save_png
    from ..inference.cli import collect_inputs
    from .batch import empty_row, measure_file, unique_name, write_csv
    from .core import JUNCTION_COLUMNS, SEGMENT_COLUMNS, SUMMARY_COLUMNS
    from .picture import draw

    if pixel_size_um is not None and field_of_view_deg is not None:
        raise M2UNetError("give --pixel-size or --field-of-view, not both")
    out = Path(out_dir)
    if (out / "measurements.csv").exists() and not overwrite:  # a second batch must not silently replace the first's tables
        raise M2UNetError(f"{out / 'measurements.csv'}: {out} holds the measurements of an earlier run; give another --out, "
                          "or --overwrite to replace them")
    skipped: list[Path] = []
    files = collect_inputs(inputs, skipped)
    for file in skipped:
        click.echo(f"skipped: {file}: not an image file (suffix {file.suffix or 'none'})", err=True)
    if not files:
        raise M2UNetError("no image files found in the given inputs")
    options = {"kind": kind, "mask": mask_option, "model": model, "pixel_size_um": pixel_size_um, "field_of_view_deg": field_of_view_deg}
    rows, segments, junctions, failures, used = [], [], [], [], set()
    for file, stem in tqdm(files, desc="measure", unit="image", disable=len(files) < 2, file=sys.stderr):
        name = unique_name(stem, used)
        try:
            result, photograph = measure_file(file, name, options)
        except M2UNetError as error:
            failures.append(str(error))
            rows.append(empty_row(name, f"failed: {error}"))
            if len(files) > 1:
                tqdm.write(f"failed: {error}", file=sys.stderr)
            continue
        rows.append(result.summary)
        segments += result.segments
        junctions += result.junctions
        if pictures:
            save_png(out / f"{name}_measure.png", draw(result, photograph, colour_by))
    write_csv(out / "measurements.csv", SUMMARY_COLUMNS, rows)
    write_csv(out / "segments.csv", SEGMENT_COLUMNS, segments)
    write_csv(out / "junctions.csv", JUNCTION_COLUMNS, junctions)
    done = len(files) - len(failures)
    click.echo(f"measured {done}/{len(files)} image(s): {len(segments)} segments, {len(junctions)} junctions, into {out}/ "
               "(measurements.csv, segments.csv, junctions.csv" + (", NAME_measure.png)" if pictures else ")"))
    if failures:
        click.echo(f"{len(failures)} failed:", err=True)
        for line in failures:
            click.echo(f"  {line}", err=True)
        sys.exit(1)
