"""Which vessel maps to look at before trusting them, told from the map alone.

A cohort holds photographs no model segments well: out of focus, compressed to blocks, noisy. The model still draws
a map, so ``segment`` says which maps are unlike those of photographs it segments well, from two measures of the map
that need no label: how much of the FOV it calls vessel (a failed map draws far less: faint vessels fall below the
threshold), and its self-consistency (:func:`m2unet.data.scale.self_consistency`: low when much of the map hovers
near the threshold). Each limit is the lowest value of that measure over the maps that scored F1 ≥ 0.7 on training
photographs of DRIVE, CHASE_DB1 and HRF changed as other and poor cameras change them, measured for each shipped
model (``benchmarks/review_flags.py``, results/scale/review_flags.md, which also counts what the limits catch on the
test photographs). A flag is a reason to look, not a verdict: a retina with few vessels may be flagged and be fine.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

import numpy as np

# Per shipped model, (lowest vessel fraction, lowest self-consistency) over its well-segmented (F1 ≥ GOOD_F1) changed
# training photographs (results/scale/review_flags.md; tests/test_inference_review.py checks them against its rows).
# Maps differ by model (the per-dataset models' maps are less sure than the universal model's), so other weights files
# get no review: their limits are not measured. Nor does the HRF model: off its own camera it segments so few changed
# training photographs well (30 of 180) that limits taken from them flagged 6 of its 29 good test maps, one of them an
# unchanged HRF photograph.
LIMITS: dict[str, tuple[float, float]] = {
    "universal": (0.055, 0.63),
    "drive": (0.06, 0.44),
    "chase_db1": (0.05, 0.34),
}
AUTO_LIMITS_FROM = "universal"  # `--model auto` runs the universal model (its diameter searched): its limits
GOOD_F1 = 0.7  # what "segmented well" means for choosing the limits


def chosen_limits(rows: list[dict]) -> tuple[float, float]:
    """The rule that chose :data:`LIMITS`: over rows (``f1``, ``vessel_fraction``, ``self_consistency``) of one model's
    maps of changed training photographs, the lowest vessel fraction (floored to 0.5 %) and self-consistency (to 0.01)
    among those with F1 ≥ :data:`GOOD_F1`."""
    good = [row for row in rows if row["f1"] >= GOOD_F1]
    fraction = min(row["vessel_fraction"] for row in good)
    consistency = min(row["self_consistency"] for row in good)
    return round(math.floor(fraction / 0.005) * 0.005, 3), round(math.floor(consistency / 0.01) * 0.01, 2)


def limits_for(weights: str | os.PathLike) -> tuple[float, float] | None:
    """The review limits of a shipped model's weights file; None for any other file (not reviewed)."""
    settings = _review_settings(str(Path(weights).resolve()))
    return None if settings is None else settings[1]


@functools.cache
def _review_settings(resolved: str) -> tuple[float, tuple[float, float]] | None:
    """(stored threshold, limits) of a shipped model's file, read once per process: the review runs on every map of a
    batch, and only the shipped files, which do not change under a running process, have limits."""
    from ..weights import pretrained_path, read_metadata, threshold_of

    for name, limits in LIMITS.items():
        if str(pretrained_path(name).resolve()) == resolved:
            return threshold_of(read_metadata(resolved)), limits
    return None


def map_measures(probability: np.ndarray, threshold: float, fov: np.ndarray | None = None) -> tuple[float, float]:
    """(vessel fraction, self-consistency) of a map inside ``fov`` (the whole map when None)."""
    from ..data.scale import self_consistency

    inside = probability if fov is None else probability[fov]
    if inside.size == 0:
        return 0.0, 0.0
    return float((inside >= threshold).mean()), self_consistency(inside, threshold)


def reasons_for(fraction: float, consistency: float, limits: tuple[float, float]) -> list[str]:
    """What is unusual about a map with these measures (:func:`map_measures`), given a model's ``limits``."""
    min_fraction, min_consistency = limits
    reasons = []
    if fraction < min_fraction:
        reasons.append(f"few vessels: {100 * fraction:.1f} % of the FOV (well-segmented photographs: ≥ {100 * min_fraction:.1f} %)")
    if consistency < min_consistency:
        reasons.append(f"unsure map: self-consistency {consistency:.2f} (well-segmented photographs: ≥ {min_consistency:.2f})")
    return reasons


def review_reasons(probability: np.ndarray, threshold: float, fov: np.ndarray | None, limits: tuple[float, float]) -> str | None:
    """Why a map should be looked at before it is used (``; ``-joined), or None when nothing is unusual; ``threshold``:
    the model's stored one, at which ``limits`` were measured."""
    return "; ".join(reasons_for(*map_measures(probability, threshold, fov), limits)) or None


def review_map(probability: np.ndarray, weights: str | os.PathLike, fov: np.ndarray | None) -> str | None:
    """:func:`review_reasons` for a map made by ``weights``, at the model's stored threshold whatever threshold the user
    cut it at (the limits were measured there); None for weights without limits (:func:`limits_for`)."""
    settings = _review_settings(str(Path(weights).resolve()))
    if settings is None:
        return None
    threshold, limits = settings
    return review_reasons(probability, threshold, fov, limits)


def review(probability: np.ndarray, model: str = "auto", *, weights: str | os.PathLike | None = None,
           fov: np.ndarray | None = None) -> str | None:
    """Why to look at a map from :func:`m2unet.segment` before using it, or None: what ``segment`` records in its
    table's ``review`` column. ``model`` / ``weights``: what made the map (only the shipped models have limits);
    ``fov``: the photograph's FOV mask (default: where the map is above 0, as ``segment`` leaves it)."""
    from ..weights import resolve_weights

    return review_map(probability, resolve_weights(model, weights), probability > 0 if fov is None else fov)
