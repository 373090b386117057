"""``m2unet evaluate``, ``m2unet compare`` and ``m2unet report``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..data.datasets import dataset_names
from ..errors import M2UNetError, keep_another_commands_output, one_line_errors


def _command_line(context: click.Context) -> str:
    """The command as a user would retype it (options that differ from their defaults), for provenance."""
    import shlex

    words = [f"m2unet {context.info_name}"]
    for parameter in context.command.params:  # positional arguments (compare's RUNS) first, as they were typed
        if isinstance(parameter, click.Argument):
            value = context.params.get(parameter.name)
            words += [shlex.quote(str(item)) for item in (value if isinstance(value, (tuple, list)) else (value,)) if item is not None]
    for parameter in context.command.params:
        value = context.params.get(parameter.name)
        if not isinstance(parameter, click.Option) or value is None or value == parameter.get_default(context) or parameter.name == "overwrite":
            continue  # --overwrite says what may be replaced, not what was computed
        if parameter.is_flag:
            flags = parameter.opts if value else parameter.secondary_opts
            if flags:  # a lone flag (no --no-x form) that is off is simply absent
                words.append(flags[0])
        else:
            for item in value if isinstance(value, (tuple, list)) else (value,):  # multiple=True options repeat
                words.append(f"{parameter.opts[0]} {shlex.quote(str(item))}")
    return " ".join(words)


def _keep_earlier_evaluation(out: Path, command: str, weights: Path | None, overwrite: bool) -> None:
    """Refuse to replace an evaluation in ``out`` that other weights or another command wrote (its numbers would be lost).

    The same command on the same weights again (a rerun after a kill, or to reproduce a committed result) replaces it.
    """
    import json

    from ..weights import file_digest

    earlier_file = out / "metrics.json"
    if overwrite or not earlier_file.is_file():
        return
    try:
        earlier = json.loads(earlier_file.read_text())
        what, digest, earlier_command = earlier["weights"].get("label", "?"), earlier["weights"].get("sha256"), earlier["command"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise M2UNetError(f"{earlier_file}: not a metrics.json this version can read; give another --out, or --overwrite to replace it") from None
    same_weights = digest is None if weights is None else bool(digest) and digest.startswith(file_digest(weights))
    if earlier_command != command or not same_weights:
        raise M2UNetError(f"{out}: holds the evaluation of {what} from an earlier run ({earlier_command}); "
                          "give another --out, or --overwrite to replace it")


def _default_out(dataset: str, split: str, what: str, tta: bool, search: bool, runtime: str | None, precision: str) -> Path:
    """evaluation/DATASET-SPLIT-WEIGHTS, with how it ran, so that two evaluations of one model differ in name."""
    ways = ["search" if search else "", "tta" if tta else "", runtime or "", "" if precision == "auto" else precision]
    return Path("evaluation") / "-".join([dataset, split, what, *filter(None, ways)])


@click.command()
@click.option("--dataset", "dataset_name", required=True, help=f"{', '.join(dataset_names())}, or a folder of your own (see the README).")
@click.option("--split", default="test", show_default=True, help="Split to evaluate (CHASE_DB1 also: test_01_10, train_11_14).")
@click.option("--weights", type=click.Path(dir_okay=False), help="Weights: our .safetensors, an authors' .pth, or a file from `m2unet export` (.onnx / .xml).")
@click.option("--model", "model_name", help="Pretrained model instead of --weights: drive, chase_db1, hrf, universal, or auto (universal with each image's "
              "FOV diameter searched and flips averaged, as segment --model auto runs) [default: the dataset's].")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Output folder [default: evaluation/DATASET-SPLIT-WEIGHTS].")
@click.option("--threshold", type=float, help="A-priori threshold [default: stored with the weights, else chosen on the training split].")
@click.option("--threshold-split", help="Split on which to choose the a-priori threshold [default: the training split].")
@click.option("--datasets-root", type=click.Path(file_okay=False), help="Folder with DRIVE/, CHASE_DB1/, HRF/ [default: ../shared/datasets].")
@click.option("--maps/--no-maps", default=True, show_default=True, help="Save per-image probability maps as 8-bit PNG.")
@click.option("--npy", is_flag=True, help="Also save the float32 probability maps as .npy.")
@click.option("--figure-image", help="Image name for Figure 5 [default: the first image].")
@click.option("--bootstrap", default=2000, show_default=True, type=click.IntRange(100, 100000), help="Bootstrap resamples over images.")
@click.option("--label", help="Name of this model in tables and plots.")
@click.option("--second-observer-only", is_flag=True, help="No model: only score the second human observer against the first.")
@click.option("--tta/--no-tta", default=None,
              help="Test-time augmentation: mean probability over the view each image runs at and its 3 flips, as segment --tta runs it [default: with --model auto only].")
@click.option("--rescale/--no-rescale", default=True, show_default=True,
              help="Run each image at the FOV diameter and contrast floor its model works at, as segment does (m2unet.data.scale, m2unet.data.contrast; no effect on a per-dataset model's own dataset).")
@click.option("--search-diameter/--no-search-diameter", default=None,
              help="Search each image's FOV diameter across the universal model's stored range and above it up to the image's own, as segment --search-diameter does; "
                   "per_image.csv says where each ran [default: with --model auto only].")
@click.option("--overwrite", is_flag=True, help="Replace an earlier evaluation in OUT that other weights or another command wrote.")
@click.option("--device", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda"]), help="Where the model runs; cuda needs a GPU build of torch.")
@click.option("--backend", "runtime", default=None, type=click.Choice(["torch", "onnxruntime", "openvino"]),
              help="Runtime [default: torch; for an exported .onnx / .xml file, as segment chooses]. Not torch fp32: tiled as segment runs it.")
@click.option("--precision", default="auto", show_default=True, type=click.Choice(["auto", "fp32", "fp16", "bf16", "int8"]),
              help="As in segment: auto is fp32 for torch, for openvino the fastest precision timed on this CPU; int8 calibrated on the model's dataset.")
@one_line_errors
def evaluate(dataset_name, split, weights, model_name, out_dir, threshold, threshold_split, datasets_root, maps, npy, figure_image, bootstrap, label,
             second_observer_only, search_diameter, device, runtime, precision, tta, rescale, overwrite):
    """Evaluate a model on a labelled split, the paper's way and the honest way.

    Confusion counts at 1001 thresholds are pooled over the split, inside the FOV and over the whole
    crop (crop-removed pixels as true negatives, as the paper does). F1 is reported at the a-priori
    threshold and at the best threshold on the split itself (the paper's protocol: optimistic), with
    accuracy, ROC AUC, sensitivity, specificity, Jaccard, MCC, per-image mean ± std, a bootstrap 95%
    interval for F1, and the second human observer where the dataset has one.

    Writes OUT/metrics.json, OUT/per_image.csv, OUT/pr_curve.png, OUT/figure5.png and
    OUT/probability/NAME.png (and .npy with --npy); an OUT that holds another evaluation is refused
    (--overwrite replaces it). With --second-observer-only no model is run
    (e.g. for the paper's CHASE_DB1 test split, where the authors' checkpoint saw some images in training).

    \b
    Examples:
      m2unet evaluate --dataset drive --weights ../shared/weights/m2unet-authors/M2UNetDRIVE.pth --out eval/drive
      m2unet evaluate --dataset chase_db1 --split test_01_10 --model chase_db1 --no-maps
      m2unet evaluate --dataset chase_db1 --split test --second-observer-only --out eval/chase_observer
      m2unet evaluate --dataset my_fundus_folder --weights run/best.safetensors --threshold 0.5
      m2unet evaluate --dataset drive --model drive --tta --out eval/drive-tta
      m2unet evaluate --dataset hrf --model auto --no-maps         # as segment runs by default: universal, searched, flips
      m2unet evaluate --dataset drive --model drive --backend openvino --precision int8   # what a deployment runs
      m2unet evaluate --dataset drive --weights m2unet-drive-int8.onnx                   # a file from m2unet export
      m2unet evaluate --dataset drive --model universal --out eval/drive --overwrite     # replace what eval/drive holds

    PyTorch fp32 (the default) runs whole images, as the committed results were made; other backends and
    precisions run through the same code as `m2unet segment` (tiles of at most 1536² with 192 px overlap).
    """
    from ..data import load_dataset
    from ..system import peak_rss_mb
    from ..weights import auto_run, resolve_weights
    from .evaluate import a_priori_threshold, default_model, format_table
    from .evaluate import evaluate as run_evaluation
    from .predictor import model_predictor, weights_info

    if weights and model_name:
        raise M2UNetError("give either --weights or --model, not both")
    command = _command_line(click.get_current_context())
    if second_observer_only:
        _second_observer(dataset_name, split, datasets_root, out_dir, bootstrap, command, overwrite)
        return
    if not weights and not model_name:  # the pretrained model of that dataset (drive for a folder of one's own)
        model_name = default_model(dataset_name)
        click.echo(f"no --weights or --model given: using the pretrained '{model_name}' model", err=True)
    search_diameter, tta = auto_run(model_name, weights, search_diameter, tta)
    path = resolve_weights(model_name, weights)  # auto: the universal model; a missing file is one line
    dataset = load_dataset(dataset_name, split, root=datasets_root)
    if len(dataset) == 0:
        raise M2UNetError(f"{dataset_name} {split}: no images")
    out = Path(out_dir) if out_dir else _default_out(dataset.name, split, path.stem, tta, search_diameter, runtime, precision)
    _keep_earlier_evaluation(out, command, path, overwrite)  # before the model runs: minutes, for a large split
    predictor, metadata, backend = model_predictor(path, runtime, precision, device, rescale, progress=lambda message: click.echo(message, err=True),
                                                   search_diameter=search_diameter)
    threshold, source = a_priori_threshold(predictor, metadata, dataset_name, split, threshold, threshold_split, root=datasets_root, tta=tta,
                                           notify=lambda message: click.echo(message, err=True))
    result = run_evaluation(
        predictor, dataset, out, a_priori=threshold, threshold_source=source, weights_info=weights_info(path, metadata, label, backend),
        save_maps=maps, save_npy=npy, figure_image=figure_image, bootstrap=bootstrap, command=command, tta=tta,
    )
    click.echo(format_table(result))
    runtime = result["runtime"]
    click.echo(f"{result['images']} images in {runtime['seconds']:.1f} s ({runtime['seconds_per_image']:.2f} s/image), peak memory {peak_rss_mb():.0f} MiB; wrote {out}/")
    if result["failed"]:
        click.echo(f"{len(result['failed'])} failed:", err=True)
        for line in result["failed"]:
            click.echo(f"  {line}", err=True)
        sys.exit(1)


def _second_observer(dataset_name, split, datasets_root, out_dir, bootstrap, command, overwrite):
    """``evaluate --second-observer-only``: the second human observer against the first, no model."""
    from ..data import load_dataset
    from .evaluate import evaluate as run_evaluation
    from .evaluate import format_table

    dataset = load_dataset(dataset_name, split, root=datasets_root)
    out = Path(out_dir) if out_dir else Path("evaluation") / f"{dataset.name}-{split}-second-observer"
    _keep_earlier_evaluation(out, command, None, overwrite)
    result = run_evaluation(None, dataset, out, a_priori=None, threshold_source="no model", weights_info={"label": "second observer"},
                            save_maps=False, bootstrap=bootstrap, command=command)
    if result["second_observer"] is None:
        raise M2UNetError(f"{dataset_name} {split}: no second observer's labels in this dataset")
    click.echo(format_table(result))
    click.echo(f"wrote {out}/")


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", "out_dir", default="comparison", show_default=True, type=click.Path(file_okay=False), help="Folder for comparison.md and pr_curves.png.")
@click.option("--region", type=click.Choice(["crop", "fov", "crop_only"]), default="crop", show_default=True, help="Pixels the PR curves and table use.")
@click.option("--overwrite", is_flag=True, help="Replace a comparison in --out that another command made.")
@one_line_errors
def compare(runs, out_dir, region, overwrite):
    """One table and one precision–recall plot over several `m2unet evaluate` outputs.

    RUNS are evaluation output folders (or their metrics.json). The table has F1 at the a-priori and at the
    best threshold (optimistic), its bootstrap interval, accuracy, AUC and average precision; the plot
    has every model's curve with its operating points and each dataset's second observer. Runs on the
    same images as the first run of their dataset also get ΔF1 a-priori against it with a paired
    bootstrap interval (images resampled together): the fair test of "is model B better than A".

    \b
    Examples:
      m2unet compare results/authors/drive evaluation/drive-test-best --out comparison/
      m2unet compare results/authors/drive evaluation/drive-test-drive --out comparison/ --overwrite   # other runs, same folder

    A folder holding a comparison that another command made is refused unless --overwrite; the same command refreshes it.
    """
    from .compare import MADE_BY, compare_runs
    from .evaluate import recorded_command

    command = _command_line(click.get_current_context())  # a page made by other runs names them only there: kept
    keep_another_commands_output(Path(out_dir) / "comparison.md", command, overwrite, lambda page: recorded_command(page, MADE_BY))
    table, plot = compare_runs([Path(r) for r in runs], Path(out_dir), region=region, command=command)
    click.echo(table)
    click.echo(f"wrote {Path(out_dir) / 'comparison.md'} and {plot}")


@click.command()
@click.option("--out", "out_dir", default="report", show_default=True, type=click.Path(file_okay=False), help="Folder for report.md and its PNGs.")
@click.option("--runs", "runs", multiple=True, type=click.Path(exists=True), help="Evaluation outputs to report (repeatable) [default: every metrics.json under results/].")
@click.option("--timing-repeats", default=3, show_default=True, type=click.IntRange(0, 50), help="Timed runs per input size (median); 0 skips timing.")
@click.option("--models", "models", multiple=True, help="Registered models for Table 2 (repeatable) [default: all].")
@click.option("--overwrite", is_flag=True, help="Replace a report in --out that another command made.")
@one_line_errors
def report(out_dir, runs, timing_repeats, models, overwrite):
    """One Markdown page reproducing the paper's Table 2, Tables 3–4 and Figure 5 from available results.

    Model size and MAdds are computed for every registered model; F1, accuracy and AUC come from
    `m2unet evaluate` outputs; time per image is measured on this CPU (eager PyTorch fp32; `m2unet bench` compares backends)
    and shown beside the paper's published rows (kept in m2unet/paper.py).

    \b
    Example:
      m2unet report --out report/ --runs results/authors/drive --runs results/authors/hrf

    A folder holding a report that another command made is refused unless --overwrite; the same command refreshes it.
    """
    from ..models import list_models
    from .evaluate import recorded_command
    from .report import HOW_MADE, write_report

    unknown = [m for m in models if m not in list_models()]
    if unknown:
        raise M2UNetError(f"--models {unknown[0]}: not a registered model ({', '.join(list_models())})")
    command = _command_line(click.get_current_context())
    keep_another_commands_output(Path(out_dir) / "report.md", command, overwrite,  # before minutes of timing
                                 lambda page: recorded_command(page, HOW_MADE))
    path = write_report(Path(out_dir), [Path(r) for r in runs] or None, timing_repeats=timing_repeats, models=list(models) or None,
                        command=command)
    click.echo(f"wrote {path}")


@click.command()
@click.argument("labelled")
@click.option("-o", "--out", "out_file", required=True, type=click.Path(dir_okay=False), help="The calibrated weights file (.safetensors) to write.")
@click.option("--model", "model_name", type=click.Choice(["drive", "chase_db1", "hrf", "universal"]),
              help="Pretrained model to calibrate [default: universal].")
@click.option("--weights", type=click.Path(dir_okay=False), help="Our .safetensors weights file to calibrate instead of --model.")
@click.option("--split", default="train", show_default=True, help="Split of a built-in dataset, or of a folder with train/ and test/.")
@click.option("--datasets-root", type=click.Path(file_okay=False), help="Folder with DRIVE/, CHASE_DB1/, HRF/ [default: ../shared/datasets].")
@click.option("--tta", is_flag=True, help="Calibrate the flip-averaged maps, for segment --tta (4× the time).")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@one_line_errors
def calibrate(labelled, out_file, model_name, weights, split, datasets_root, tta, overwrite):
    """Calibrate a model to your camera: run diameter and threshold chosen on a few labelled photographs from it.

    LABELLED is a folder in the images/ labels/ (masks/) layout of your own data (see the README), or drive,
    chase_db1, hrf (their --split). Every photograph runs at the model's stored scale and at fixed FOV diameters from
    0.625 to 1.75 times its training diameter (and 2, 2.5, 3 times, up to the widest photograph's own); the
    diameter and threshold with the best F1 pooled over the photographs (inside the FOV) go into a copy of the
    weights, with a record of every candidate in its metadata (camera_calibration). Candidates within 0.002 of the best count as equal: the stored scale, then the diameter
    nearest the training one, wins. Use the file with segment --weights (and evaluate, export, serve). Not int8
    calibration: that is export's --calibration.

    \b
    Examples:
      m2unet calibrate my_camera/ -o universal-my-camera.safetensors       # my_camera/images, my_camera/labels
      m2unet segment photos/ -o out/ --weights universal-my-camera.safetensors
      m2unet calibrate chase_db1 --weights runs/loo-chase_db1/best.safetensors -o loo-chase-calibrated.safetensors
    """
    from ..data import load_dataset
    from ..data.scale import describe_scale, model_scale
    from ..weights import read_metadata, resolve_weights
    from .calibrate import calibrate as run_calibration

    if weights and model_name:
        raise M2UNetError("give either --weights or --model, not both")
    path = resolve_weights(model_name or "universal", weights)
    dataset = load_dataset(labelled, split, root=datasets_root)
    record = run_calibration(path, dataset, Path(out_file), tta=tta, overwrite=overwrite)
    click.echo(f"{record['photographs']} photographs of {dataset.name} ({dataset.split}); pooled F1 inside the FOV at each candidate's best threshold:")
    for candidate in record["candidates"]:
        where = "stored: " + str(candidate["run_fov_diameter"]) if candidate["stored"] else f"{candidate['run_fov_diameter'][0]} px"
        click.echo(f"  {where:<24} threshold {candidate['threshold']:.3f}  F1 {candidate['f1']:.4f}")
    meta = read_metadata(out_file)
    click.echo(f"chosen: photographs run {describe_scale(model_scale(meta))}, threshold {meta['threshold']:.3f}; F1 {record['f1_before']:.4f} as "
               f"{path.name} was stored, {record['f1_after']:.4f} calibrated (on these photographs: score it on others). Wrote {out_file}")
    click.echo(f"use it: m2unet segment PHOTOS --weights {out_file}   or   m2unet serve --weights {out_file}")
    for line in record["failures"]:
        click.echo(f"failed: {line}", err=True)
    if record["failures"]:
        sys.exit(1)
