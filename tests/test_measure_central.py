"""CRAE / CRVE / AVR once an artery/vein map plugs in (issue 18: the place for an A/V map)."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("skan")

from m2unet.measure import measure  # noqa: E402
from m2unet.measure.central import ARTERY_FACTOR, VEIN_FACTOR, av_labels, central_equivalents, knudtson  # noqa: E402


def test_knudtson_pairs_widest_with_narrowest_and_carries_the_middle():
    f = ARTERY_FACTOR
    # six widths 15, 13, 12, 10, 9, 7: (15, 7) (13, 9) (12, 10), then three: widest with narrowest, middle carried
    a, b, c = f * math.hypot(15, 7), f * math.hypot(13, 9), f * math.hypot(12, 10)
    first, middle, last = sorted([a, b, c], reverse=True)
    pair = f * math.hypot(first, last)
    expected = f * math.hypot(max(pair, middle), min(pair, middle))
    assert knudtson([7, 12, 9, 15, 10, 13, 3, 2], f) == pytest.approx(expected)  # 3 and 2: beyond the six widest
    w = 10.0
    one = f * math.sqrt(2) * w  # six equal widths: three pairs, then one pair and the carried one
    assert knudtson([w] * 6, f) == pytest.approx(f * math.hypot(f * math.sqrt(2) * one, one))
    assert knudtson([w], f) == w and math.isnan(knudtson([], f)) and math.isnan(knudtson([math.nan], f))


def test_central_equivalents_use_labelled_zone_b_segments_only():
    segments = [{"segment": i, "in_zone_b": i < 4, "width_median_px": w} for i, w in enumerate((12.0, 8.0, 15.0, 11.0, 30.0))]
    labels = {0: "artery", 1: "artery", 2: "vein", 3: "vein", 4: "vein"}  # 4 is outside zone B
    values = central_equivalents(segments, labels)
    assert values["crae_px"] == pytest.approx(ARTERY_FACTOR * math.hypot(12, 8))
    assert values["crve_px"] == pytest.approx(VEIN_FACTOR * math.hypot(15, 11))
    assert values["avr"] == pytest.approx(values["crae_px"] / values["crve_px"])
    assert (values["arteries"], values["veins"]) == (2, 2)


def test_av_map_labels_segments_by_the_colour_under_their_centreline():
    mask = np.zeros((200, 200), dtype=bool)
    mask[20:180, 47:54] = True  # 7 px wide: the artery
    mask[20:180, 141:152] = True  # 11 px wide: the vein
    result = measure(mask)
    av_map = np.zeros((200, 200, 3), dtype=np.uint8)
    av_map[mask & (np.arange(200) < 100)[None, :]] = (255, 0, 0)
    av_map[mask & (np.arange(200) >= 100)[None, :]] = (0, 0, 255)
    labels = av_labels(result, av_map)
    by_side = {("left" if row["x_start"] < 100 else "right"): labels[row["segment"]] for row in result.segments}
    assert by_side == {"left": "artery", "right": "vein"}
    for row in result.segments:
        row["in_zone_b"] = True  # as if both crossed zone B
    values = central_equivalents(result.segments, labels)
    assert values["crae_px"] == pytest.approx(7, abs=0.5) and values["crve_px"] == pytest.approx(11, abs=0.5)
    with pytest.raises(ValueError, match="A/V map"):
        av_labels(result, av_map[:100])
