"""``m2unet segment``: vessel maps for fundus photographs (files or folders, any size, any backend)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import one_line_errors
from ..weights import PRETRAINED_NAMES, SEARCH_TIME
from .batch import find_mask  # noqa: F401 (m2unet.measure finds masks the way segment does)
from .tiling import MAX_TILE, TTA_TIME


def collect_inputs(paths, skipped: list[Path] | None = None) -> list[tuple[Path, Path]]:
    """(file, output stem) pairs of the inputs, by the rules of :func:`m2unet.inference.batch.collect_inputs`
    (folders, manifests, names that never clash); for commands that read the inputs as segment does."""
    from .batch import collect_inputs as jobs_of

    return [(Path(job.path), Path(job.stem)) for job in jobs_of(paths, skipped)]


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--out", "out_dir", default="m2unet-output", show_default=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--model", "model_name", default="auto", show_default=True, type=click.Choice(["auto", *PRETRAINED_NAMES]),
              help="Pretrained model; auto: universal, one model for any camera, with each photograph's FOV diameter searched "
                   "and the kept view's flips averaged (best on cameras left out of training: results/scale/loo.md).")
@click.option("--weights", type=click.Path(dir_okay=False), help="Weights file (.safetensors of ours or an authors' .pth), or a model from `m2unet export` (.onnx / .xml: runs without PyTorch); overrides --model.")
@click.option("--backend", "runtime", default=None, type=click.Choice(["torch", "onnxruntime", "openvino"]),
              help="Runtime [default: openvino if installed, else onnxruntime, else torch].")
@click.option("--precision", default="auto", show_default=True, type=click.Choice(["auto", "fp32", "fp16", "bf16", "int8"]),
              help="auto: with openvino the fastest of fp32 / bf16 / int8, timed once per CPU model and cached (m2unet.inference.autoprecision), else fp32. int8 (CPU) is calibrated on --calibration (once, cached); "
                   "fp16 is for --device cuda.")
@click.option("--device", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda"]),
              help="cuda: PyTorch on the GPU (fp32, or --precision fp16 / bf16 autocast).")
@click.option("--calibration", default="auto", show_default=True,
              help="int8 calibration training images: drive, chase_db1, hrf (several joined by commas) or a folder; auto: the pretrained model's dataset(s) (universal: all three), else drive.")
@click.option("--threshold", type=float, default=None, help="Binary threshold (default: the one stored with the weights, else 0.5).")
@click.option("--overlay/--no-overlay", default=False, show_default=True, help="Also write NAME_overlay.png (vessels in green on the photo).")
@click.option("--fov-mask/--no-fov-mask", "use_fov", default=True, show_default=True,
              help="Estimate the field-of-view mask from each image and set the probability to 0 outside it.")
@click.option("--mask", "mask_option", default=None, help="FOV mask FILE, or DIR holding NAME.* / NAME_mask.* per image (instead of the estimate).")
@click.option("--tile", "max_tile", default=MAX_TILE, show_default=True, type=click.IntRange(512, 16384), help="Largest tile side for big images (bounds memory).")
@click.option("--tta/--no-tta", default=None,
              help=f"Test-time augmentation: mean over the view the photograph runs at and its 3 flips ({TTA_TIME}; results/ours/tta, results/scale/loo.md) "
                   "[default: with --model auto, not with a model named or --weights].")
@click.option("--rescale/--no-rescale", default=True, show_default=True,
              help="Run each photograph at the FOV diameter its model works at (universal: into the FOV diameter range stored with it; per-dataset models: their training diameter, shrink only) and map back; "
                   "a model that stores a contrast floor (universal) also stretches a flatter photograph up to it (m2unet.data.contrast).")
@click.option("--search-diameter/--no-search-diameter", default=None,
              help="Universal model: try FOV diameters across its stored range, and above it up to the photograph's own, and keep each photograph's "
                   f"most self-consistent map, instead of clamping its FOV diameter into the range ({SEARCH_TIME}; results/scale/latency.md; for cameras whose vessels are "
                   "wider or finer than their FOV diameter suggests; results/scale/consistency_diameter.md, results/scale/loo.md) "
                   "[default: with --model auto, not with a model named or --weights].")
@click.option("--engine", default="local", show_default=True, type=click.Choice(["local", "ray"]),
              help="local: this process; ray: Ray Data (an actor pool, one model per actor; each actor reads, segments and writes batches of paths), docs/engine.md.")
@click.option("--address", default=None, help="--engine ray: the Ray cluster (auto, ray://HOST:10001 or HOST:6379); default: start a local Ray.")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="Models run side by side: Ray actors [default: one per 2 CPUs of each node (2.5 GB of its memory each), or per GPU with --device cuda], or with --engine local "
                   "threads that each hold a model [default: one per 2 cores the process may use, no more than fit 2.5 GB each in its free memory].")
@click.option("--measure", is_flag=True, help="Also measure each vessel map (m2unet measure): its columns in results.parquet, "
              "OUT/measurements.csv, OUT/NAME_segments.csv and OUT/NAME_junctions.csv; pixel sizes from a manifest's pixel_size_um.")
@one_line_errors
def segment(inputs, out_dir, model_name, weights, runtime, precision, device, calibration, threshold, overlay, use_fov, mask_option, max_tile, tta,
            rescale, search_diameter, engine, address, workers, measure):
    """Segment the vessels of fundus photographs: probability map, binary map (and overlay) per image.

    INPUTS are image files (JPEG, PNG, TIFF 8/16-bit, GIF, PPM, BMP, WebP; gray, RGB or RGBA; any size) or
    folders (searched recursively). For each image NAME, writes OUT/NAME_probability.png (8-bit vessel
    probability), OUT/NAME_vessels.png (binary map) and with --overlay OUT/NAME_overlay.png. The vessel
    probability is 0 outside the field of view, which is estimated from the image itself (bright disk on a
    dark surround; see m2unet.data.fov) unless --mask gives one or --no-fov-mask turns it off.
    Large images run in overlapping tiles of at most --tile² pixels, so memory stays bounded.
    Images are decoded in a background thread while the model runs. A file that cannot be read is reported
    on one line and skipped; the exit status is 1 if any file failed.

    OUT/results.parquet gets one row per input (status ok / failed / skipped, the reason, the output files,
    model, threshold, seconds, and `review`: why to look at a map before using it — too few vessels or an unsure
    map, as photographs far out of focus or compressed to blocks give — or empty). Rerunning the same command after a crash or kill skips the inputs whose
    outputs are complete and recorded. INPUTS may also be CSV / Parquet manifests with a `path` column.
    Two inputs never write the same outputs: clashing names keep their suffix or their folders (docs/engine.md).
    --engine ray runs the same stages on Ray Data: a local Ray by default, or a cluster with --address.

    \b
    Examples:
      m2unet segment photo.jpg -o out/ --overlay
      m2unet segment photo.jpg -o out/ --no-tta       # auto without its flips: 1.7–3.8× faster, lower F1 (see --tta)
      m2unet segment photos/ -o out/ --model universal   # auto without search and flips: 9–14× faster (results/scale/latency.md)
      m2unet segment ../shared/datasets/HRF/images -o hrf-out/ --model hrf --backend openvino --precision int8
      m2unet segment photos/ -o out/ --device cuda --precision fp16   # on a GPU
      m2unet segment manifest.csv -o out/ --engine ray                # Ray Data on this machine (rerun to resume)
      m2unet segment photos/ -o out/ --engine ray --address auto      # on a running Ray cluster
    """
    from ..weights import auto_run, calibration_for, resolve_weights
    from .backends import backend_name
    from .batch import Options, summary_line
    from .collection import run_collection
    from .pipeline import default_runtime, get_segmenter

    backend = backend_name(runtime or default_runtime(device, weights), precision, device, weights)
    search_diameter, tta = auto_run(model_name, weights, search_diameter, tta)
    if device == "cuda" and engine == "local":  # with ray the GPUs are on the workers, not necessarily here
        from .backends import require_cuda

        require_cuda()  # one error up front, not one per image
    if weights is not None or model_name != "auto":
        # a missing weights file, or one the backend cannot run, is one error up front, not one per image
        path = resolve_weights(model_name, weights)
        if engine == "local":
            get_segmenter(path, backend, calibration=calibration_for(path, calibration), max_tile=max_tile, tta=tta, rescale=rescale,
                          search_diameter=search_diameter)
    options = Options(out=out_dir, backend=backend, model=model_name, weights=weights, calibration=calibration, threshold=threshold,
                      overlay=overlay, use_fov=use_fov, mask=mask_option, max_tile=max_tile, tta=tta, rescale=rescale,
                      search_diameter=search_diameter, measure=measure)
    # the measure layer sits above inference: the top-level command group hands its stage over (m2unet.cli.main)
    stages = click.get_current_context().find_root().obj if measure else None
    measurer = stages.get("measure") if stages is not None else None
    records, elapsed = run_collection(inputs, options, engine=engine, address=address, workers=workers, measurer=measurer)
    click.echo(summary_line(records, elapsed, Path(out_dir)))
    failures = [row["error"] for row in records if row["status"] == "failed"]
    if failures:
        click.echo(f"{len(failures)} failed:", err=True)
        for line in failures:
            click.echo(f"  {line}", err=True)
        sys.exit(1)
