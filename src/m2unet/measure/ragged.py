"""Statistics over ragged data: one flat array holding the values of many groups one after another (the
points of every centreline path) and each group's length (``counts``). One sort or one cumulative sum for
all groups instead of a few numpy calls per group: a DRIVE map has ~300 paths, an HRF map ~700.

The results equal the per-group numpy calls they replace (``np.median``, ``np.cumsum``, ``np.gradient``)
up to floating-point rounding (sums are taken in another order).
"""

from __future__ import annotations

import numpy as np


def starts_of(counts: np.ndarray) -> np.ndarray:
    """Index of each group's first element in the flat array."""
    counts = np.asarray(counts, dtype=np.int64)
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64) if counts.size else np.zeros(0, dtype=np.int64)


def group_ids(counts: np.ndarray) -> np.ndarray:
    """Group number of every flat element."""
    return np.repeat(np.arange(len(counts)), counts)


def group_sum(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Sum of each group (0 for an empty group)."""
    return np.bincount(group_ids(counts), weights=values, minlength=len(counts))


def group_count(flags: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Number of True flags in each group."""
    return np.bincount(group_ids(counts), weights=flags.astype(np.float64), minlength=len(counts)).astype(np.int64)


def group_median(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Median of each group (NaN for an empty group): one sort of all values by (group, value)."""
    counts = np.asarray(counts, dtype=np.int64)
    ordered = np.asarray(values, dtype=np.float64)[np.lexsort((values, group_ids(counts)))]
    starts = starts_of(counts)
    filled = counts > 0
    low = np.where(filled, starts + (counts - 1) // 2, 0)
    high = np.where(filled, starts + counts // 2, 0)
    if not ordered.size:
        return np.full(len(counts), np.nan)
    return np.where(filled, (ordered[low] + ordered[high]) / 2, np.nan)


def group_cumsum(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Inclusive cumulative sum (1-D) restarting at each group, rounded exactly as ``np.cumsum`` of each group
    alone (a single running sum minus each group's offset rounds differently, and lengths compared with a
    threshold, as in the end trimming of centreline.py, must not change). Groups of similar length (up to
    the same power of two) are stacked as rows, zero-padded, and summed along the rows."""
    values = np.asarray(values, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.int64)
    out = np.empty_like(values)
    starts = starts_of(counts)
    bucket = np.ceil(np.log2(np.maximum(counts, 1))).astype(np.int64)
    for level in np.unique(bucket[counts > 0]):
        chosen = np.flatnonzero((bucket == level) & (counts > 0))
        columns = np.arange(1 << int(level))
        index = starts[chosen, None] + columns[None, :]
        valid = columns[None, :] < counts[chosen, None]
        rows = np.where(valid, values[np.where(valid, index, 0)], 0.0)
        out[index[valid]] = np.cumsum(rows, axis=1)[valid]
    return out


def group_arc_length(points: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Arc length from each group's first point along its polyline (N×2 points; 0 at every group's start)."""
    steps = np.zeros(len(points))
    if len(points) > 1:
        steps[1:] = np.hypot(*np.diff(points, axis=0).T)
    steps[starts_of(counts)[np.asarray(counts) > 0]] = 0.0
    return group_cumsum(steps, counts)


def group_gradient(points: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``np.gradient(points, axis=0)`` of each group (central differences inside, one-sided at both ends;
    zero for a one-point group)."""
    points = np.asarray(points, dtype=np.float64)
    gradient = np.zeros_like(points)
    if len(points) < 2:
        return gradient
    gradient[1:-1] = (points[2:] - points[:-2]) / 2.0
    starts = starts_of(counts)
    lasts = starts + np.asarray(counts) - 1
    long = np.asarray(counts) >= 2
    gradient[starts[long]] = points[starts[long] + 1] - points[starts[long]]
    gradient[lasts[long]] = points[lasts[long]] - points[lasts[long] - 1]
    gradient[starts[~long & (np.asarray(counts) == 1)]] = 0.0
    return gradient
