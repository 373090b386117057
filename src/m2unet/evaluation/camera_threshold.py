"""A threshold chosen under simulated camera changes: the best mean F1 over labelled photographs changed as other
cameras change them (:data:`m2unet.evaluation.camera_shift.CAMERA_CHANGES`).

A model's threshold chosen on its own cameras' photographs as they are fits how those cameras draw vessels; a camera it
never saw draws them thinner, blurrier or more compressed, and its maps' best threshold moves (held out of training,
CHASE_DB1's best threshold is higher than the stored one, results/scale/loo.md). Choosing the threshold where the F1
averaged over the changes is highest still uses no photograph of the unseen camera, and on held-out cameras it raised
the held-out test F1 (results/scale/threshold_camera_changes.md). ``m2unet train --threshold-rule camera-changes``
stores it; ``benchmarks/threshold_camera_changes.py`` measures it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ..data.io import write_atomic
from . import metrics as M
from .camera_shift import CAMERA_CHANGES, Change

LabelledPhoto = tuple[str, np.ndarray, np.ndarray, np.ndarray]  # (unique name, image, label, FOV mask)


def counts_under_changes(predict: Callable[[np.ndarray], np.ndarray], photos: Iterable[LabelledPhoto],
                         changes: dict[str, Change] | None = None, cache: Path | None = None,
                         done: Callable[[str], None] | None = None) -> dict[str, dict]:
    """{change: confusion counts inside the FOV at every threshold, pooled over ``photos``, each changed so and run
    through ``predict``} (``changes``: :data:`CAMERA_CHANGES` by default). ``cache``: a folder keeping each
    photograph's counts per change, so a rerun only scores; ``done(name)`` is called after each photograph."""
    changes = CAMERA_CHANGES if changes is None else changes
    totals: dict[str, list[dict]] = {name: [] for name in changes}
    for photo_name, image, label, mask in photos:
        for change_name, change in changes.items():
            totals[change_name].append(cached_counts(predict, change, (image, label, mask), cache, f"{photo_name}-{zlib.crc32(change_name.encode())}"))
        if done:
            done(photo_name)
    return {name: M.sum_counts(many) for name, many in totals.items()}


def cached_counts(predict, change: Change, photo: tuple, cache: Path | None, key: str) -> dict:
    """One photograph's counts under one change, read from ``cache/key.npz`` when there and written there when not."""
    file = cache / f"{key}.npz" if cache is not None else None
    if file is not None and file.is_file():
        return dict(np.load(file))
    image, label, mask = change(*photo)
    counts = M.threshold_counts(predict(image), label, mask)
    if file is not None:
        write_atomic(file, lambda tmp: np.savez(tmp, **counts))  # the temporary keeps .npz
    return counts


def threshold_under_changes(totals: dict[str, dict]) -> tuple[float, dict[str, float]]:
    """The threshold where the F1 averaged over the changes of ``totals`` (:func:`counts_under_changes`) is highest
    (the lowest such on ties), and each change's F1 there."""
    scores = {name: M.f1_score(c["tp"], c["fp"], c["fn"]) for name, c in totals.items()}
    index = int(np.argmax(np.mean(list(scores.values()), axis=0)))
    return index / M.DEFAULT_BINS, {name: float(f1[index]) for name, f1 in scores.items()}
