"""The choice of the FOV diameters a scale-normalised model runs at (m2unet.training.run_diameter)."""

import numpy as np
import pytest

from m2unet.data.scale import run_at
from m2unet.evaluation.metrics import threshold_counts
from m2unet.training.run_diameter import MARGIN, HeldOutImage, candidate_rules, choose_rule, rule_f1


def held_out(dataset: str, fov: int, best: int, rules, wrong_elsewhere: float = 1.0) -> HeldOutImage:
    """A photograph whose map is right when it runs at ``best`` px; elsewhere a fraction ``wrong_elsewhere`` of its
    pixels is noise."""
    rng = np.random.default_rng(fov)
    label = rng.random((64, 64)) < 0.2
    noise = rng.random((64, 64)).astype(np.float32)
    image = HeldOutImage(dataset, fov)
    for target in {run_at(fov, rule) for rule in rules}:
        probability = label.astype(np.float32)
        if target != best:
            probability = np.where(rng.random((64, 64)) < wrong_elsewhere, noise, probability)
        image.counts[target] = threshold_counts(probability, label, np.ones_like(label))
    return image


def test_run_at_clamps_the_photographs_own_diameter():
    assert run_at(540, (1024, 1536)) == 1024 and run_at(3250, (1024, 1536)) == 1536 and run_at(1300, (1024, 1536)) == 1300


def test_small_and_large_photographs_each_choose_their_end_of_the_range():
    rules = candidate_rules(1024)
    scored = [held_out("small", 540, 1280, rules), held_out("small", 560, 1280, rules), held_out("large", 3250, 1536, rules)]
    rule, f1 = choose_rule(scored, 1024, 0.5)
    assert rule == (1280, 1536) and f1 == {"small": 1.0, "large": 1.0}
    assert rule_f1(scored, (1024, 1024), 0.5)["small"] < 0.5  # the training diameter alone gets noise


def test_without_a_large_photograph_the_range_stays_narrow():
    rules = candidate_rules(1024)
    rule, _ = choose_rule([held_out("small", 540, 1152, rules)], 1024, 0.5)
    assert rule == (1152, 1152)  # b is not measured: large photographs are not shrunk less than small ones enlarged


def test_candidates_are_ordered_ranges_in_pixels():
    rules = candidate_rules(1024)
    assert (1024, 1024) in rules and (1024, 2048) in rules and all(low <= high for low, high in rules)
    assert len(rules) == len(set(rules)) == 28
    with pytest.raises(KeyError):  # a rule whose diameter was never run cannot be scored
        rule_f1([held_out("small", 540, 1280, [(1024, 1024)])], (1280, 1280), 0.5)


def test_a_gain_within_the_margin_keeps_the_training_diameter():
    rules = candidate_rules(1024)
    slightly = [held_out("small", 540, 1280, rules, wrong_elsewhere=0.002)]  # 1280 px only a hair better
    assert 0 < 1.0 - rule_f1(slightly, (1024, 1024), 0.5)["small"] < MARGIN
    assert choose_rule(slightly, 1024, 0.5)[0] == (1024, 1024)
    assert choose_rule(slightly, 1024, 0.5, margin=0.0)[0] == (1280, 1280)  # the plain best
