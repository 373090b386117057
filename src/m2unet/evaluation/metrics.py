"""Segmentation metrics as pure functions over confusion counts.

Counts are computed once per image for a grid of thresholds (a probability p is "vessel" at threshold
t when p ≥ t) and can be pooled over a split by summing. Every metric below takes counts (scalars or
arrays over thresholds) and returns the same shape; 0/0 is defined as 0.
"""

from __future__ import annotations

import numpy as np

DEFAULT_BINS = 1000  # thresholds 0, 1/1000, …, 1 (1001 values)


def thresholds(bins: int = DEFAULT_BINS) -> np.ndarray:
    return np.arange(bins + 1, dtype=np.float64) / bins


def threshold_counts(probability: np.ndarray, label: np.ndarray, mask: np.ndarray | None = None, bins: int = DEFAULT_BINS) -> dict[str, np.ndarray]:
    """Confusion counts at every threshold k/bins (k = 0..bins), inside ``mask`` when given.

    Returns int64 arrays ``tp``, ``fp``, ``fn``, ``tn`` of length bins+1, index k ↔ threshold k/bins.
    Exact for those thresholds: p ≥ k/bins ⇔ floor(p·bins) ≥ k (up to float rounding at the bin edges).
    """
    probability = np.asarray(probability, dtype=np.float64)
    label = np.asarray(label, dtype=bool)
    if probability.shape != label.shape:
        raise ValueError(f"probability {probability.shape} and label {label.shape} differ in shape")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        probability, label = probability[mask], label[mask]
    else:
        probability, label = probability.ravel(), label.ravel()
    index = np.clip(np.floor(probability * bins + 1e-9), 0, bins).astype(np.int64)
    positives = np.bincount(index[label], minlength=bins + 1)
    negatives = np.bincount(index[~label], minlength=bins + 1)
    # predicted positive at threshold k: index ≥ k → reversed cumulative sums
    tp = positives[::-1].cumsum()[::-1]
    fp = negatives[::-1].cumsum()[::-1]
    fn = positives.sum() - tp
    tn = negatives.sum() - fp
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn}


def binary_counts(prediction: np.ndarray, label: np.ndarray, mask: np.ndarray | None = None) -> dict[str, int]:
    """Confusion counts of a binary prediction (e.g. a second human observer) against a label."""
    prediction, label = np.asarray(prediction, dtype=bool), np.asarray(label, dtype=bool)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        prediction, label = prediction[mask], label[mask]
    tp = int(np.count_nonzero(prediction & label))
    fp = int(np.count_nonzero(prediction & ~label))
    fn = int(np.count_nonzero(~prediction & label))
    tn = int(prediction.size - tp - fp - fn)
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn}


def _ratio(numerator, denominator):
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros(np.broadcast(numerator, denominator).shape), where=denominator > 0)


def precision(tp, fp, fn=None, tn=None):
    return _ratio(tp, np.add(tp, fp))


def recall(tp, fp=None, fn=None, tn=None):  # = sensitivity
    return _ratio(tp, np.add(tp, fn))


sensitivity = recall


def specificity(tp=None, fp=None, fn=None, tn=None):
    return _ratio(tn, np.add(tn, fp))


def f1_score(tp, fp, fn, tn=None):  # = Dice
    return _ratio(np.multiply(tp, 2), np.add(np.multiply(tp, 2), np.add(fp, fn)))


dice = f1_score


def jaccard(tp, fp, fn, tn=None):
    return _ratio(tp, np.add(np.add(tp, fp), fn))


def accuracy(tp, fp, fn, tn):
    return _ratio(np.add(tp, tn), np.add(np.add(tp, fp), np.add(fn, tn)))


def mcc(tp, fp, fn, tn):
    tp, fp, fn, tn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn, tn))
    denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return _ratio(tp * tn - fp * fn, denominator)


def best_threshold(counts: dict[str, np.ndarray], bins: int = DEFAULT_BINS) -> tuple[float, float]:
    """(threshold, F1) where F1 over the thresholds grid is highest (the lowest such threshold on ties)."""
    scores = f1_score(counts["tp"], counts["fp"], counts["fn"])
    index = int(np.argmax(scores))
    return index / bins, float(scores[index])
