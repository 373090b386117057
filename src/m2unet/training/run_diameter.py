"""The FOV diameters a scale-normalised model runs photographs at, chosen on its held-out training images.

A model trained with every photograph brought to D px (:mod:`m2unet.data.scale`) need not run at D: on the test splits
the universal model scored higher on HRF at 1.5·D (results/scale/inference_diameter.md), where HRF's thin vessels
survive the shrinking better. The rule is one of the family "a photograph whose FOV is d px across runs at
clamp(d, a·D, b·D)" (small photographs enlarged to a·D, large ones shrunk to b·D; ``a ≤ b`` from :data:`FACTORS`),
and (a, b) is chosen as the threshold is: on the images the run kept out of training, at the stored threshold, by
the mean over their datasets of the pooled F1 inside the FOV (FOVs estimated from the photographs, as ``segment``
does). Of the rules within :data:`MARGIN` of the best, the one nearest the training diameter (smallest a + b) wins:
the held-out images are a handful (two to three per dataset), and a gain smaller than that is noise that must not move
a camera away from the scale the model was trained at; the first version took the plain best, and a 0.0006 gain on two
DRIVE photographs then cost the model trained without CHASE_DB1 0.023 on CHASE_DB1 (results/scale/run_diameter.md).
The same preference sets b = a where b is not measured (no held-out photograph wider than a·D).

A run at one vessel width (``--vessel-width``; every dataset at its own diameter) has no single D to clamp around; it
stores a :class:`m2unet.data.scale.WidthRule` instead, calibrated on the same held-out images (:func:`width_rule_metadata`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FACTORS = (1.0, 1.125, 1.25, 1.375, 1.5, 1.75, 2.0)
MARGIN = 0.002  # mean held-out F1 within which rules count as equal (the nearest to the training diameter wins)


@dataclass
class HeldOutImage:
    """One held-out photograph's confusion counts (over thresholds) at each FOV diameter it was run at."""

    dataset: str
    fov: int  # estimated FOV diameter of the photograph, px
    counts: dict[int, dict] = field(default_factory=dict)


def candidate_rules(diameter: int) -> list[tuple[int, int]]:
    """Every (a·D, b·D) with a ≤ b from :data:`FACTORS`, in pixels."""
    return [(round(a * diameter), round(b * diameter)) for a in FACTORS for b in FACTORS if b >= a]


def score_held_out(predict, samples, rules: list[tuple[int, int]], progress: bool = False,
                   max_from: float | None = None) -> list[HeldOutImage]:
    """Each ``(dataset, sample)`` run at every diameter some rule gives it, scored against its label inside its FOV;
    ``max_from``: the model's :func:`m2unet.data.scale.back_max_from`."""
    from tqdm import tqdm

    from ..data.fov import estimate_fov_mask
    from ..data.scale import fov_diameter, predict_scaled, run_at
    from ..evaluation.metrics import threshold_counts

    scored = []
    for dataset, sample in tqdm(samples, desc="choosing the run diameter", unit="image", disable=not progress, leave=False):
        mask = estimate_fov_mask(sample.image)
        image = HeldOutImage(dataset, fov_diameter(mask))
        for target in sorted({run_at(image.fov, rule) for rule in rules}):
            probability = predict_scaled(predict, sample.image, mask, (target, target), max_from)
            image.counts[target] = threshold_counts(probability, sample.label, sample.mask)
        scored.append(image)
    return scored


def rule_f1(scored: list[HeldOutImage], rule: tuple[int, int], threshold: float) -> dict[str, float]:
    """Pooled F1 at ``threshold`` per dataset when every held-out photograph runs at ``rule``."""
    from ..data.scale import run_at
    from ..evaluation.metrics import f1_at, sum_counts

    return {dataset: f1_at(sum_counts([image.counts[run_at(image.fov, rule)] for image in scored if image.dataset == dataset]), threshold)
            for dataset in dict.fromkeys(image.dataset for image in scored)}


def choose_rule(scored: list[HeldOutImage], diameter: int, threshold: float, margin: float = MARGIN) -> tuple[tuple[int, int], dict[str, float]]:
    """Of the rules whose mean F1 over datasets is within ``margin`` of the best, the one with the smallest a + b
    (then the smaller a), and its F1 per dataset."""
    mean = {rule: float(np.mean(list(rule_f1(scored, rule, threshold).values()))) for rule in candidate_rules(diameter)}
    top = max(mean.values())
    chosen = min((rule for rule, value in mean.items() if value >= top - margin), key=lambda rule: (rule[0] + rule[1], rule[0]))
    return chosen, rule_f1(scored, chosen, threshold)


