"""``m2unet measure`` behind the CLI: inputs (vessel maps, binary masks or photographs) → measures, CSV files, pictures."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from ..errors import InputFileError, M2UNetError
from .core import SUMMARY_COLUMNS, Measurements, measure

BINARY_SHARE = 0.99  # a grey image is a binary mask when this share of its pixels is within 10 % of black or white


def classify(path: Path, rgb: np.ndarray, kind: str) -> str:
    """``mask`` or ``photo`` for an input (``kind``: auto, mask or photo); auto: colour → photo, grey → mask
    when binary, else an error (a grey photograph needs ``--input photo``)."""
    if kind != "auto":
        return kind
    channels_differ = float(np.abs(rgb[..., 0] - rgb[..., 1]).max(initial=0) + np.abs(rgb[..., 1] - rgb[..., 2]).max(initial=0)) > 2 / 255
    if channels_differ:
        return "photo"
    grey = rgb[..., 0]
    near = np.count_nonzero((grey <= 0.1) | (grey >= 0.9)) / grey.size
    if near >= BINARY_SHARE:
        return "mask"
    levels = len(np.unique(np.rint(grey[:: max(1, grey.shape[0] // 256), :: max(1, grey.shape[1] // 256)] * 255)))
    raise InputFileError(path, f"not a binary vessel mask (grey image, {levels}+ grey levels, {100 * (1 - near):.0f} % of pixels "
                               "neither black nor white): threshold it first, or pass --input photo if it is a grey photograph")


def binary(grey: np.ndarray) -> np.ndarray:
    """On pixels of a binary grey image (values in [0, 1]): at least half of full scale, or, for a mask saved
    with the values 0 and 1 (or 0 and any one value under half scale, which looks black), every non-zero pixel."""
    top = float(grey.max(initial=0.0))
    if 0.0 < top < 0.5 and np.all((grey == 0) | (grey == top)):
        return grey > 0
    return grey >= 0.5


def read_fov(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A FOV mask file as bool H×W: a binary grey image of the input's size, else one line naming the file."""
    from ..data.io import read_image

    rgb = read_image(path)
    if rgb.shape[:2] != tuple(shape):
        raise InputFileError(path, f"FOV mask {rgb.shape[1]}×{rgb.shape[0]} does not match its image ({shape[1]}×{shape[0]})")
    try:
        kind = classify(path, rgb, "auto")
    except InputFileError:
        raise InputFileError(path, "not a binary FOV mask (grey levels between black and white)") from None
    if kind == "photo":
        raise InputFileError(path, "not a binary FOV mask (a colour image)")
    return binary(rgb[..., 0])


def vessels_of(path: Path, kind: str, mask_option: str | None, model: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, str | None]:
    """(vessel mask, FOV mask, photograph or None, why to look at the map before use or None) for one input file."""
    from ..data.fov import estimate_fov_mask
    from ..data.io import read_image
    from ..inference.cli import find_mask

    rgb = read_image(path)
    kind = classify(path, rgb, kind)
    mask_file = find_mask(mask_option, path)
    fov = read_fov(mask_file, rgb.shape[:2]) if mask_file is not None else None
    if kind == "mask":
        return binary(rgb[..., 0]), fov if fov is not None else np.ones(rgb.shape[:2], dtype=bool), None, None
    from ..inference.pipeline import segment_and_threshold
    from ..inference.review import review_map
    from ..weights import resolve_weights

    fov = fov if fov is not None else estimate_fov_mask(rgb)
    probability, cut = segment_and_threshold(rgb, model, fov_mask=fov)
    return probability >= cut, fov, rgb, review_map(probability, resolve_weights(model), fov)


def empty_row(name: str, note: str) -> dict:
    row = dict.fromkeys(SUMMARY_COLUMNS, math.nan)
    row.update(image=name, note=note)
    return row


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    return str(value)


def write_csv(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    """A CSV file with ``columns`` (NaN and None as empty cells), written atomically."""
    from ..data.io import write_atomic

    def writer(tmp):
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            out = csv.writer(handle)
            out.writerow(columns)
            for row in rows:
                out.writerow([_cell(row.get(column)) for column in columns])

    write_atomic(path, writer)


def measure_file(path: Path, name: str, options: dict) -> tuple[Measurements, np.ndarray | None]:
    """Measure one input file (see :func:`vessels_of`); M2UNetError on a file it cannot use."""
    vessels, fov, photograph, review = vessels_of(path, options["kind"], options["mask"], options["model"])
    try:
        result = measure(vessels, fov, options["pixel_size_um"], field_of_view_deg=options["field_of_view_deg"], name=name)
    except (MemoryError, ValueError) as error:
        raise M2UNetError(f"{path}: measuring failed ({type(error).__name__}: {str(error).splitlines()[0][:120]})") from None
    result.summary["note"] = with_review(result.summary["note"], review)
    return result, photograph


def with_review(note: str | None, review: str | None) -> str:
    """A measurements row's note with the map's review added: measures of a map that failed mislead, so the row says
    so beside them (m2unet.inference.review)."""
    return "; ".join(filter(None, (note, review and f"map to look at before use: {review}")))


def unique_name(stem: Path, used: set[str]) -> str:
    """The image name for outputs: the stem (with its sub-folder), made unique within the batch."""
    name, counter = stem.as_posix(), 2
    while name in used:
        name, counter = f"{stem.as_posix()}_{counter}", counter + 1
    used.add(name)
    return name
