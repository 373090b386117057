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
from .ragged import group_arc_length, group_count, group_gradient, group_ids, group_median, group_sum, starts_of

STEP = 0.5  # sampling step along the normal (px); the crossing of 0.5 is interpolated between samples
REACH = 2.5  # the edge is searched within distance-transform ± REACH px
TURN_WINDOW = 15  # points over which heading increments are averaged for the turning angle (total_turning)


def tangents(points: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Unit tangents (flat N×2, row/col) of every path (``np.gradient`` along each, normalised; a one-point
    path gets (0, 1))."""
    tangent = group_gradient(points, counts)
    norm = np.hypot(tangent[:, 0], tangent[:, 1])
    norm[norm == 0] = 1.0
    tangent = tangent / norm[:, None]
    tangent[starts_of(counts)[np.asarray(counts) == 1]] = (0.0, 1.0)
    return tangent


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


def widths_along(mask: np.ndarray, line: Centreline, tangent: np.ndarray) -> np.ndarray:
    """Vessel width (px) at every smoothed centreline point (flat, as ``line.points``)."""
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    level = mask.astype(np.float32)
    return edge_distances(level, line.distance, line.points, normal) + edge_distances(level, line.distance, line.points, -normal)


def total_turning(tangent: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The curvature-based tortuosity of every path: total absolute turning ∫|κ| ds (radians) of the smoothed
    centreline.

    The tangent heading is taken at every point; its increments (wrapped into ±π) are averaged over
    TURN_WINDOW points (a moving average that keeps their sum, so a steady bend keeps its full angle while
    the ± wiggle of pixel steps cancels) before their absolute values are summed. A circular arc of angle
    θ turns ≈ θ (a little less: the last pixels at a free end are not reached by the skeleton), a straight
    bar a few degrees. Paths under 3 points turn 0. All paths in one convolution: each path's increments
    are followed by TURN_WINDOW - 1 zeros, so that no window reaches the next path."""
    counts = np.asarray(counts, dtype=np.int64)
    heading = np.arctan2(tangent[:, 0], tangent[:, 1])
    step = np.diff(heading)
    wrapped = (step + np.pi) % (2 * np.pi) - np.pi
    wrapped[(wrapped == -np.pi) & (step > 0)] = np.pi
    step = np.where(np.abs(step) < np.pi, step, wrapped)  # the increments of np.unwrap(heading)
    increments = np.maximum(counts - 1, 0)
    first = starts_of(counts)
    gap = TURN_WINDOW - 1
    block = increments + gap
    values = np.zeros(block.sum() + gap)
    ids = group_ids(increments)
    within = np.arange(increments.sum()) - starts_of(increments)[ids]
    values[gap + starts_of(block)[ids] + within] = step[first[ids] + within]
    averaged = np.abs(np.convolve(values, np.full(TURN_WINDOW, 1.0 / TURN_WINDOW), mode="valid"))
    turning = group_sum(averaged[: block.sum()], block)
    return np.where(counts >= 3, turning, 0.0)


def _usable_widths(width: np.ndarray, along: np.ndarray, line: Centreline) -> np.ndarray:
    """Mask of the width samples a segment's width uses: those farther than its radius (half its median width)
    from a junction end; all of them where that leaves under 3."""
    counts = line.counts
    ids = group_ids(counts)
    length = along[starts_of(counts) + counts - 1]
    radius = (group_median(width, counts) / 2)[ids]
    inner = np.ones(len(width), dtype=bool)
    inner &= ~(line.degree[line.ends[:, 0]] > 2)[ids] | (along > radius)
    inner &= ~(line.degree[line.ends[:, 1]] > 2)[ids] | (along < length[ids] - radius)
    return inner | (group_count(inner, counts) < 3)[ids]


def segment_rows(mask: np.ndarray, line: Centreline, keep: np.ndarray) -> tuple[list[dict], list[np.ndarray]]:
    """One dict per kept path (geometry and width measures in pixels, see the module docstring), and the
    widths along each kept path's centreline (junction ends left out)."""
    points, counts = line.points, line.counts
    tangent = tangents(points, counts)
    width = widths_along(mask, line, tangent)
    along = group_arc_length(points, counts)
    first, last = starts_of(counts), starts_of(counts) + counts - 1
    length = along[last]
    chord = np.where(line.closed, 0.0, np.hypot(*(points[last] - points[first]).T))
    usable = _usable_widths(width, along, line)
    used = group_count(usable, counts)
    width_median = group_median(width[usable], used)
    width_mean = group_sum(width[usable], used) / np.maximum(used, 1)
    turning = np.degrees(total_turning(tangent, counts))
    d_row, d_col = (points[last] - points[first]).T
    with np.errstate(divide="ignore", invalid="ignore"):
        columns = {
            "x_start": points[first, 1], "y_start": points[first, 0], "x_end": points[last, 1], "y_end": points[last, 0],
            "length_px": length, "chord_px": chord, "tortuosity": np.where(chord > 0, length / chord, np.nan),
            "turning_deg": turning, "curvature_deg_per_100px": np.where(length > 0, 100 * turning / length, np.nan),
            "width_median_px": width_median, "width_mean_px": np.where(used > 0, width_mean, np.nan),
            "orientation_deg": np.degrees(np.arctan2(-d_row, d_col)) % 180.0,
        }
    chosen = np.flatnonzero(keep)
    table = {name: values[chosen].tolist() for name, values in columns.items()}
    kinds = [_end_kind(a, b) for a, b in zip(line.degree[line.ends[chosen, 0]].tolist(), line.degree[line.ends[chosen, 1]].tolist(), strict=True)]
    rows = [{"segment": number, "path": int(index), **{name: table[name][number] for name in table},
             "kind": "loop" if line.closed[index] else kinds[number]} for number, index in enumerate(chosen)]
    widths = np.split(width[usable], starts_of(used)[1:])
    return rows, [widths[index] for index in chosen]


def _end_kind(first: int, last: int) -> str:
    free = int(first == 1) + int(last == 1)
    return ("junction-junction", "junction-end", "isolated")[free]
