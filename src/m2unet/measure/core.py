"""``m2unet.measure``: from a binary vessel map to per-image, per-segment and per-junction measures.

All measures are computed in pixels; with a pixel size (given, or from the camera's field angle and the
FOV diameter, see :mod:`m2unet.measure.disc`) every length and width is also given in micrometres.
The definitions are in the sub-modules (centreline, segments, junctions, fractal, disc) and in the README.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputFileError, M2UNetError
from .centreline import Centreline, centreline
from .disc import disc_centre, disc_diameter_px, pixel_size_from_field, zone_b
from .fractal import fractal_dimension
from .junctions import junction_rows
from .ragged import starts_of
from .segments import segment_rows

NAN = float("nan")
# Clean-up before measuring, at the scale of a DRIVE image (FOV ≈ 540 px wide; areas scale with the FOV
# diameter squared): 8-connected specks under SPECK_PX pixels are dropped (a speck is two end points and a
# segment: on DRIVE they doubled the end points of the model's maps), holes under HOLE_PX pixels filled
# (a hole in a wide vessel is a loop with two false junctions).
SPECK_PX, HOLE_PX, REFERENCE_FOV_PX = 20, 10, 540
INVERTED_DENSITY = 0.5  # retinal vessels cover ~8–15 % of the FOV; over half, the map is likely inverted (a note, not an error)
# Per-image columns, in order (measurements.csv). Lengths and widths also come in µm when a scale is known.
SUMMARY_COLUMNS = (
    "image", "width_px", "height_px", "fov_area_px2", "fov_diameter_px", "pixel_size_um",
    "vessel_density", "vessel_area_px2", "centreline_length_px", "length_density_per_px",
    "fractal_dimension", "segments", "end_points", "bifurcations", "crossings",
    "tortuosity_median", "tortuosity_length_weighted", "curvature_deg_per_100px",
    "width_median_px", "width_p90_px", "width_mean_px",
    "disc_x_px", "disc_y_px", "disc_diameter_px",
    "zone_b_vessel_density", "zone_b_length_px", "zone_b_fractal_dimension", "zone_b_segments", "zone_b_bifurcations",
    "zone_b_crossings", "zone_b_tortuosity_median", "zone_b_width_median_px",
    "centreline_length_um", "length_density_per_mm", "width_median_um", "width_p90_um", "width_mean_um",
    "disc_diameter_um", "zone_b_length_um", "zone_b_width_median_um", "note",
)
SEGMENT_COLUMNS = (
    "image", "segment", "kind", "x_start", "y_start", "x_end", "y_end", "length_px", "chord_px", "tortuosity",
    "turning_deg", "curvature_deg_per_100px", "width_median_px", "width_mean_px", "orientation_deg", "in_zone_b",
    "length_um", "width_median_um",
)
JUNCTION_COLUMNS = ("image", "junction", "x", "y", "kind", "branches", "angle_deg", "angles_deg", "in_zone_b")


@dataclass
class Measurements:
    """What :func:`measure` returns: ``summary`` (one dict, the measurements.csv row), ``segments`` and
    ``junctions`` (lists of dicts, the rows of segments.csv / junctions.csv), and what the picture needs."""

    summary: dict
    segments: list[dict]
    junctions: list[dict]
    vessels: np.ndarray = field(repr=False)
    fov: np.ndarray = field(repr=False)
    line: Centreline | None = field(default=None, repr=False)
    widths: list[np.ndarray] = field(default_factory=list, repr=False)
    zone: np.ndarray | None = field(default=None, repr=False)


def as_vessel_mask(vessels, name: str = "<array>") -> np.ndarray:
    """A bool H×W vessel mask from a file path or an array (bool; integers ≥ half of full scale; floats ≥ 0.5)."""
    from ..data.io import read_binary

    if isinstance(vessels, (str, os.PathLike)):
        return read_binary(vessels)
    array = np.asarray(vessels)
    if array.ndim == 3 and array.shape[2] in (3, 4):
        array = array[..., :3].max(axis=2)
    if array.ndim != 2:
        raise InputFileError(name, f"a vessel map must be one H×W image, got shape {array.shape}")
    if array.dtype == np.bool_:
        return array.copy()
    if np.issubdtype(array.dtype, np.integer):
        return array >= (np.iinfo(array.dtype).max + 1) // 2 if array.max(initial=0) > 1 else array > 0
    return np.nan_to_num(array.astype(np.float32)) >= 0.5


def clean(mask: np.ndarray, fov_diameter_px: float) -> np.ndarray:
    """The vessel mask without specks and small holes (see SPECK_PX, HOLE_PX)."""
    from scipy import ndimage

    scale = (fov_diameter_px / REFERENCE_FOV_PX) ** 2
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3)))
    sizes = np.bincount(labels.ravel())
    kept = (sizes >= SPECK_PX * scale)[labels] & mask
    holes, _ = ndimage.label(~kept)  # background regions, 4-connected
    sizes = np.bincount(holes.ravel())
    return kept | ((sizes < HOLE_PX * scale)[holes] & (holes > 0))


def _scale(fov: np.ndarray, pixel_size_um: float | None, field_of_view_deg: float | None) -> tuple[float, float | None]:
    from ..data.scale import fov_diameter

    diameter = float(fov_diameter(fov))  # the disc's, also where the frame cuts it (m2unet.data.scale)
    if pixel_size_um is None and field_of_view_deg is not None:
        pixel_size_um = pixel_size_from_field(field_of_view_deg, diameter)
    if pixel_size_um is not None and not pixel_size_um > 0:
        raise M2UNetError(f"pixel size must be positive, got {pixel_size_um}")
    return diameter, pixel_size_um


def _median(values) -> float:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else NAN


def _graph_summary(segments: list[dict], widths: list[np.ndarray], junctions: list[dict], line: Centreline | None) -> dict:
    """Counts, tortuosity and width statistics over all segments and junctions."""
    lengths = np.array([row["length_px"] for row in segments], dtype=float)
    tortuous = np.array([row["tortuosity"] for row in segments], dtype=float)
    finite = np.isfinite(tortuous)
    all_widths = np.concatenate(widths) if widths else np.zeros(0)
    total = float(lengths.sum())
    return {
        "centreline_length_px": total, "segments": len(segments),
        "end_points": int((line.degree == 1).sum()) if line is not None else 0,
        "bifurcations": sum(row["kind"] == "bifurcation" for row in junctions),
        "crossings": sum(row["kind"] == "crossing" for row in junctions),
        "tortuosity_median": _median(tortuous),
        "tortuosity_length_weighted": float(np.average(tortuous[finite], weights=lengths[finite])) if finite.any() and lengths[finite].sum() > 0 else NAN,
        "curvature_deg_per_100px": 100 * sum(row["turning_deg"] for row in segments) / total if total > 0 else NAN,
        "width_median_px": _median(all_widths), "width_p90_px": float(np.percentile(all_widths, 90)) if all_widths.size else NAN,
        "width_mean_px": float(all_widths.mean()) if all_widths.size else NAN,
    }


def _zone_b_summary(result: Measurements) -> dict:
    """The zone B ring: vessel density, centreline length and fractal dimension inside it; segments whose
    midpoint lies in it; junctions in it."""
    zone = result.zone & result.fov
    inside = [row for row in result.segments if row["in_zone_b"]]
    widths = [w for row, w in zip(result.segments, result.widths, strict=True) if row["in_zone_b"]]
    vessels = result.vessels & zone
    skeleton_length = float(sum(row["length_px"] for row in inside))
    return {
        "zone_b_vessel_density": float(vessels.sum() / zone.sum()) if zone.any() else NAN,
        "zone_b_length_px": skeleton_length, "zone_b_fractal_dimension": fractal_dimension(vessels),
        "zone_b_segments": len(inside),
        "zone_b_bifurcations": sum(row["kind"] == "bifurcation" and row["in_zone_b"] for row in result.junctions),
        "zone_b_crossings": sum(row["kind"] == "crossing" and row["in_zone_b"] for row in result.junctions),
        "zone_b_tortuosity_median": _median([row["tortuosity"] for row in inside]),
        "zone_b_width_median_px": _median(np.concatenate(widths)) if widths else NAN,
    }


def _in_units(summary: dict, segments: list[dict], pixel_size_um: float | None) -> None:
    """Fill the micrometre columns (left empty without a pixel size)."""
    size = pixel_size_um if pixel_size_um else NAN
    for column in ("centreline_length", "width_median", "width_p90", "width_mean", "disc_diameter", "zone_b_length", "zone_b_width_median"):
        summary[f"{column}_um"] = summary[f"{column}_px"] * size
    summary["length_density_per_mm"] = summary["length_density_per_px"] * 1000.0 / size
    for row in segments:
        row["length_um"] = row["length_px"] * size
        row["width_median_um"] = row["width_median_px"] * size


def measure(vessels, fov=None, pixel_size_um: float | None = None, field_of_view_deg: float | None = None,
            name: str = "") -> Measurements:
    """Measure a binary vessel map (see the module docstring and the README's table of measures).

    Args:
        vessels: a file (any binary mask, vessels white) or an array H×W (bool, integer ≥ half scale, float ≥ 0.5).
        fov: the field of view, bool H×W (or a mask file); None: the whole image.
        pixel_size_um: micrometres per pixel; adds the ``*_um`` / ``*_per_mm`` values.
        field_of_view_deg: the camera's field angle, for the pixel size when it is not given (see disc.py).
        name: the image name written in the ``image`` column.
    """
    from ..data.io import read_binary

    mask = as_vessel_mask(vessels, name or "<array>")
    if fov is None:
        fov = np.ones(mask.shape, dtype=bool)
    else:
        fov = read_binary(fov) if isinstance(fov, (str, os.PathLike)) else np.asarray(fov).astype(bool)
        if fov.shape != mask.shape:
            raise InputFileError(name or "<array>", f"FOV mask {fov.shape[1]}×{fov.shape[0]} does not match the vessel map ({mask.shape[1]}×{mask.shape[0]})")
        if not fov.any():
            raise InputFileError(name or "<array>", "the FOV mask is empty")
    diameter, pixel_size_um = _scale(fov, pixel_size_um, field_of_view_deg)
    mask = clean(mask & fov, diameter) & fov
    line = centreline(mask) if mask.any() else None
    internal = np.zeros(0, dtype=bool)
    junctions: list[dict] = []
    segments: list[dict] = []
    widths: list[np.ndarray] = []
    if line is not None:
        junctions, internal = junction_rows(line)
        segments, widths = segment_rows(mask, line, ~internal)
    summary = dict.fromkeys(SUMMARY_COLUMNS, NAN)
    fov_area = int(fov.sum())
    summary.update(image=name, width_px=mask.shape[1], height_px=mask.shape[0], fov_area_px2=fov_area, fov_diameter_px=diameter,
                   pixel_size_um=pixel_size_um if pixel_size_um else NAN, vessel_area_px2=int(mask.sum()),
                   vessel_density=float(mask.sum() / fov_area), fractal_dimension=fractal_dimension(mask), note="")
    summary.update(_graph_summary(segments, widths, junctions, line))
    summary["length_density_per_px"] = summary["centreline_length_px"] / fov_area
    result = Measurements(summary, segments, junctions, mask, fov, line, widths)
    _place_disc(result, diameter, pixel_size_um)
    _in_units(summary, segments, pixel_size_um)
    if not mask.any():
        summary["note"] = "no vessel pixels in the map (inside the FOV)"
    elif not segments:
        summary["note"] = "no centreline segment (only isolated pixels)"
    elif summary["vessel_density"] > INVERTED_DENSITY:
        summary["note"] = f"{summary['vessel_density']:.0%} of the FOV is vessel: black vessels on white? (vessels must be white)"
    for row in segments:
        row["image"] = name
    for index, row in enumerate(junctions):
        row.update(image=name, junction=index)
    return result


def _place_disc(result: Measurements, fov_diameter: float, pixel_size_um: float | None) -> None:
    """Disc centre and diameter, the zone B mask, the in_zone_b flags and the zone B summary."""
    summary = result.summary
    centre = disc_centre(result.line.skeleton, result.line.distance, result.fov, fov_diameter) if result.line is not None else None
    diameter = disc_diameter_px(fov_diameter, pixel_size_um)
    summary["disc_diameter_px"] = diameter
    if centre is None:
        for row in result.segments + result.junctions:
            row["in_zone_b"] = False
        return
    summary["disc_x_px"], summary["disc_y_px"] = centre
    result.zone = zone_b(result.vessels.shape, centre, diameter)

    def inside(x: float, y: float) -> bool:
        return diameter <= np.hypot(x - centre[0], y - centre[1]) <= 1.5 * diameter

    line = result.line
    middle = line.points[starts_of(line.counts) + line.counts // 2]  # each path's middle point (row, col)
    for row in result.segments:
        row["in_zone_b"] = bool(inside(middle[row["path"], 1], middle[row["path"], 0]))
    for row in result.junctions:
        row["in_zone_b"] = bool(inside(row["x"], row["y"]))
    summary.update(_zone_b_summary(result))
