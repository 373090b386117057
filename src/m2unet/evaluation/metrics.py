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
    return counts_from_histograms(positives, negatives)


def threshold_counts_torch(probability, label, mask=None, bins: int = DEFAULT_BINS) -> dict[str, np.ndarray]:
    """:func:`threshold_counts` for torch tensors, computed where they live (e.g. on the GPU during validation).

    Same binning as the NumPy version, in float64 where the device has it, so both give the same counts.
    """
    import torch

    label = label.bool()
    if mask is not None:
        mask = mask.bool()
        probability, label = probability[mask], label[mask]
    else:
        probability, label = probability.reshape(-1), label.reshape(-1)
    dtype = torch.float64 if probability.device.type != "mps" else torch.float32
    index = torch.clamp(torch.floor(probability.to(dtype) * bins + 1e-9), 0, bins).long()
    positives = torch.bincount(index[label], minlength=bins + 1).cpu().numpy()
    negatives = torch.bincount(index[~label], minlength=bins + 1).cpu().numpy()
    return counts_from_histograms(positives, negatives)


def counts_from_histograms(positives: np.ndarray, negatives: np.ndarray) -> dict[str, np.ndarray]:
    """Confusion counts at every threshold bin from per-bin counts of positive and negative pixels."""
    positives, negatives = np.asarray(positives, np.int64), np.asarray(negatives, np.int64)
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


# ---------------------------------------------------------------------------------------------------
# Curves and summaries over per-threshold counts (arrays of length bins+1, index k ↔ threshold k/bins)


def add_true_negatives(counts: dict, extra: int) -> dict:
    """Counts with ``extra`` more true negatives at every threshold: the pixels a crop removed, which the
    paper scores as correctly rejected background ("whole crop" protocol)."""
    out = dict(counts)
    out["tn"] = np.asarray(counts["tn"]) + int(extra)
    return out


def sum_counts(many) -> dict:
    """Pool counts (per image) by summing them."""
    many = list(many)
    if not many:
        raise ValueError("no counts to pool")
    return {key: np.sum([np.asarray(c[key]) for c in many], axis=0) for key in ("tp", "fp", "fn", "tn")}


def at_threshold(counts: dict, threshold: float, bins: int | None = None) -> dict:
    """Scalar counts at ``threshold`` from per-threshold arrays: the grid point k/bins with k = ceil(threshold·bins)
    (``p ≥ threshold`` ⇔ ``p ≥ k/bins`` for probabilities on the grid)."""
    size = len(np.asarray(counts["tp"]))
    bins = size - 1 if bins is None else bins
    index = int(np.clip(np.ceil(threshold * bins - 1e-9), 0, bins))
    return {key: int(np.asarray(counts[key])[index]) for key in ("tp", "fp", "fn", "tn")}


def f1_at(counts: dict, threshold: float) -> float:
    """F1 of per-threshold counts (pooled or of one image) at ``threshold`` (:func:`at_threshold`)."""
    at = at_threshold(counts, threshold)
    return float(f1_score(at["tp"], at["fp"], at["fn"]))


def roc_curve(counts: dict) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) from the highest threshold to the lowest, with (0, 0) and (1, 1) added at the ends."""
    tp, fp, fn, tn = (np.asarray(counts[k], dtype=np.float64)[::-1] for k in ("tp", "fp", "fn", "tn"))
    tpr = recall(tp, fp, fn, tn)
    fpr = _ratio(fp, fp + tn)
    return np.concatenate([[0.0], fpr, [1.0]]), np.concatenate([[0.0], tpr, [1.0]])


def roc_auc(counts: dict) -> float:
    """Area under the ROC curve: trapezoid over the (FPR, TPR) points of all thresholds.

    With scores on the threshold grid this equals the exact (Mann-Whitney) AUC, ties counted ½; with
    continuous scores the only error is that pairs inside one bin count ½ (see :func:`roc_auc_bin_error`).
    """
    fpr, tpr = roc_curve(counts)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def roc_auc_bin_error(counts: dict) -> float:
    """Upper bound of |AUC from binned counts − AUC of the unbinned scores|: ½·Σ_k pos_k·neg_k / (P·N)."""
    tp, fp = np.asarray(counts["tp"], dtype=np.float64), np.asarray(counts["fp"], dtype=np.float64)
    pos = tp - np.append(tp[1:], 0.0)  # positives whose score falls in bin k
    neg = fp - np.append(fp[1:], 0.0)
    total = tp[0] * fp[0]
    return float(0.5 * np.sum(pos * neg) / total) if total > 0 else 0.0


def pr_curve(counts: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, threshold) at every grid threshold where something is predicted positive,
    ordered by increasing threshold (as scikit-learn's ``precision_recall_curve`` minus its end point)."""
    tp, fp, fn = (np.asarray(counts[k], dtype=np.float64) for k in ("tp", "fp", "fn"))
    bins = len(tp) - 1
    keep = (tp + fp) > 0
    return precision(tp, fp)[keep], recall(tp, fp, fn)[keep], (np.arange(bins + 1) / bins)[keep]


