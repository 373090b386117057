"""Field-of-view (FOV) mask estimated from a fundus image itself, for images that come without one.

Method: the FOV is the bright disk of the fundus camera against a near-black surround. We take the
per-pixel maximum over R, G, B (the red channel carries most of the fundus signal, the maximum also
covers bluish or greenish captures) on a ≤ ~512 px subsample, threshold it at a quarter of Otsu's
threshold (bounded below by ``min_level``: the surround is near 0, while vignetted FOV borders, e.g. in
CHASE_DB1, are far darker than the FOV centre), and drop isolated noise pixels with a 3×3 majority vote
(which, unlike a blur before the threshold, does not move the FOV border). The mask is then made solid:
every row and every column is filled between its first and last FOV pixel (the FOV is convex), which
removes holes from dark lesions, vessels or the fovea. IoU against the datasets' masks over all their
images: results/fov_iou.md (benchmarks/fov_iou.py).
"""

from __future__ import annotations

import numpy as np


def _box_blur(channel: np.ndarray, radius: int) -> np.ndarray:
    """Mean filter of size (2r+1)² through a summed-area table (numpy only)."""
    if radius <= 0:
        return channel
    padded = np.pad(channel, radius + 1, mode="edge").astype(np.float64)
    table = padded.cumsum(0).cumsum(1)
    k = 2 * radius + 1
    total = table[k:, k:] - table[:-k, k:] - table[k:, :-k] + table[:-k, :-k]
    h, w = channel.shape
    return (total / (k * k))[:h, :w].astype(np.float32)


def _otsu(values: np.ndarray, bins: int = 256) -> float:
    hist, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    hist = hist.astype(np.float64)
    centers = (edges[:-1] + edges[1:]) / 2
    weight0 = hist.cumsum()
    weight1 = weight0[-1] - weight0
    mean0 = (hist * centers).cumsum() / np.maximum(weight0, 1)
    mean1 = ((hist * centers).sum() - (hist * centers).cumsum()) / np.maximum(weight1, 1)
    between = weight0 * weight1 * (mean0 - mean1) ** 2
    return float(centers[int(np.argmax(between))])


def _fill_convex(mask: np.ndarray) -> np.ndarray:
    def fill_rows(m: np.ndarray) -> np.ndarray:
        out = np.zeros_like(m)
        any_on = m.any(axis=1)
        first = np.argmax(m, axis=1)
        last = m.shape[1] - 1 - np.argmax(m[:, ::-1], axis=1)
        cols = np.arange(m.shape[1])[None, :]
        out[any_on] = (cols >= first[any_on, None]) & (cols <= last[any_on, None])
        return out

    return fill_rows(mask) & fill_rows(mask.T).T


COMPONENT_GRID = 128  # the connected-region search runs on a grid of at most this many cells per side


def _dilate(mask: np.ndarray) -> np.ndarray:
    """3×3 binary dilation (8-connected), numpy only."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    grown = out.copy()
    grown[:, 1:] |= out[:, :-1]
    grown[:, :-1] |= out[:, 1:]
    return grown


def _central_component(mask: np.ndarray) -> np.ndarray:
    """The part of ``mask`` connected to its pixels in the central third of the image (all of it when the
    centre holds none). Searched on a coarse grid (a cell is on when any pixel in it is), so a gap narrower than
    one cell (1/128 of the image side) does not separate regions; each kept cell keeps its own pixels."""
    h, w = mask.shape
    cell = max(1, -(-max(h, w) // COMPONENT_GRID))
    gh, gw = -(-h // cell), -(-w // cell)
    padded = np.zeros((gh * cell, gw * cell), dtype=bool)
    padded[:h, :w] = mask
    coarse = padded.reshape(gh, cell, gw, cell).any(axis=(1, 3))
    seed = np.zeros_like(coarse)
    seed[gh // 3: gh - gh // 3, gw // 3: gw - gw // 3] = True
    region = coarse & seed
    if not region.any():
        return mask
    while True:  # geodesic reconstruction: grow the seed inside the coarse mask until it stops changing
        grown = _dilate(region) & coarse
        if np.array_equal(grown, region):
            break
        region = grown
    if region.sum() == coarse.sum():
        return mask
    keep = np.repeat(np.repeat(region, cell, axis=0), cell, axis=1)[:h, :w]
    return mask & keep


def estimate_fov_mask(image: np.ndarray, min_level: float = 0.04, otsu_fraction: float = 0.25) -> np.ndarray:
    """Boolean H×W FOV mask of an RGB float image in [0, 1] (see the module docstring for the method)."""
    h, w = image.shape[:2]
    step = max(1, min(h, w) // 512)  # work on ≤ ~512 px for speed (subsample first); upsample the result
    small = image[::step, ::step]
    small = small.max(axis=2) if small.ndim == 3 else small
    threshold = max(min_level, otsu_fraction * _otsu(small))
    bright = (small > threshold).astype(np.float32)
    mask = _fill_convex(_central_component(_box_blur(bright, radius=1) > 0.5))
    if not mask.any():
        return np.ones((h, w), dtype=bool)
    if step > 1:
        mask = np.repeat(np.repeat(mask, step, axis=0), step, axis=1)[:h, :w]
        if mask.shape != (h, w):
            mask = np.pad(mask, ((0, h - mask.shape[0]), (0, w - mask.shape[1])), mode="edge")
    return mask
