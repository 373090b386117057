"""results/scale/consistency_diameter.md: choosing each photograph's run diameter by its own map's self-consistency.

`m2unet segment` runs a photograph whose FOV is d px across at clamp(d, lo, hi) (the range stored with the weights).
FOV diameter is not vessel width: a 30° camera draws wider vessels than a 45° one at the same diameter, so a
high-resolution 30° photograph is shrunk too little (CHASE_DB1 enlarged to a 2400-px FOV runs at 1792 px and loses).
This measures a label-free alternative: run the photograph at each candidate diameter and keep the one whose
probability map agrees best with its own binary map at the stored threshold (soft Dice of p and [p ≥ t]: high when the
map is confident on both sides of the threshold, low when much of it hovers near the threshold). Pooled F1 inside
the FOV at the stored threshold, against the stored range, each fixed diameter and the per-photograph oracle
(optimistic). Exploratory: nothing here is used by `segment`.

    .venv/bin/python benchmarks/consistency_diameter.py [--weights FILE] [--images N] [--change "FOV 2400 px"]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from m2unet.data import estimate_fov_mask, load_dataset, write_atomic
from m2unet.data.contrast import model_contrast_floor, run_as_trained
from m2unet.data.scale import fov_diameter, model_scale
from m2unet.evaluation.camera_shift import CAMERA_CHANGES
from m2unet.evaluation.metrics import binary_counts, f1_score
from m2unet.evaluation.predictor import model_predictor
from m2unet.system import cpu_model
from m2unet.weights import pretrained_path, read_metadata, threshold_of

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "results" / "scale" / "consistency_diameter.md"
DATASETS = ("drive", "chase_db1", "hrf")
CANDIDATES = (768, 1024, 1280, 1536, 1792)


def self_consistency(probability: np.ndarray, threshold: float) -> float:
    """Soft Dice of the probability map and its own binary map at ``threshold`` (1: every pixel is 0 or 1)."""
    binary = probability >= threshold
    return float(2 * probability[binary].sum() / max(probability.sum() + binary.sum(), 1e-9))


def photograph_rows(predict, sample, change, threshold: float, floor: float | None) -> dict:
    """One photograph: {diameter: [tp, fp, fn, self-consistency]} at each candidate, and its estimated FOV diameter."""
    image, label, mask = CAMERA_CHANGES[change](sample.image, sample.label, sample.mask)
    frame = estimate_fov_mask(image)  # as segment: the frame from the photograph itself, scored in the labelled FOV
    rows = {}
    for diameter in CANDIDATES:
        probability = run_as_trained(predict, image, frame, (diameter, diameter), floor)[0]  # as segment runs it
        c = binary_counts(probability >= threshold, label, mask)
        rows[diameter] = [int(c["tp"]), int(c["fp"]), int(c["fn"]), self_consistency(probability[frame], threshold)]
    return {"name": sample.name, "fov_diameter": fov_diameter(frame), "rows": rows}


def pooled(photos: list[dict], choose) -> float:
    """Pooled F1 when ``choose(photo)`` picks each photograph's diameter."""
    return float(f1_score(*np.sum([photo["rows"][choose(photo)][:3] for photo in photos], axis=0)))


def rule_cells(photos: list[dict], stored: tuple[int, int]) -> tuple[list[float], list[int]]:
    """F1 under [stored range, search within it, search over all candidates, oracle], and the all-candidate choices."""
    lo, hi = stored
    inside = [d for d in CANDIDATES if lo <= d <= hi] or [min(CANDIDATES, key=lambda d: abs(d - lo))]

    def nearest_stored(photo):
        return min(CANDIDATES, key=lambda d: abs(d - min(max(photo["fov_diameter"], lo), hi)))

    def most_consistent(candidates):
        return lambda photo: max(candidates, key=lambda d: photo["rows"][d][3])

    def oracle(photo):
        return max(CANDIDATES, key=lambda d: f1_score(*photo["rows"][d][:3]))

    rules = (nearest_stored, most_consistent(inside), most_consistent(CANDIDATES), oracle)
    return [pooled(photos, rule) for rule in rules], [most_consistent(CANDIDATES)(photo) for photo in photos]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None, help="weights file (default: the shipped universal)")
    parser.add_argument("--images", type=int, default=None, help="test photographs per dataset, spread evenly over the split (default: all)")
    parser.add_argument("--change", action="append", default=None, choices=list(CAMERA_CHANGES), help="camera change(s)")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    weights = args.weights or pretrained_path("universal")
    metadata = read_metadata(weights)
    threshold, stored, floor = threshold_of(metadata), model_scale(metadata), model_contrast_floor(metadata)
    predict, _, _ = model_predictor(weights, "openvino", "fp32", "cpu", rescale=False)
    changes = args.change or ["as it is", "FOV 2400 px"]
    start = time.perf_counter()
    lines = ["# Run diameter chosen per photograph by its map's self-consistency", "",
             f"Generated by `python benchmarks/consistency_diameter.py` with {weights.name} ({cpu_model()}). Pooled F1 inside the FOV at "
             f"the stored threshold ({threshold:.3f}), contrast restored as `segment` does; candidates {', '.join(map(str, CANDIDATES))} px; "
             f"stored range {stored[0]}–{stored[1]} px (its nearest candidate). Search: the candidate whose map is most self-consistent, "
             "within the stored range or over all candidates. Oracle: each photograph's best candidate (optimistic).", "",
             "| test set | change | stored range | search in range | search, all | oracle | " + " | ".join(map(str, CANDIDATES)) + " | chosen (all) |",
             "|---|---|---:|---:|---:|---:|" + "---:|" * len(CANDIDATES) + "---|"]
    record = {}
    for dataset in args.datasets.split(","):
        for change in changes:
            split = load_dataset(dataset, "test")
            picked = range(len(split)) if args.images is None else np.linspace(0, len(split) - 1, args.images).round().astype(int)
            photos = []
            for sample in (split[int(i)] for i in picked):
                photos.append(photograph_rows(predict, sample, change, threshold, floor))
                print(dataset, change, sample.name, {d: round(r[3], 4) for d, r in photos[-1]["rows"].items()}, flush=True)
            record.setdefault(dataset, {})[change] = photos
            rules, chosen = rule_cells(photos, stored)
            fixed = [pooled(photos, lambda photo, d=d: d) for d in CANDIDATES]
            counts = ", ".join(f"{d}×{chosen.count(d)}" for d in CANDIDATES if d in chosen)
            lines.append(f"| {dataset} | {change} | " + " | ".join(f"{v:.4f}" for v in rules + fixed) + f" | {counts} |")
            print(lines[-1], flush=True)
    lines += ["", f"{time.perf_counter() - start:.0f} s."]
    write_atomic(args.out, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))
    write_atomic(args.out.with_suffix(".json"), lambda tmp: Path(tmp).write_text(json.dumps(record)))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
