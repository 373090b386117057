"""Calibrate a model to one camera: its run diameter and threshold chosen on a few labelled photographs from it.

A model that never saw a camera can draw its vessels well and still be scored low on it, for two reasons that a
handful of labelled photographs from that camera settle: the FOV diameter the photographs should run at (a 30° camera
draws wider vessels at one FOV diameter than the 45° ones; the diameter search finds part of that, label-free) and the
threshold (its annotators may draw vessels narrower or wider than the training sets' did). Held out of training,
CHASE_DB1's test split rises from 0.7723 to 0.7812 (mean of two seeds) when both are chosen on its eight training
photographs (results/scale/loo.md, "Calibrated to the held-out camera").

Each photograph runs at its model's stored scale and at fixed FOV diameters of :data:`DIAMETER_FACTORS` × the model's
training diameter (and :data:`ABOVE_FACTORS` × it, up to the widest photograph's FOV); per candidate the confusion
counts inside the FOV are pooled over the photographs and the best threshold found. Of the candidates within :data:`MARGIN` of the best F1, the stored scale wins, then the diameter
nearest the training one: a few photographs give noisy F1, and a gain smaller than that must not move a model away
from the scale it was trained at. The result is a new weights file, the same tensors with the chosen threshold and
diameter in its metadata and a ``camera_calibration`` record of every candidate; ``segment --weights`` then runs as chosen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import M2UNetError

DIAMETER_FACTORS = (0.625, 0.75, 0.875, 1.0, 1.25, 1.5, 1.75)
ABOVE_FACTORS = (2.0, 2.5, 3.0)  # tried only up to the photographs' own FOV: a high-resolution camera's thin vessels need them
MARGIN = 0.002  # pooled F1 within which candidates count as equal (as training.run_diameter chooses)
STALE_KEYS = ("test", "test_evaluations", "metrics", "run_fov_diameter_choice")  # said of the uncalibrated file


@dataclass
class Candidate:
    """One way to run the photographs: its scale, pooled counts, best threshold and F1 there."""

    scale: object  # (low, high), a WidthRule, or None (as they are)
    stored: bool
    counts: dict | None = None
    threshold: float = 0.5
    f1: float = 0.0


def training_diameter(metadata: dict) -> int | None:
    """The FOV diameter a model was trained at: D for a scale-normalised model, its dataset's for a per-dataset one."""
    from ..data.datasets import FOV_DIAMETER

    return metadata.get("fov_diameter") or FOV_DIAMETER.get(str(metadata.get("dataset")))


def candidates(metadata: dict, largest_fov: int = 0) -> list[Candidate]:
    """The stored scale first, then every fixed diameter of :data:`DIAMETER_FACTORS` × the training diameter, and of
    :data:`ABOVE_FACTORS` × it up to ``largest_fov`` (the widest FOV among the photographs; never enlarged beyond it)."""
    from ..data.scale import model_scale

    base = training_diameter(metadata)
    factors = DIAMETER_FACTORS + tuple(f for f in ABOVE_FACTORS if base and f * base <= largest_fov)
    fixed = [] if base is None else [(round(f * base), round(f * base)) for f in factors]
    stored = model_scale(metadata)
    return [Candidate(stored, True)] + [Candidate(scale, False) for scale in fixed if scale != stored]


def widest_fov(dataset) -> int:
    """The widest FOV diameter estimated among ``dataset``'s photographs (0 where none can be read: they fail later)."""
    from ..data.fov import estimate_fov_mask
    from ..data.io import read_image
    from ..data.scale import fov_diameter

    widest = 0
    for item in dataset.items:
        try:
            widest = max(widest, fov_diameter(estimate_fov_mask(read_image(item.image))))
        except M2UNetError:
            continue
    return widest


