"""Where an artery/vein map plugs in: CRAE, CRVE and the AVR (Knudtson et al. 2003, the revised Parr–Hubbard
formulas) from the zone B segments once each is labelled artery or vein.

A vessel map alone cannot tell arteries from veins, so ``m2unet measure`` does not report these; with an A/V
map (red arteries, blue veins, as in the RITE / AV-DRIVE labels) or labels from an A/V classifier:

    result = m2unet.measure(vessels, fov, pixel_size_um=6.5)
    labels = av_labels(result, av_map)              # {segment: "artery" | "vein"}, by majority under the centreline
    central_equivalents(result.segments, labels)    # {"crae_px": …, "crve_px": …, "avr": …}

Knudtson's procedure: the six widest arterioles (venules) in zone B; the widest is paired with the narrowest,
the next widest with the next narrowest, …, each pair combined into ŵ = f × √(w₁² + w₂²) (f = 0.88 for
arterioles, 0.95 for venules); an odd one out (the middle) is carried over; repeated until one width remains.
Fewer than six vessels: the same procedure over those there are (as most software does; the paper assumes six).
"""

from __future__ import annotations

import math

import numpy as np

ARTERY_FACTOR, VEIN_FACTOR = 0.88, 0.95
LARGEST = 6


def knudtson(widths, factor: float, largest: int = LARGEST) -> float:
    """The central equivalent of the ``largest`` widest widths (NaN without any finite width)."""
    values = sorted((float(w) for w in widths if math.isfinite(w)), reverse=True)[:largest]
    if not values:
        return math.nan
    while len(values) > 1:
        half = len(values) // 2
        combined = [factor * math.hypot(values[i], values[-1 - i]) for i in range(half)]
        if len(values) % 2:
            combined.append(values[half])  # the middle one, carried over
        values = sorted(combined, reverse=True)
    return values[0]


def central_equivalents(segments: list[dict], labels: dict[int, str], column: str = "width_median_px") -> dict:
    """CRAE, CRVE (in the unit of ``column``) and AVR over the zone B segments labelled "artery" / "vein"."""
    unit = column.rsplit("_", 1)[-1]
    kinds = {"artery": [], "vein": []}
    for row in segments:
        kind = labels.get(row["segment"])
        if row.get("in_zone_b") and kind in kinds:
            kinds[kind].append(row[column])
    crae, crve = knudtson(kinds["artery"], ARTERY_FACTOR), knudtson(kinds["vein"], VEIN_FACTOR)
    return {f"crae_{unit}": crae, f"crve_{unit}": crve, "avr": crae / crve if crve > 0 else math.nan,
            "arteries": len(kinds["artery"]), "veins": len(kinds["vein"])}


def av_labels(result, av_map: np.ndarray) -> dict[int, str]:
    """Segment → "artery" or "vein" from an RGB A/V map (H×W×3; red: artery, blue: vein; other colours and
    black: no vote): the majority of the map's pixels under the segment's smoothed centreline."""
    av_map = np.asarray(av_map, dtype=np.float32)
    if av_map.ndim != 3 or av_map.shape[:2] != result.vessels.shape:
        raise ValueError(f"the A/V map must be H×W×3 of the vessel map's size {result.vessels.shape}, got {av_map.shape}")
    red, green, blue = av_map[..., 0], av_map[..., 1], av_map[..., 2]
    artery = (red > 2 * np.maximum(green, blue)) & (red > 0)
    vein = (blue > 2 * np.maximum(red, green)) & (blue > 0)
    labels = {}
    for row in result.segments:
        points = np.rint(result.line.smooth[row["path"]]).astype(int)
        rows = np.clip(points[:, 0], 0, av_map.shape[0] - 1)
        cols = np.clip(points[:, 1], 0, av_map.shape[1] - 1)
        arteries, veins = int(artery[rows, cols].sum()), int(vein[rows, cols].sum())
        if arteries != veins:
            labels[row["segment"]] = "artery" if arteries > veins else "vein"
    return labels