def average_precision(counts: dict) -> float:
    """Average precision Σ (R_k − R_{k+1})·P_k over the thresholds (scikit-learn's definition, no interpolation)."""
    tp, fp, fn = (np.asarray(counts[k], dtype=np.float64) for k in ("tp", "fp", "fn"))
    rec = recall(tp, fp, fn)
    prec = precision(tp, fp)
    rec_above = np.append(rec[1:], 0.0)  # recall at the next higher threshold
    return float(np.sum((rec - rec_above) * prec))


METRICS = {
    "f1": f1_score,
    "accuracy": accuracy,
    "sensitivity": sensitivity,
    "specificity": specificity,
    "precision": precision,
    "jaccard": jaccard,
    "mcc": mcc,
}


def summary(counts: dict) -> dict[str, float]:
    """Every binary metric of scalar counts (one operating point), plus the counts themselves."""
    values = {name: float(function(counts["tp"], counts["fp"], counts["fn"], counts["tn"])) for name, function in METRICS.items()}
    values.update({key: int(counts[key]) for key in ("tp", "fp", "fn", "tn")})
    return values


def _resample_weights(n: int, resamples: int, seed: int) -> np.ndarray:
    """Multiplicity of each of ``n`` images in each bootstrap resample (= drawing n with replacement), resamples × n."""
    return np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)


def _interval(scores: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1.0 - level) / 2
    low, high = np.quantile(scores, [alpha, 1.0 - alpha])
    return float(low), float(high)


def paired_bootstrap_f1_difference(counts_a, counts_b, resamples: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Paired bootstrap over images of pooled F1(A) − F1(B), both models at fixed thresholds.

    ``counts_a``, ``counts_b``: per-image (tp, fp, fn), shape n×3, row i the same image for both models. The images
    are resampled together, so what both models share (hard images, faint vessels) cancels and the interval of the
    difference is much narrower than the two models' separate intervals suggest; comparing those is the usual mistake.
    Returns {"difference", "low", "high", "share_positive" (resamples with A ahead), "resamples", "level", "seed"}.
    """
    a, b = np.asarray(counts_a, dtype=np.float64), np.asarray(counts_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 3 or len(a) == 0:
        raise ValueError(f"need two n×3 (tp, fp, fn) arrays over the same images, got {a.shape} and {b.shape}")
    weights = _resample_weights(len(a), resamples, seed)
    pooled_a, pooled_b = weights @ a, weights @ b
    differences = f1_score(*pooled_a.T) - f1_score(*pooled_b.T)
    low, high = _interval(differences, level)
    difference = float(f1_score(*a.sum(axis=0)) - f1_score(*b.sum(axis=0)))
    return {"difference": difference, "low": low, "high": high, "share_positive": float(np.mean(differences > 0)),
            "resamples": resamples, "level": level, "seed": seed}


def bootstrap_f1(per_image: list[dict], threshold: float | None, resamples: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Bootstrap interval over images of the pooled F1.

    ``threshold`` fixed: F1 of the resampled images' pooled counts at that threshold. ``None``: the
    threshold is re-chosen (best F1) inside every resample, i.e. the optimistic protocol's own variance.
    Returns {"low", "high", "resamples", "level", "seed"}.
    """
    n = len(per_image)
    if n == 0:
        raise ValueError("no images to resample")
    stacked = {key: np.stack([np.asarray(c[key], dtype=np.float64) for c in per_image]) for key in ("tp", "fp", "fn")}
    weights = _resample_weights(n, resamples, seed)
    if threshold is not None:
        bins = stacked["tp"].shape[1] - 1
        k = int(np.clip(np.ceil(threshold * bins - 1e-9), 0, bins))
        stacked = {key: value[:, k : k + 1] for key, value in stacked.items()}
    pooled = {key: weights @ value for key, value in stacked.items()}
    scores = f1_score(pooled["tp"], pooled["fp"], pooled["fn"]).max(axis=1)
    low, high = _interval(scores, level)
    return {"low": low, "high": high, "resamples": resamples, "level": level, "seed": seed}
