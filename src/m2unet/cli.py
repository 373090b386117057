"""The ``m2unet`` command: one sub-command per job, each with a worked example in its help.

This layer only parses options and prints; the work lives in the library modules.
"""

from __future__ import annotations

import click

from .data.datasets import DATASETS
from .errors import M2UNetError, one_line_errors


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="m2unet")
@click.pass_context
def main(context):
    """M2U-Net: fast retinal vessel segmentation (Laibacher, Weyde, Jalali, CVPR-W 2019).

    \b
    Segment a fundus photograph:      m2unet segment photo.jpg -o out/
    Model size and cost:              m2unet info --model m2unet --size 544
    Check a dataset folder:           m2unet datasets check ../shared/datasets/DRIVE
    """
    context.obj = _Stages()


class _Stages(dict):
    """Stages of higher layers that lower-layer commands run (segment --measure), imported only when asked for."""

    def get(self, name, default=None):
        if name == "measure":
            from .measure.stage import STAGE

            return STAGE
        return super().get(name, default)


@main.command()
@click.option("--model", "model_name", default="all", show_default=True, help="Registered model name, or 'all'.")
@click.option("--size", "sizes", multiple=True, default=("544", "960"), show_default=True, help="Input size: N (N×N) or HxW; repeatable.")
@one_line_errors
def info(model_name, sizes):
    """Parameters, size on disk and multiply-adds of the models, beside the paper's Table 2.

    Our values are computed from the models (MAdds on shapes only, so large sizes cost nothing); the
    paper's come from m2unet.paper; notes below the table explain each difference.

    \b
    Example:
      m2unet info --model all --size 544 --size 960
      m2unet info --model erfnet --size 2336x3504
    """
    from .models import create_model, list_models
    from .models.paper_table2 import models_in_table_order, table2_notes, table2_rows

    if model_name != "all" and model_name not in list_models():
        raise M2UNetError(f"unknown model {model_name!r}; available: {', '.join(list_models())}, all")
    names = models_in_table_order() if model_name == "all" else [model_name]
    shapes = [_parse_size(size) for size in sizes]

    def fmt(value, spec, missing="–"):
        return missing if value is None else format(value, spec)

    click.echo(
        f"{'model':<8} {'params':>11} {'paper':>7} {'Δ%':>6} {'size MB':>8} {'paper':>6} {'input':>9} "
        f"{'GMAdds':>8} {'paper rule':>10} {'paper':>7} {'Δ%':>7}"
    )
    models = {}
    for name in names:
        model = models[name] = create_model(name)
        multiple = getattr(model, "input_multiple", 1)
        for h, w in shapes:
            if h % multiple or w % multiple:
                raise M2UNetError(f"--size {h}x{w}: {name} needs height and width divisible by {multiple}")
        for row in table2_rows(name, shapes, model=model):
            shape = f"{row['height']}×{row['width']}"
            paper_params = fmt(row["paper_parameters"] and row["paper_parameters"] / 1e6, ".2f") + ("M" if row["paper_parameters"] else "")
            click.echo(
                f"{name:<8} {row['parameters']:>11,} {paper_params:>7} {fmt(row['parameters_diff_pct'], '+.2f'):>6} "
                f"{row['size_mb']:>8.2f} {fmt(row['paper_size_mb'], '.1f'):>6} {shape:>9} "
                f"{row['gmadds']:>8.2f} {row['gmadds_paper_rule']:>10.2f} {fmt(row['paper_gmadds'], '.2f'):>7} "
                f"{fmt(row['gmadds_diff_pct'], '+.1f'):>7}"
            )
    click.echo("")
    for note in table2_notes(names, models):
        click.echo(f"note: {note}")


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
@click.option("--dataset", "name", type=click.Choice(["auto", *DATASETS, "folder"]), default="auto", show_default=True)
@one_line_errors
def datasets_check(path, name):
    """Count and verify every file of a dataset folder (DRIVE, CHASE_DB1, HRF or your own layout).

    Each image, label and mask is decoded and its size checked; problems are listed one per line.

    \b
    Example:
      m2unet datasets check ../shared/datasets/DRIVE
    """
    from pathlib import Path

    from .data.datasets import image_folder
    from .errors import InputFileError

    folder = Path(path)
    if not folder.is_dir():
        raise M2UNetError(f"{folder}: no such folder")
    if name == "auto":
        name = next((spec.name for spec in DATASETS.values() if spec.folder.upper() == folder.name.upper()), "folder")
    if name != "folder":
        click.echo(f"{DATASETS[name].label}: {DATASETS[name].labels}")
    splits = ("train", "test")
    failures = 0
    for split in splits:
        try:
            dataset = DATASETS[name].reader(folder, split) if name != "folder" else image_folder(folder, split)
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
    from .evaluation.cli import calibrate, compare, evaluate, report
    from .inference.cli import segment
    from .training.cli import train

    main.add_command(segment)
    from .export.cli import export
    from .inference.bench import bench
    from .measure.cli import measure

    main.add_command(export)
    main.add_command(measure)
    main.add_command(bench)
    main.add_command(train)
    from .serve.cli import serve

    main.add_command(serve)
    for command in (evaluate, calibrate, compare, report):
        main.add_command(command)


register_subcommands()

