"""Metric functions over counts: hand-made tiny masks, and scikit-learn on random data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from m2unet.evaluation import metrics as M
from m2unet.evaluation.evaluate import ImageCounts, summarise

PREDICTION = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 0]], dtype=bool)
LABEL = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0]], dtype=bool)


def test_binary_counts_and_metrics_on_a_hand_made_mask():
    counts = M.binary_counts(PREDICTION, LABEL)
    assert counts == {"tp": 2, "fp": 1, "fn": 1, "tn": 5}
    values = M.summary(counts)
    assert values["precision"] == pytest.approx(2 / 3)
    assert values["sensitivity"] == pytest.approx(2 / 3)
    assert values["f1"] == pytest.approx(2 / 3)
    assert values["jaccard"] == pytest.approx(2 / 4)
    assert values["accuracy"] == pytest.approx(7 / 9)
    assert values["specificity"] == pytest.approx(5 / 6)
    assert values["mcc"] == pytest.approx((2 * 5 - 1 * 1) / np.sqrt(3 * 3 * 6 * 6))


def test_mask_excludes_pixels_and_true_negatives_change_only_tn_metrics():
    mask = np.ones((3, 3), dtype=bool)
    mask[0, 1] = False  # the false positive leaves the FOV
    assert M.binary_counts(PREDICTION, LABEL, mask) == {"tp": 2, "fp": 0, "fn": 1, "tn": 5}
    base = M.binary_counts(PREDICTION, LABEL)
    more = M.add_true_negatives(base, 91)  # e.g. pixels a crop removed
    assert more["tn"] == 96
    assert M.summary(more)["f1"] == M.summary(base)["f1"]
    assert M.summary(more)["accuracy"] == pytest.approx(98 / 100)
    assert M.summary(more)["specificity"] == pytest.approx(96 / 97)


def test_empty_cases_are_zero_not_nan():
    counts = M.binary_counts(np.zeros((2, 2), bool), np.zeros((2, 2), bool))
    values = M.summary(counts)
    assert values["f1"] == 0.0 and values["precision"] == 0.0 and values["mcc"] == 0.0
    assert values["accuracy"] == 1.0


def test_threshold_counts_on_a_tiny_probability_map():
    probability = np.array([[0.9, 0.6, 0.1], [0.4, 0.5, 0.2], [0.0, 1.0, 0.3]])
    counts = M.threshold_counts(probability, LABEL, bins=10)
    # threshold 0.5: predicted {0.9, 0.6, 0.5, 1.0} → label hits at 0.9 and 0.5
    assert M.at_threshold(counts, 0.5) == {"tp": 2, "fp": 2, "fn": 1, "tn": 4}
    assert M.at_threshold(counts, 0.0) == {"tp": 3, "fp": 6, "fn": 0, "tn": 0}
    for t in np.arange(11) / 10:
        assert M.at_threshold(counts, t) == M.binary_counts(probability >= t - 1e-12, LABEL)
    # best: threshold 0.2 predicts 7 pixels, all 3 vessels among them → F1 = 6/10 (0.5 gives 4/7)
    assert M.best_threshold(counts, bins=10) == (0.2, pytest.approx(6 / 10))


def _random_scores(rng, n, on_grid):
    label = rng.random(n) < 0.15
    score = np.clip(rng.normal(0.35 + 0.3 * label, 0.2), 0, 1)
    if on_grid:
        score = np.round(score * 1000) / 1000
    return score, label


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_curves_match_sklearn_exactly_when_scores_lie_on_the_threshold_grid(seed):
    score, label = _random_scores(np.random.default_rng(seed), 20000, on_grid=True)
    counts = M.threshold_counts(score, label)
    assert M.roc_auc(counts) == pytest.approx(sk.roc_auc_score(label, score), abs=1e-12)
    assert M.average_precision(counts) == pytest.approx(sk.average_precision_score(label, score), abs=1e-12)
    precision, recall, threshold = M.pr_curve(counts)
    sk_precision, sk_recall, sk_threshold = sk.precision_recall_curve(label, score)
    # every operating point of sklearn (one per distinct score) is one of ours, with equal P and R
    index = np.searchsorted(np.round(threshold * 1000), np.round(sk_threshold * 1000))
    np.testing.assert_allclose(precision[index], sk_precision[:-1], atol=1e-12)
    np.testing.assert_allclose(recall[index], sk_recall[:-1], atol=1e-12)
    sk_f1 = np.max(2 * sk_precision * sk_recall / np.maximum(sk_precision + sk_recall, 1e-300))
    assert M.best_threshold(counts)[1] == pytest.approx(sk_f1, abs=1e-12)


def test_curves_on_continuous_scores_stay_within_the_bin_quantisation_bound():
    """Binning into 1000 bins only loses the order of scores inside one bin. For AUC such a (positive, negative)
    pair counts ½ instead of 0 or 1, so |error| ≤ ½·Σ pos_k·neg_k/(P·N), a bound that is tight enough to test.
    For AP every positive of bin k is scored at the bin's end precision instead of its own; both lie in
    [lo_k, hi_k], so |error| ≤ Σ (pos_k/P)·(hi_k − lo_k). That bound is loose (the top bins, with few pixels
    above them, dominate it), so AP is also held to 1e-3: over seeds the observed error is ≈ 5e-4,
    a systematic half-bin effect, and a wrong AP formula is off by far more (see the exact grid test)."""
    score, label = _random_scores(np.random.default_rng(7), 50000, on_grid=False)
    counts = M.threshold_counts(score, label)
    auc_bound = M.roc_auc_bin_error(counts)
    assert 0 < auc_bound < 1e-3  # the bound is small, so the check below means something
    assert abs(M.roc_auc(counts) - sk.roc_auc_score(label, score)) <= auc_bound + 1e-12

    tp, fp = counts["tp"].astype(float), counts["fp"].astype(float)
    pos, neg = tp - np.append(tp[1:], 0), fp - np.append(fp[1:], 0)
    tp0, fp0 = np.append(tp[1:], 0), np.append(fp[1:], 0)  # counts from the bins above
    hi = np.where(pos > 0, (tp0 + pos) / np.maximum(tp0 + fp0 + pos, 1), 0)
    lo = np.where(pos > 0, (tp0 + 1) / np.maximum(tp0 + fp0 + 1 + neg, 1), 0)
    ap_bound = float(np.sum(pos / tp[0] * (hi - lo)))
    ap_error = abs(M.average_precision(counts) - sk.average_precision_score(label, score))
    assert ap_error <= ap_bound + 1e-12
    assert ap_error < 1e-3
    # quantising the scores first makes it exact again
    quantised = np.floor(score * 1000 + 1e-9) / 1000
    assert M.roc_auc(counts) == pytest.approx(sk.roc_auc_score(label, quantised), abs=1e-12)


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.72])
def test_binary_metrics_match_sklearn(threshold):
    score, label = _random_scores(np.random.default_rng(3), 5000, on_grid=False)
    counts = M.at_threshold(M.threshold_counts(score, label), threshold)
    predicted = score >= threshold
    values = M.summary(counts)
    assert values["f1"] == pytest.approx(sk.f1_score(label, predicted), abs=1e-12)
    assert values["jaccard"] == pytest.approx(sk.jaccard_score(label, predicted), abs=1e-12)
    assert values["accuracy"] == pytest.approx(sk.accuracy_score(label, predicted), abs=1e-12)
    assert values["mcc"] == pytest.approx(sk.matthews_corrcoef(label, predicted), abs=1e-12)
    assert values["sensitivity"] == pytest.approx(sk.recall_score(label, predicted), abs=1e-12)
    assert values["specificity"] == pytest.approx(sk.recall_score(~label, ~predicted), abs=1e-12)
    assert values["precision"] == pytest.approx(sk.precision_score(label, predicted), abs=1e-12)


def test_bootstrap_interval_brackets_the_pooled_f1_and_collapses_for_identical_images():
    rng = np.random.default_rng(5)
    images = [M.threshold_counts(*_random_scores(rng, 3000, on_grid=False)[::-1][::-1]) for _ in range(12)]
    pooled = M.sum_counts(images)
    f1 = float(M.f1_score(*(M.at_threshold(pooled, 0.5)[k] for k in ("tp", "fp", "fn"))))
    interval = M.bootstrap_f1(images, 0.5, resamples=500, seed=1)
    assert interval["low"] < f1 < interval["high"]
    assert interval == M.bootstrap_f1(images, 0.5, resamples=500, seed=1)  # reproducible
    best = M.bootstrap_f1(images, None, resamples=500, seed=1)
    assert best["low"] >= interval["low"] - 1e-12  # re-tuning the threshold can only raise F1
    same = M.bootstrap_f1([images[0]] * 5, 0.5, resamples=200)
    assert same["low"] == pytest.approx(same["high"])


def test_summarise_pools_counts_and_keeps_protocols_apart():
    rng = np.random.default_rng(11)
    per_image = []
    for index in range(4):
        score, label = _random_scores(rng, 4000, on_grid=False)
        counts = M.threshold_counts(score, label)
        second = M.binary_counts(rng.random(4000) < 0.2, label)
        per_image.append(ImageCounts(f"im{index}", counts, M.add_true_negatives(counts, 100), counts, second, M.add_true_negatives(second, 100), second))
    result = summarise(per_image, a_priori=0.5, bootstrap=200)
    pooled = M.sum_counts([item.fov for item in per_image])
    best_t, best_f1 = M.best_threshold(pooled)
    assert result["threshold"]["best_fov"] == best_t
    assert result["pooled"]["fov"]["best"]["f1"] == pytest.approx(best_f1)
    assert result["pooled"]["fov"]["best"]["f1"] >= result["pooled"]["fov"]["a_priori"]["f1"]
    # the added true negatives leave F1 alone but raise accuracy and AUC
    assert result["pooled"]["crop"]["best"]["f1"] == pytest.approx(best_f1)
    assert result["pooled"]["crop"]["best"]["accuracy"] > result["pooled"]["fov"]["best"]["accuracy"]
    assert result["pooled"]["crop"]["roc_auc"] > result["pooled"]["fov"]["roc_auc"]
    observer = M.sum_counts([item.second_fov for item in per_image])
    assert result["second_observer"]["pooled"]["fov"]["f1"] == pytest.approx(float(M.f1_score(observer["tp"], observer["fp"], observer["fn"])))
    f1s = [M.summary(item.second_fov)["f1"] for item in per_image]
    assert result["second_observer"]["per_image"]["fov"]["f1"]["mean"] == pytest.approx(np.mean(f1s))
    assert result["second_observer"]["per_image"]["fov"]["f1"]["std"] == pytest.approx(np.std(f1s, ddof=1))


def test_torch_counts_equal_numpy_counts():
    """Validation counts on the training device (torch) equal the NumPy counts of the evaluation."""
    import torch

    rng = np.random.default_rng(3)
    probability = rng.random((37, 53)).astype(np.float32)
    probability[0, :5] = [0.0, 1.0, 0.5, 0.25, 0.999]  # bin edges
    label = rng.random((37, 53)) < 0.2
    mask = rng.random((37, 53)) < 0.8
    expected = M.threshold_counts(probability, label, mask)
    got = M.threshold_counts_torch(torch.from_numpy(probability), torch.from_numpy(label), torch.from_numpy(mask))
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])
    unmasked = M.threshold_counts_torch(torch.from_numpy(probability), torch.from_numpy(label))
    assert unmasked["tp"][0] + unmasked["fn"][0] == label.sum() and unmasked["fp"][0] + unmasked["tn"][0] == (~label).sum()


def test_paired_bootstrap_difference_cancels_what_both_models_share():
    rng = np.random.default_rng(1)
    positives, miss = rng.integers(2_000, 20_000, size=30), rng.uniform(0.1, 0.4, size=30)  # hard and easy images: shared
    base = np.stack([positives * (1 - miss), positives * miss, positives * miss], axis=1).round()
    better = base + np.stack([positives * 0.01, -positives * 0.005, -positives * 0.01], axis=1).round()
    same = M.paired_bootstrap_f1_difference(base, base)
    assert same["difference"] == 0 and same["low"] == same["high"] == 0 and same["share_positive"] == 0
    ahead = M.paired_bootstrap_f1_difference(better, base, resamples=500)
    pooled = M.f1_score(*better.sum(0)) - M.f1_score(*base.sum(0))
    assert ahead["difference"] == pytest.approx(pooled) and 0 < ahead["low"] <= pooled <= ahead["high"] and ahead["share_positive"] == 1
    unpaired_a, unpaired_b = (M.bootstrap_f1([{"tp": [c[0]], "fp": [c[1]], "fn": [c[2]]} for c in counts], None, resamples=500)
                              for counts in (better, base))
    assert unpaired_a["low"] < unpaired_b["high"]  # the separate intervals overlap, the paired one excludes 0
    with pytest.raises(ValueError, match="same images"):
        M.paired_bootstrap_f1_difference(base, base[:-1])