def score(predict, metadata: dict, dataset, tta: bool = False, progress: bool = True) -> tuple[list[Candidate], list[str], int]:
    """Every candidate's pooled counts over ``dataset``'s labelled photographs; (candidates, failures, photographs)."""
    from tqdm import tqdm

    from ..data.contrast import model_contrast_floor
    from ..data.fov import estimate_fov_mask
    from ..data.scale import back_max_from
    from . import metrics as M
    from .predictor import ScaledPredictor

    found = candidates(metadata, widest_fov(dataset))
    runs = [ScaledPredictor(predict, c.scale, model_contrast_floor(metadata), back_max_from(metadata)) for c in found]
    runs = [run.with_flips() for run in runs] if tta else runs
    failures, done = [], 0
    for index in tqdm(range(len(dataset)), desc=f"calibrating on {len(found)} diameters", unit="image", disable=not progress):
        try:
            sample = dataset[index]
            if sample.label is None:
                raise M2UNetError(f"{sample.image_path}: no label (calibration needs labels/NAME.* beside images/NAME.*)")
            fov = estimate_fov_mask(sample.image)  # once per photograph, as segment estimates it, for every candidate
            counts = [M.threshold_counts(run(sample.image, fov), sample.label, sample.mask) for run in runs]
        except M2UNetError as error:
            failures.append(str(error))
            continue
        for candidate, one in zip(found, counts, strict=True):
            candidate.counts = one if candidate.counts is None else M.sum_counts([candidate.counts, one])
        done += 1
    for candidate in found:
        if candidate.counts is not None:
            candidate.threshold, candidate.f1 = M.best_threshold(candidate.counts)
    return found, failures, done


def choose(found: list[Candidate], base: int | None, margin: float = MARGIN) -> Candidate:
    """Within ``margin`` of the best F1: the stored scale, else the fixed diameter nearest ``base`` (in ratio)."""
    top = max(c.f1 for c in found)
    near = [c for c in found if c.f1 >= top - margin]

    def distance(c: Candidate) -> float:
        return -1.0 if c.stored else abs(math.log(c.scale[0] / base))

    return min(near, key=distance)


def calibrated_metadata(metadata: dict, found: list[Candidate], chosen: Candidate, source: Path, dataset, photographs: int,
                        tta: bool) -> dict:
    """``metadata`` with ``chosen``'s threshold and diameter, and a ``camera_calibration`` record of how they were found."""
    from ..data.scale import scale_record
    from ..weights import file_digest, git_commit, threshold_of
    from . import metrics as M

    stored = found[0]
    out = {k: v for k, v in metadata.items() if k not in STALE_KEYS}
    out["threshold"] = round(chosen.threshold, 6)
    if not chosen.stored:
        out.pop("run_vessel_width", None)
        out["run_fov_diameter"] = list(chosen.scale)
    out["camera_calibration"] = {
        "photographs": photographs, "dataset": str(dataset.name), "split": dataset.split, "tta": tta,
        "from": {"file": source.name, "sha256_16": file_digest(source), "threshold": threshold_of(metadata),
                 "scale": scale_record(stored.scale)},
        "f1_before": round(M.f1_at(stored.counts, threshold_of(metadata)), 6), "f1_after": round(chosen.f1, 6),
        "chosen": found.index(chosen),
        "candidates": [{"run_fov_diameter": scale_record(c.scale), "stored": c.stored, "threshold": round(c.threshold, 6),
                        "f1": round(c.f1, 6)} for c in found],
        "git_commit": git_commit(),
    }
    return out


def calibrate(weights: Path, dataset, out: Path, tta: bool = False, overwrite: bool = False, progress: bool = True) -> dict:
    """Write ``out``: ``weights`` calibrated on ``dataset`` (a :class:`m2unet.data.datasets.SegmentationDataset` with
    labels); returns its ``camera_calibration`` record. Photographs that cannot be read are skipped and listed."""
    from ..inference.pipeline import default_runtime
    from ..weights import read_state_dict, save_state
    from .predictor import unscaled_predictor

    if weights.suffix != ".safetensors":
        raise M2UNetError(f"{weights}: calibration needs one of our .safetensors weights files (an export carries no tensors to rewrite)")
    if out.suffix != ".safetensors":
        raise M2UNetError(f"{out}: the calibrated weights are a .safetensors file; name it so")
    if out.exists() and not overwrite:
        raise M2UNetError(f"{out}: already exists; choose another name or pass --overwrite")
    if out.resolve() == weights.resolve():
        raise M2UNetError(f"{out}: is the weights file being calibrated; write the calibrated one beside it")
    predict, metadata, _ = unscaled_predictor(weights, default_runtime("cpu"), "fp32", "cpu")  # as segment runs, in fp32
    found, failures, done = score(predict, metadata, dataset, tta, progress)
    if not done:
        raise M2UNetError(f"{dataset.name}: no labelled photograph could be scored" + (f"; first failure: {failures[0]}" if failures else ""))
    chosen = choose(found, training_diameter(metadata))
    meta = calibrated_metadata(metadata, found, chosen, weights, dataset, done, tta)
    meta["camera_calibration"]["failures"] = failures
    save_state(read_state_dict(weights), out, meta)
    return meta["camera_calibration"]