def held_out_samples(holdout: dict[str, list[str]], root=None) -> list[tuple[str, object]]:
    """(dataset, sample) for every image named in ``holdout`` (dataset → training image names)."""
    from ..data import load_dataset

    samples = []
    for dataset, names in holdout.items():
        data = load_dataset(dataset, "train", root=root)
        samples += [(dataset, data[i]) for i, item in enumerate(data.items) if item.name in set(names)]
    return samples


def run_diameter_metadata(predict, holdout: dict[str, list[str]], diameter: int, threshold: float, root=None,
                          progress: bool = False, max_from: float | None = None) -> dict:
    """The metadata a scale-normalised model's weights carry about the diameters it runs at (chosen as above);
    ``max_from``: the model's own :func:`m2unet.data.scale.back_max_from`."""
    scored = score_held_out(predict, held_out_samples(holdout, root), candidate_rules(diameter), progress, max_from)
    return choice_metadata(scored, diameter, threshold)


def choice_metadata(scored: list[HeldOutImage], diameter: int, threshold: float, margin: float = MARGIN) -> dict:
    """``run_fov_diameter`` chosen on ``scored`` (:func:`choose_rule`) and the held-out F1 behind the choice."""
    rule, f1 = choose_rule(scored, diameter, threshold, margin)
    at_training = rule_f1(scored, (diameter, diameter), threshold)
    return {"run_fov_diameter": list(rule),
            "run_fov_diameter_choice": {"validation_f1": {d: round(v, 6) for d, v in f1.items()},
                                        "validation_f1_at_training_diameter": {d: round(v, 6) for d, v in at_training.items()}}}


WIDTH_LIMITS = (0.5, 2.5)  # the second pass of a width rule runs between these multiples of the probe diameter


def width_rule_metadata(predict, holdout: dict[str, list[str]], diameters: dict[str, int], probe: int, threshold: float, root=None,
                        progress: bool = False) -> dict:
    """``run_vessel_width`` of a model trained at one vessel width (:class:`m2unet.data.scale.WidthRule`), calibrated on
    the held-out images: each, probed at ``probe`` px, implies the map width that would send it to its dataset's
    training diameter (``diameters``); the geometric mean per dataset, then over datasets (each camera counts once),
    is stored, with the held-out F1 at the stored threshold when the rule runs them."""
    from tqdm import tqdm

    from ..data.fov import estimate_fov_mask
    from ..data.scale import WidthRule, predict_scaled
    from ..evaluation.metrics import f1_at, sum_counts, threshold_counts

    limits = (round(WIDTH_LIMITS[0] * probe), round(WIDTH_LIMITS[1] * probe))
    samples = [(dataset, sample, estimate_fov_mask(sample.image)) for dataset, sample in held_out_samples(holdout, root)]
    implied: dict[str, list[float]] = {}
    for dataset, sample, mask in tqdm(samples, desc="calibrating the width rule", unit="image", disable=not progress, leave=False):
        width, measured_at, _, _ = WidthRule(probe, 1.0, limits, threshold).probe_map(predict, sample.image, mask)
        implied.setdefault(dataset, []).append(max(width, 0.5) * diameters[dataset] / measured_at)  # 0.5: a map with no vessel
    map_width = float(np.exp(np.mean([np.mean(np.log(values)) for values in implied.values()])))
    rule = WidthRule(probe, map_width, limits, threshold)
    counts: dict[str, list[dict]] = {}
    for dataset, sample, mask in samples:
        counts.setdefault(dataset, []).append(threshold_counts(predict_scaled(predict, sample.image, mask, rule), sample.label, sample.mask))
    return {"run_vessel_width": {"probe": probe, "map_width": round(map_width, 4), "limits": list(limits)},
            "run_vessel_width_choice": {"dataset_fov_diameters": dict(diameters),
                                        "implied_map_width": {d: [round(v, 3) for v in values] for d, values in implied.items()},
                                        "validation_f1": {d: round(f1_at(sum_counts(c), threshold), 6) for d, c in counts.items()}}}
