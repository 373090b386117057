"""``m2unet segment``: vessel maps for fundus photographs (files or folders, any size, any backend)."""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click

from ..errors import M2UNetError, one_line_errors
from ..weights import PRETRAINED_NAMES
from .tiling import MAX_TILE

PREFETCH = 2  # images decoded ahead of the one being segmented
LARGE_PIXELS = 12_000_000  # above this (e.g. 7000×5000) images are decoded and written one at a time


def header_pixels(path: Path) -> int:
    """Width × height from the file header without decoding (0 when unknown)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.width * image.height
    except Exception:
        return 0


def collect_inputs(paths: tuple[str, ...], skipped: list[Path] | None = None) -> list[tuple[Path, Path]]:
    """(file, output stem) pairs: files as given, and the image files under folders (recursively, stable order).

    The output stem keeps the sub-folder below a given folder, so equal names in different folders do not collide.
    Files in folders without an image suffix (other than hidden ones) are appended to ``skipped``.
    """
    from ..data.io import is_image_file

    found: list[tuple[Path, Path]] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                if is_image_file(file):
                    found.append((file, file.relative_to(path).with_suffix("")))
                elif skipped is not None and not file.name.startswith("."):
                    skipped.append(file)
        else:
            found.append((path, Path(path.stem)))  # missing or unreadable files are reported per file later
    return found


def find_mask(mask_option: str | None, image_path: Path) -> Path | None:
    """The FOV mask file for an image: ``--mask FILE`` itself, or in ``--mask DIR`` a file named like the image
    (``NAME.*`` or ``NAME_mask.*``)."""
    if mask_option is None:
        return None
    where = Path(mask_option)
    if where.is_file():
        return where
    if where.is_dir():
        from ..data.io import is_image_file

        for candidate in sorted(where.iterdir()):
            if is_image_file(candidate) and candidate.stem in (image_path.stem, f"{image_path.stem}_mask"):
                return candidate
        raise M2UNetError(f"{image_path}: no mask named {image_path.stem}.* or {image_path.stem}_mask.* in {where}")
    raise M2UNetError(f"--mask {where}: no such file or folder")


def load_input(path: Path, mask_option: str | None, use_fov: bool):
    """Decode one image and its FOV mask (given, estimated, or none): runs in the background pool."""
    from ..data.fov import estimate_fov_mask
    from ..data.io import read_binary, read_image

    image = read_image(path)
    mask_file = find_mask(mask_option, path)
    if mask_file is not None:
        mask = read_binary(mask_file, image.shape[:2])
    else:
        mask = estimate_fov_mask(image) if use_fov else None
    return image, mask


def write_outputs(out: Path, stem: Path, image, probability, vessels, mask, with_overlay: bool) -> None:
    from ..data.io import save_png
    from .pipeline import overlay

    base = out / stem
    save_png(base.with_name(base.name + "_probability.png"), probability)
    save_png(base.with_name(base.name + "_vessels.png"), vessels)
    if with_overlay:
        from PIL import Image

        from ..data.io import write_atomic

        picture = Image.fromarray(overlay(image, vessels, mask))
        # A photograph compresses poorly; the fastest zlib level is 5–10× quicker for ~10 % more bytes.
        write_atomic(base.with_name(base.name + "_overlay.png"), lambda tmp: picture.save(tmp, format="PNG", compress_level=1))


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--out", "out_dir", default="m2unet-output", show_default=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--model", "model_name", default="auto", show_default=True, type=click.Choice(["auto", *PRETRAINED_NAMES]),
              help="Pretrained model; auto picks by FOV width: ≤700 px drive, ≤1500 px chase_db1, else hrf.")
@click.option("--weights", type=click.Path(dir_okay=False), help="Weights file (.safetensors of ours or an authors' .pth), or a model from `m2unet export` (.onnx / .xml: runs without PyTorch); overrides --model.")
@click.option("--backend", "runtime", default=None, type=click.Choice(["torch", "onnxruntime", "openvino"]),
              help="Runtime [default: openvino if installed, else onnxruntime, else torch].")
@click.option("--precision", default="auto", show_default=True, type=click.Choice(["auto", "fp32", "fp16", "bf16", "int8"]),
              help="auto: bf16 with openvino on CPUs that have it, else fp32. int8 (CPU) is calibrated on --calibration (once, cached); "
                   "fp16 is for --device cuda.")
@click.option("--device", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda"]),
              help="cuda: PyTorch on the GPU (fp32, or --precision fp16 / bf16 autocast).")
@click.option("--calibration", default="auto", show_default=True,
              help="int8 calibration training images: drive, chase_db1, hrf or a folder; auto: the pretrained model's dataset, else drive.")
@click.option("--threshold", type=float, default=None, help="Binary threshold (default: the one stored with the weights, else 0.5).")
@click.option("--overlay/--no-overlay", default=False, show_default=True, help="Also write NAME_overlay.png (vessels in green on the photo).")
@click.option("--fov-mask/--no-fov-mask", "use_fov", default=True, show_default=True,
              help="Estimate the field-of-view mask from each image and set the probability to 0 outside it.")
@click.option("--mask", "mask_option", default=None, help="FOV mask FILE, or DIR holding NAME.* / NAME_mask.* per image (instead of the estimate).")
@click.option("--tile", "max_tile", default=MAX_TILE, show_default=True, type=click.IntRange(512, 16384), help="Largest tile side for big images (bounds memory).")
@click.option("--tta", is_flag=True, help="Test-time augmentation: mean over the image and its 3 flips (4× the time; results/ours/tta).")
@click.option("--rescale/--no-rescale", default=True, show_default=True,
              help="Run each photograph at the FOV diameter the model was trained at (shrink only for the per-dataset models) and map back.")
@one_line_errors
def segment(inputs, out_dir, model_name, weights, runtime, precision, device, calibration, threshold, overlay, use_fov, mask_option, max_tile, tta, rescale):
    """Segment the vessels of fundus photographs: probability map, binary map (and overlay) per image.

    INPUTS are image files (JPEG, PNG, TIFF 8/16-bit, GIF, PPM, BMP, WebP; gray, RGB or RGBA; any size) or
    folders (searched recursively). For each image NAME, writes OUT/NAME_probability.png (8-bit vessel
    probability), OUT/NAME_vessels.png (binary map) and with --overlay OUT/NAME_overlay.png. The vessel
    probability is 0 outside the field of view, which is estimated from the image itself (bright disk on a
    dark surround; see m2unet.data.fov) unless --mask gives one or --no-fov-mask turns it off.
    Large images run in overlapping tiles of at most --tile² pixels, so memory stays bounded.
    Images are decoded in a background thread while the model runs. A file that cannot be read is reported
    on one line and skipped; the exit status is 1 if any file failed.

    \b
    Examples:
      m2unet segment photo.jpg -o out/ --overlay
      m2unet segment photo.jpg -o out/ --tta          # flip test-time augmentation: 4× the time, higher F1
      m2unet segment ../shared/datasets/HRF/images -o hrf-out/ --model hrf --backend openvino --precision int8
      m2unet segment photos/ -o out/ --device cuda --precision fp16   # on a GPU
    """
    from tqdm import tqdm

    from ..weights import threshold_of
    from .backends import backend_name
    from .pipeline import calibration_for, default_runtime, fov_width, get_segmenter, resolve_weights

    backend = backend_name(runtime or default_runtime(device, weights), precision, device)
    if device == "cuda":
        from .backends import require_cuda

        require_cuda()  # one error up front, not one per image
    skipped: list[Path] = []
    files = collect_inputs(inputs, skipped)
    for file in skipped:
        click.echo(f"skipped: {file}: not an image file (suffix {file.suffix or 'none'})", err=True)
    if not files:
        raise M2UNetError("no image files found in the given inputs")
    if weights is not None or model_name != "auto":
        # a missing weights file, or one the backend cannot run, is one error up front, not one per image
        path = resolve_weights(model_name, weights)
        get_segmenter(path, backend, calibration=calibration_for(path, calibration), max_tile=max_tile, progress=tqdm.write, tta=tta, rescale=rescale)
    out = Path(out_dir)
    failures: list[str] = []
    used: dict[str, int] = {}
    started = time.perf_counter()
    # Decoding (PIL/tifffile, mostly outside the GIL) and PNG writing overlap with inference on the other core.
    # Memory stays bounded: at most PREFETCH images are decoded ahead and one waits to be written; around an
    # image over LARGE_PIXELS nothing runs ahead (one big image in memory at a time).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode") as reader, ThreadPoolExecutor(max_workers=1, thread_name_prefix="write") as writer:
        pending = {}
        next_read = 0
        writing = None  # (file, future) of the outputs being written

        def finish_writing():
            nonlocal writing
            if writing is None:
                return
            source, job = writing
            writing = None
            try:
                job.result()
            except (M2UNetError, OSError, ValueError) as error:
                failures.append(f"{source}: writing outputs failed: {str(error).splitlines()[0][:150]}")
                tqdm.write(f"failed: {failures[-1]}", file=sys.stderr)

        def read_ahead(last):
            nonlocal next_read
            while next_read <= min(last, len(files) - 1):
                pending[next_read] = reader.submit(load_input, files[next_read][0], mask_option, use_fov)
                next_read += 1

        def fail(message):
            failures.append(message)
            if len(files) > 1:  # while the progress bar runs; the summary lists every failure again
                tqdm.write(f"failed: {message}", file=sys.stderr)

        bar = tqdm(total=len(files), desc="segment", unit="image", disable=len(files) < 2, file=sys.stderr)
        for index, (file, stem) in enumerate(files):
            read_ahead(index)
            future = pending.pop(index)
            try:
                image, mask = future.result()
                large = image.shape[0] * image.shape[1] > LARGE_PIXELS
                if not large and index + 1 < len(files) and header_pixels(files[index + 1][0]) <= LARGE_PIXELS:
                    read_ahead(index + PREFETCH)
                path = resolve_weights(model_name, weights, fov_width(mask, image.shape[1]))
                segmenter = get_segmenter(path, backend, calibration=calibration_for(path, calibration), max_tile=max_tile, progress=tqdm.write, tta=tta, rescale=rescale)
                cut = threshold if threshold is not None else threshold_of(segmenter.metadata)
                probability = segmenter(image, mask)
                finish_writing()
                writing = (file, writer.submit(write_outputs, out, stem, image, probability, probability >= cut, mask, overlay))
                del image, probability, mask
                if large:
                    finish_writing()
                used[path.name] = used.get(path.name, 0) + 1
            except M2UNetError as error:
                fail(str(error))
            except (MemoryError, RuntimeError, ValueError, OSError) as error:
                fail(f"{file}: {type(error).__name__}: {str(error).splitlines()[0][:150] if str(error) else 'no detail'}")
            bar.update(1)
        finish_writing()
        bar.close()
    elapsed = time.perf_counter() - started
    done = len(files) - len(failures)
    models = ", ".join(f"{name} ×{count}" for name, count in used.items())
    skipped_note = f"; {len(skipped)} non-image file(s) skipped" if skipped else ""
    if done:
        click.echo(f"segmented {done}/{len(files)} image(s){skipped_note} in {elapsed:.1f} s ({done / elapsed:.2f} images/s) with {backend}, weights {models}, into {out}/")
    else:
        click.echo(f"segmented 0/{len(files)} image(s){skipped_note}: nothing written")
    if failures:
        click.echo(f"{len(failures)} failed:", err=True)
        for line in failures:
            click.echo(f"  {line}", err=True)
        sys.exit(1)
