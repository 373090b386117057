"""Box-counting (Minkowski–Bouligand) fractal dimension D0 of a vessel mask.

Definition: the grid starts at the top-left corner of the mask's bounding box (first row and column that
hold a vessel pixel); for box sizes s = 2, 4, 8, … up to the largest power of two not above 1/16 of the
bounding box's longer side (DRIVE: 2–32 px; HRF: 2–128 px), N(s) is the number of s×s boxes that contain at least one vessel pixel. D0 is the slope of the least-squares line
through (log 1/s, log N(s)). A filled disc gives 2, a straight line 1, a Koch curve log 4 / log 3 ≈ 1.262
(tests/test_measure.py). Larger boxes would count the border of a filled shape
more than its area (a disc of radius R measured up to boxes of R/2 gives 1.94, not 2); smaller would leave
too few sizes for a fit.
"""

from __future__ import annotations

import numpy as np

SMALLEST_BOX = 2
LARGEST_BOX_FRACTION = 16  # the largest box is at most 1/16 of the longer side: a filled disc then measures ≥ 1.97


def box_sizes(extent: int) -> list[int]:
    """Box sizes 2, 4, … up to the largest power of two ≤ extent / 16."""
    sizes, size = [], SMALLEST_BOX
    while size <= extent / LARGEST_BOX_FRACTION:
        sizes.append(size)
        size *= 2
    return sizes


def box_counts(mask: np.ndarray, sizes: list[int]) -> np.ndarray:
    """N(s): boxes of each size (powers of two, ascending), on a grid from the mask's top-left corner, that
    hold any True pixel. Each level is the 2×2 "any" of the one below, so all sizes cost one pass."""
    top = sizes[-1]
    h, w = -(-mask.shape[0] // top) * top, -(-mask.shape[1] // top) * top
    level = np.zeros((h, w), dtype=bool)
    level[: mask.shape[0], : mask.shape[1]] = mask
    size, counts = 1, {}
    while size < top:
        level = level.reshape(level.shape[0] // 2, 2, level.shape[1] // 2, 2).any(axis=(1, 3))
        size *= 2
        counts[size] = int(np.count_nonzero(level))
    return np.asarray([counts[s] for s in sizes])


def fractal_dimension(mask: np.ndarray) -> float:
    """Box-counting dimension D0 of a bool mask (NaN when it is empty or spans under 32 px)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return float("nan")
    crop = mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    sizes = box_sizes(max(crop.shape))
    if len(sizes) < 2:
        return float("nan")
    counts = box_counts(crop, sizes)
    slope = np.polyfit(np.log(1.0 / np.asarray(sizes, dtype=float)), np.log(counts), 1)[0]
    return float(slope)
