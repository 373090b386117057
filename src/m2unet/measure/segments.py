"""Per-segment measures on the smoothed centreline: length, chord, tortuosity, turning, width, orientation.

Width: at every centreline point, the mask is sampled (bilinear) along the normal of the smoothed
centreline in both directions; each side's edge is where the interpolated mask falls through 0.5 (the
pixel boundary between the last vessel and the first background pixel), sampled every half pixel and
interpolated linearly (the bilinear profile is piecewise linear between pixel lines). The width is the sum of both sides. Points within one vessel radius of a junction
are left out of a segment's width (there the normal runs into the other branches).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .centreline import Centreline

STEP = 0.5  # sampling step along the normal (px); the crossing of 0.5 is interpolated between samples
REACH = 2.5  # the edge is searched within distance-transform ± REACH px
TURN_WINDOW = 15  # points over which heading increments are averaged for the turning angle (total_turning)


def arc_length(points: np.ndarray) -> np.ndarray:
    """Cumulative arc length along a polyline (N×2), starting at 0."""
    return np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(points, axis=0).T))])


def tangents(points: np.ndarray) -> np.ndarray:
    """Unit tangents (N×2, row/col) of a polyline."""
    if len(points) < 2:
        return np.tile([0.0, 1.0], (len(points), 1))
    tangent = np.gradient(points, axis=0)
    norm = np.hypot(tangent[:, 0], tangent[:, 1])
    norm[norm == 0] = 1.0
    return tangent / norm[:, None]


def edge_distances(mask: np.ndarray, distance: np.ndarray, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Distance (px) from each point to the vessel edge along ``normals`` (M×2 unit vectors, row/col); ``mask``
    is the vessel mask as float32 (1 vessel, 0 background)."""
    rows_px = np.clip(np.rint(points[:, 0]).astype(int), 0, mask.shape[0] - 1)  # an extended free end may leave the image
    cols_px = np.clip(np.rint(points[:, 1]).astype(int), 0, mask.shape[1] - 1)
    start = np.maximum(distance[rows_px, cols_px] - REACH, 0.0)
    offsets = np.arange(0.0, 2 * REACH + STEP, STEP)
    along = start[:, None] + offsets[None, :]  # M×K distances along the normal
    rows = points[:, 0, None] + along * normals[:, 0, None]
    cols = points[:, 1, None] + along * normals[:, 1, None]
    values = ndimage.map_coordinates(mask, [rows.ravel(), cols.ravel()], order=1, mode="constant", cval=0.0)
    values = values.reshape(along.shape)
    below = values < 0.5
    below[:, -1] = True  # no crossing within reach: the edge is taken at the far end
    index = np.argmax(below, axis=1)
    rows_i = np.arange(len(points))
    prev = np.maximum(index - 1, 0)
    v0, v1 = values[rows_i, prev], values[rows_i, index]
    fraction = np.where((index > 0) & (v0 > v1), (v0 - 0.5) / np.maximum(v0 - v1, 1e-6), 0.0)
    return along[rows_i, prev] + np.clip(fraction, 0.0, 1.0) * STEP * (index > 0)


def widths_along(mask: np.ndarray, line: Centreline) -> list[np.ndarray]:
    """Vessel width (px) at every smoothed centreline point of every path."""
    if not line.smooth:
        return []
    points = np.concatenate(line.smooth)
    tangent = np.concatenate([tangents(path) for path in line.smooth])
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    level = mask.astype(np.float32)
    width = edge_distances(level, line.distance, points, normal) + edge_distances(level, line.distance, points, -normal)
    return np.split(width, np.cumsum([len(path) for path in line.smooth])[:-1])


def total_turning(points: np.ndarray) -> float:
    """The curvature-based tortuosity: total absolute turning ∫|κ| ds (radians) of the smoothed centreline.

    The tangent heading is taken at every point; its increments are averaged over TURN_WINDOW points (a
    moving average that keeps their sum, so a steady bend keeps its full angle while the ± wiggle of pixel
    steps cancels) before their absolute values are summed. A circular arc of angle θ turns ≈ θ (a little
    less: the last pixels at a free end are not reached by the skeleton), a straight bar a few degrees."""
    if len(points) < 3:
        return 0.0
    tangent = tangents(points)
    increments = np.diff(np.unwrap(np.arctan2(tangent[:, 0], tangent[:, 1])))
    averaged = np.convolve(increments, np.full(TURN_WINDOW, 1.0 / TURN_WINDOW), mode="full")
    return float(np.abs(averaged).sum())


def segment_rows(mask: np.ndarray, line: Centreline, keep: np.ndarray) -> tuple[list[dict], list[np.ndarray]]:
    """One dict per kept path (geometry and width measures in pixels, see the module docstring), and the
    widths along each kept path's centreline (junction ends left out)."""
    widths = widths_along(mask, line)
    rows, kept_widths = [], []
    for index in np.flatnonzero(keep):
        points, width = line.smooth[index], widths[index]
        along = arc_length(points)
        length = float(along[-1])
        chord = 0.0 if line.closed[index] else float(np.hypot(*(points[-1] - points[0])))
        first, last = line.ends[index]
        radius = float(np.median(width)) / 2 if len(width) else 0.0
        inner = np.ones(len(width), dtype=bool)
        if line.degree[first] > 2:
            inner &= along > radius
        if line.degree[last] > 2:
            inner &= along < length - radius
        usable = width[inner] if inner.sum() >= 3 else width
        turning = total_turning(points)
        d_row, d_col = points[-1] - points[0]
        rows.append({
            "segment": len(rows), "path": int(index),
            "x_start": float(points[0, 1]), "y_start": float(points[0, 0]), "x_end": float(points[-1, 1]), "y_end": float(points[-1, 0]),
            "length_px": length, "chord_px": chord, "tortuosity": length / chord if chord > 0 else float("nan"),
            "turning_deg": float(np.degrees(turning)),
            "curvature_deg_per_100px": 100 * float(np.degrees(turning)) / length if length > 0 else float("nan"),
            "width_median_px": float(np.median(usable)) if len(usable) else float("nan"),
            "width_mean_px": float(np.mean(usable)) if len(usable) else float("nan"),
            "orientation_deg": float(np.degrees(np.arctan2(-d_row, d_col)) % 180.0),
            "kind": "loop" if line.closed[index] else _end_kind(line.degree[first], line.degree[last]),
        })
        kept_widths.append(usable)
    return rows, kept_widths


def _end_kind(first: int, last: int) -> str:
    free = int(first == 1) + int(last == 1)
    return ("junction-junction", "junction-end", "isolated")[free]
