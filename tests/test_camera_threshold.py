"""The threshold chosen under simulated camera changes: the best mean F1 over the changes, counted once per photograph."""

from __future__ import annotations

import numpy as np
import pytest

from m2unet.evaluation import metrics as M
from m2unet.evaluation.camera_shift import resized_by, unchanged
from m2unet.evaluation.camera_threshold import counts_under_changes, threshold_under_changes


def counts_with_best_at(threshold: float, height: float) -> dict:
    """Counts whose F1 over the thresholds is height − (t − threshold)², built from tp, fp and fn."""
    grid = M.thresholds()
    f1 = height - (grid - threshold) ** 2
    tp = np.full(grid.shape, 1000.0)
    wrong = 2 * tp * (1 / f1 - 1)  # F1 = 2tp / (2tp + fp + fn)
    return {"tp": tp, "fp": wrong / 2, "fn": wrong / 2, "tn": np.zeros_like(tp)}


def test_the_mean_over_changes_chooses_between_their_own_best_thresholds():
    totals = {"as it is": counts_with_best_at(0.6, 0.8), "blurred": counts_with_best_at(0.4, 0.7)}
    assert [M.best_threshold(c)[0] for c in totals.values()] == pytest.approx([0.6, 0.4])
    threshold, f1 = threshold_under_changes(totals)
    assert threshold == pytest.approx(0.5)  # the mean of two such parabolas peaks halfway, whatever their heights
    assert f1 == pytest.approx({"as it is": 0.79, "blurred": 0.69})
    weighted = {**totals, "blurred again": counts_with_best_at(0.4, 0.5)}
    assert threshold_under_changes(weighted)[0] == pytest.approx(round(1.4 / 3, 3))  # each change counts once


def test_counts_are_pooled_over_photographs_and_cached(tmp_path):
    rng = np.random.default_rng(0)
    photos = [(f"p{i}", rng.random((64, 64, 3)).astype(np.float32), rng.random((64, 64)) > 0.8, np.ones((64, 64), bool)) for i in range(2)]
    calls = []

    def predict(image):
        calls.append(image.shape)
        return image[..., 1]

    changes = {"as it is": unchanged, "half size": resized_by(0.5)}
    first = counts_under_changes(predict, photos, changes, cache=tmp_path)
    assert calls == [(64, 64, 3), (32, 32, 3)] * 2
    for name, photo_counts in (("as it is", [M.threshold_counts(p[1][..., 1], p[2], p[3]) for p in photos]),):
        assert np.array_equal(first[name]["tp"], M.sum_counts(photo_counts)["tp"])
    assert first["half size"]["tp"][0] + first["half size"]["fn"][0] < first["as it is"]["tp"][0] + first["as it is"]["fn"][0]  # fewer pixels
    again = counts_under_changes(predict, photos, changes, cache=tmp_path)
    assert len(calls) == 4 and all(np.array_equal(again[k]["fp"], first[k]["fp"]) for k in changes)  # read, not run again
