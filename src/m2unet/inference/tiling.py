"""Tiled inference and flip averaging with any backend (see :mod:`m2unet.inference.backends`): numpy only.

No PyTorch here, so that exported models (ONNX Runtime, OpenVINO) run on small devices without it.
"""

from __future__ import annotations

import numpy as np

from ..data.shape import INPUT_MULTIPLE

MULTIPLE = INPUT_MULTIPLE  # tiles start and end on this grid

# Largest tile side: HRF (3504×2336) runs as 3×2 tiles of 1296×1264; peak RSS stays ~1 GB (results/bench).
MAX_TILE = 1536
# Pixels shared by neighbouring tiles; each keeps the half nearer its own centre (margin ≥ 96 px). The
# network's effective receptive field is wide: on HRF 01_dr, overlap 64 / 128 / 192 gives max |Δp| vs the
# whole image of 0.97 / 0.76 / 0.18 (mean 1.5e-3 / 4.4e-4 / 4.7e-5) and F1@0.5 changes of 2e-3 / 5e-4 / 5e-5.
TILE_OVERLAP = 192


def _ceil16(value: int) -> int:
    return -(-value // MULTIPLE) * MULTIPLE


def tile_windows(length: int, max_tile: int = MAX_TILE, overlap: int = TILE_OVERLAP) -> tuple[int, list[int], list[tuple[int, int]]]:
    """Split one axis of ``length`` pixels into equal windows of at most ``max_tile`` (a multiple of 16).

    Returns ``(size, starts, keep)``: window size, window starts, and for each window the range of output
    pixels ``[lo, hi)`` it provides (keep-centre: overlaps are cut in their middle, so every pixel comes from
    the window where it lies furthest from a tile border). Starts are multiples of 16, so every tile sees the
    same stride-16 sampling grid as the whole image would (the network is not shift-invariant between
    grid phases); the last window may reach into the zero padding up to ``ceil16(length)``. One window of
    ``ceil16(length)`` when the axis fits in ``max_tile``.
    """
    padded = _ceil16(length)
    if padded <= max_tile:
        return padded, [0], [(0, length)]
    max_tile -= max_tile % MULTIPLE
    if max_tile < overlap + 2 * MULTIPLE:
        raise ValueError(f"tile side {max_tile} too small for an overlap of {overlap} px")
    count = -(-(padded - overlap) // (max_tile - overlap))
    while True:
        size = min(_ceil16(-(-(padded + (count - 1) * overlap) // count)), max_tile)
        steps = (padded - size) // MULTIPLE
        starts = [MULTIPLE * round(i * steps / (count - 1)) for i in range(count)]
        if all(b - a <= size - overlap for a, b in zip(starts, starts[1:], strict=False)):
            break
        count += 1  # rounding the starts to 16 shrank an overlap below ``overlap``: one more window
    cuts = [0] + [(starts[i + 1] + starts[i] + size) // 2 for i in range(count - 1)] + [length]
    return size, starts, [(cuts[i], cuts[i + 1]) for i in range(count)]


def predict_tiled(backend, image: np.ndarray, max_tile: int = MAX_TILE, overlap: int = TILE_OVERLAP) -> np.ndarray:
    """Vessel probability (float32 H×W) of an RGB float image H×W×3 with a backend, tile by tile.

    Images whose sides fit in ``max_tile`` run whole (zero-padded to multiples of 16). Larger images run as a
    grid of equal tiles of at most ``max_tile``² with ``overlap`` pixels shared between neighbours, so peak
    memory is bounded by one tile's activations whatever the image size.
    """
    h, w = image.shape[:2]
    tile_h, starts_y, keep_y = tile_windows(h, max_tile, overlap)
    tile_w, starts_x, keep_x = tile_windows(w, max_tile, overlap)
    probability = np.empty((h, w), dtype=np.float32)
    batch = np.zeros((1, 3, tile_h, tile_w), dtype=np.float32)
    for y0, (top, bottom) in zip(starts_y, keep_y, strict=False):
        for x0, (left, right) in zip(starts_x, keep_x, strict=False):
            window = image[y0 : y0 + tile_h, x0 : x0 + tile_w]
            wh, ww = window.shape[:2]
            if (wh, ww) != (tile_h, tile_w):
                batch.fill(0.0)  # the zero padding of an image smaller than one tile
            batch[0, :, :wh, :ww] = window.transpose(2, 0, 1)
            tile = backend(batch)[0, 0]
            probability[top:bottom, left:right] = tile[top - y0 : bottom - y0, left - x0 : right - x0]
    return probability


FLIPS = ((), (1,), (0,), (0, 1))  # identity, horizontal, vertical, both (axes of an H×W×3 image)
# What flip TTA costs (help texts read it here): the kept view runs 4 times; a diameter search's tries on the whole FOV
# run once each and only the diameter it keeps is flipped, its plain map reused; tries on a larger photograph's central
# square are flipped too (m2unet.data.scale.DiameterSearch.run).
TTA_TIME = "up to 4× the time; 3 runs more after a diameter search within the stored range"


def flip_average(predict, image: np.ndarray, first: np.ndarray | None = None) -> np.ndarray:
    """Test-time augmentation: the mean probability over the image and its horizontal, vertical and double flip.

    ``predict`` maps an H×W×3 image to an H×W probability (any backend, tiled or not); 4× its cost, 3× when ``first``
    (``predict(image)``, already run: a diameter search's kept map) is given. Vessel maps have no preferred
    orientation, and the paper trains with both flips, so each view is equally valid.
    """
    total = None
    for axes in FLIPS:
        view = np.ascontiguousarray(np.flip(image, axis=axes)) if axes else image
        probability = first if not axes and first is not None else predict(view)
        probability = np.flip(probability, axis=axes) if axes else probability
        total = probability.astype(np.float32, copy=True) if total is None else total + probability
    return total / len(FLIPS)
