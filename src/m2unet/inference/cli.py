"""``m2unet segment``: vessel maps for fundus photographs."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..cli import one_line_errors
from ..errors import M2UNetError


def collect_inputs(paths: tuple[str, ...]) -> list[Path]:
    """Files as given, and the image files found under folders (recursively), in a stable order."""
    from ..data.io import is_image_file

    found: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and is_image_file(p))
        else:
            found.append(path)  # missing or unreadable files are reported per file later
    return found


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--out", "out_dir", default="m2unet-output", show_default=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--weights", type=click.Path(dir_okay=False), help="Weights file (.safetensors of ours or an authors' .pth).")
@click.option("--model", "model_name", default="drive", show_default=True, help="Pretrained model: drive, chase_db1 or hrf.")
@click.option("--threshold", type=float, default=None, help="Binary threshold (default: the one stored with the weights).")
@one_line_errors
def segment(inputs, out_dir, weights, model_name, threshold):
    """Segment the vessels of fundus photographs: probability map and binary map per image.

    INPUTS are image files or folders (searched recursively). For each image NAME, writes
    OUT/NAME_probability.png (8-bit vessel probability) and OUT/NAME_vessels.png (binary map).

    \b
    Example:
      m2unet segment examples/chase_db1_Image_11L.jpg -o out/
    """
    from tqdm import tqdm

    from ..data.io import read_image, save_png
    from ..inference.predict import predict_probability
    from ..weights import load_weights, pretrained_path, threshold_of

    path = Path(weights) if weights else pretrained_path(model_name)
    model, meta = load_weights(path)
    cut = threshold if threshold is not None else threshold_of(meta)
    files = collect_inputs(inputs)
    if not files:
        raise M2UNetError("no image files found in the given inputs")
    out = Path(out_dir)
    failures = []
    for file in tqdm(files, desc="segment", unit="image", disable=len(files) < 2):
        try:
            image = read_image(file)
            probability = predict_probability(model, image)
            save_png(out / f"{file.stem}_probability.png", probability)
            save_png(out / f"{file.stem}_vessels.png", probability >= cut)
        except M2UNetError as error:
            failures.append(str(error))
            tqdm.write(f"failed: {error}", file=sys.stderr)
    done = len(files) - len(failures)
    click.echo(f"segmented {done}/{len(files)} image(s) with {path.name} (threshold {cut:.4f}) into {out}/")
    if failures:
        click.echo(f"{len(failures)} failed:", err=True)
        for line in failures:
            click.echo(f"  {line}", err=True)
        sys.exit(1)
