"""The ``m2unet`` command: one sub-command per job, each with a worked example in its help.

This layer only parses options and prints; the work lives in the library modules.
"""

from __future__ import annotations

import functools
import sys

import click

from .errors import M2UNetError


def one_line_errors(command):
    """Turn library errors into one line on stderr and exit status 1, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except M2UNetError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="m2unet")
def main():
    """M2U-Net: fast retinal vessel segmentation (Laibacher, Weyde, Jalali, CVPR-W 2019).

    \b
    Segment a fundus photograph:      m2unet segment photo.jpg -o out/
    Model size and cost:              m2unet info --model m2unet --size 544
    Check a dataset folder:           m2unet datasets check ../shared/datasets/DRIVE
    """


@main.command()
@click.option("--model", "model_name", default="m2unet", show_default=True, help="Registered model name, or 'all'.")
@click.option("--size", "sizes", multiple=True, default=("544",), show_default=True, help="Input size: N (N×N) or HxW; repeatable.")
@one_line_errors
def info(model_name, sizes):
    """Parameters, size on disk and multiply-adds of a model at an input size (the paper's Table 2 columns).

    \b
    Example:
      m2unet info --model m2unet --size 544 --size 960
    """
    from .models import create_model, list_models
    from .models.complexity import model_summary

    names = list_models() if model_name == "all" else [model_name]
    click.echo(f"{'model':<10} {'params':>12} {'size MB':>8} {'input':>11} {'GMAdds':>9}")
    for name in names:
        model = create_model(name)
        for size in sizes:
            h, w = _parse_size(size)
            s = model_summary(model, h, w)
            click.echo(f"{name:<10} {s['parameters']:>12,} {s['size_mb']:>8.2f} {f'{w}×{h}':>11} {s['gmadds']:>9.2f}")


def _parse_size(text: str) -> tuple[int, int]:
    try:
        parts = [int(p) for p in text.lower().replace("×", "x").split("x")]
    except ValueError:
        raise M2UNetError(f"--size {text!r}: expected N or HxW, e.g. 544 or 2336x3504") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) <= 0:
        raise M2UNetError(f"--size {text!r}: expected N or HxW, e.g. 544 or 2336x3504")
    return parts[0], parts[1]


@main.group()
def datasets():
    """Dataset folders: check that they are complete and readable."""


@datasets.command("check")
@click.argument("path", type=click.Path(file_okay=False))
@click.option("--dataset", "name", type=click.Choice(["auto", "drive", "chase_db1", "hrf", "folder"]), default="auto", show_default=True)
@one_line_errors
def datasets_check(path, name):
    """Count and verify every file of a dataset folder (DRIVE, CHASE_DB1, HRF or your own layout).

    Each image, label and mask is decoded and its size checked; problems are listed one per line.

    \b
    Example:
      m2unet datasets check ../shared/datasets/DRIVE
    """
    from pathlib import Path

    from .data.datasets import BUILTIN, image_folder
    from .errors import InputFileError

    folder = Path(path)
    if not folder.is_dir():
        raise M2UNetError(f"{folder}: no such folder")
    if name == "auto":
        upper = folder.name.upper()
        name = {"DRIVE": "drive", "CHASE_DB1": "chase_db1", "HRF": "hrf"}.get(upper, "folder")
    splits = ("train", "test")
    failures = 0
    for split in splits:
        try:
            dataset = BUILTIN[name](folder, split) if name != "folder" else image_folder(folder, split)
        except M2UNetError as error:
            click.echo(f"  {split}: {error}")
            failures += 1
            continue
        ok = labelled = 0
        for index in range(len(dataset)):
            try:
                sample = dataset[index]
            except InputFileError as error:
                click.echo(f"  {split}: {error}")
                failures += 1
                continue
            ok += 1
            labelled += sample.label is not None
        h, w = sample.image.shape[:2] if ok else (0, 0)
        click.echo(f"{name} {split}: {ok}/{len(dataset)} readable, {labelled} labelled, crop {w}×{h}")
        if name == "folder":
            break
    if failures:
        raise M2UNetError(f"{folder}: {failures} problem(s) found")
    click.echo("all files readable")


def register_subcommands():
    """Sub-commands that live with their modules."""
    from .inference.cli import segment

    main.add_command(segment)


register_subcommands()

