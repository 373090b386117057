"""results/scale/threshold_enlargement.md: does the best threshold follow the enlargement or the dataset's labels?

A leave-one-out model trained on CHASE_DB1 + HRF stores a threshold near 0.62 and scores held-out DRIVE best near
0.40 (results/scale/loo.md). DRIVE's photographs are enlarged about 1.9× to the model's FOV diameter, HRF's shrunk
about 3×, and an enlarged photograph is blurrier, so its vessel probabilities could be lower. If the best threshold
followed the enlargement (run diameter / the photograph's own FOV diameter), a threshold per enlargement could be
calibrated on the training datasets alone, by shrinking their held-out photographs to simulate cameras of lower
resolution, and carried to a new camera. This script measures it: each model's held-out training photographs as they
are and shrunk (label and FOV alike, m2unet.evaluation.camera_shift.resized_to) to FOV diameters 1400, 960, 720 and
540 px, each run as `m2unet segment` runs it; per dataset and simulated diameter, the pooled best threshold and F1
inside the FOV. Then the same held-out photographs as they are, run at fixed FOV diameters from the training
diameter up to 1.75× it (those the diameter search tries): here the vessels grow in the model's input. Beside them,
the held-out dataset's test split as it is (for a model trained on all three, every test split; a test split's best
threshold is optimistic: chosen on its labels).

    python benchmarks/threshold_enlargement.py                                   # the shipped universal model
    python benchmarks/threshold_enlargement.py --weights loo-drive=RUNS/loo-drive-ema300/best.safetensors
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from m2unet.data import load_dataset
from m2unet.data.datasets import DATASETS
from m2unet.data.scale import fov_diameter
from m2unet.evaluation import metrics as M
from m2unet.evaluation.camera_shift import resized_to
from m2unet.evaluation.predictor import ScaledPredictor, model_predictor
from m2unet.system import cpu_model
from m2unet.weights import pretrained_path

REPO = Path(__file__).resolve().parents[1]
SIMULATED = (1400, 960, 720, 540)  # FOV diameters of the simulated lower-resolution cameras, px
RUN_FACTORS = (1.0, 1.25, 1.5, 1.75)  # fixed run diameters, × the training FOV diameter (those the search tries)


def photographs(dataset: str, split: str):
    """(photograph name, sample) of the held-out training images ("val") or a test split."""
    data = load_dataset(dataset, "train" if split == "val" else split)
    for index, item in enumerate(data.items):
        if split != "val" or item.name in DATASETS[dataset].holdout:
            yield item.name, data[index]


def scored(predict, image, label, mask) -> tuple[float, dict]:
    """(enlargement the photograph ran at, its confusion counts over thresholds inside the FOV)."""
    probability = predict(image)
    return predict.ran_at / max(fov_diameter(mask), 1), M.threshold_counts(probability, label, mask)


def rows_for(name: str, weights: Path) -> list[list[str]]:
    """Per (split, dataset, simulated FOV or fixed run diameter): the model's pooled best threshold and F1 there, and
    F1 at its stored threshold."""
    predict, metadata, _ = model_predictor(weights, None, "fp32", "cpu")
    at = {diameter: ScaledPredictor(predict.predict, (diameter, diameter), predict.contrast_floor, predict.max_from)
          for diameter in (round(factor * metadata["fov_diameter"]) for factor in RUN_FACTORS)}
    stored = float(metadata["threshold"])
    trained_on = metadata.get("datasets") or [metadata["dataset"]]
    groups: dict[tuple, list] = {}
    tested = [d for d in DATASETS if d not in trained_on] or list(DATASETS)  # a held-out model: only the camera it never saw
    for split, datasets in (("val", trained_on), ("test", tested)):
        for dataset in datasets:
            for photo, sample in photographs(dataset, split):
                native = fov_diameter(sample.mask)
                sizes = [None] + ([d for d in SIMULATED if d < 0.95 * native] if split == "val" else [])
                for size in sizes:
                    image, label, mask = (sample.image, sample.label, sample.mask) if size is None else resized_to(size)(sample.image, sample.label, sample.mask)
                    groups.setdefault((split, dataset, f", shrunk to {size} px" if size else ""), []).append(scored(predict, image, label, mask))
                for diameter, runner in at.items() if split == "val" else ():
                    groups.setdefault((split, dataset, f", run at {diameter} px"), []).append(scored(runner, sample.image, sample.label, sample.mask))
                print(f"{name} {split} {dataset} {photo}", flush=True)
    rows = []
    for (split, dataset, how), items in groups.items():
        total = M.sum_counts(counts for _, counts in items)
        threshold, best = M.best_threshold(total)
        where = ("held-out training images" if split == "val" else "test split") + how
        held_out = " (never trained on)" if split == "test" and dataset not in trained_on else ""
        rows.append([f"`{name}`", f"{dataset}{held_out}", where, str(len(items)), f"{np.mean([e for e, _ in items]):.2f}",
                     f"{threshold:.2f}", f"{best:.4f}", f"{M.f1_at(total, stored):.4f} ({stored:.3f})"])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", action="append", default=[], metavar="NAME=PATH",
                        help="a model to measure (repeatable; default: the shipped universal model)")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "scale" / "threshold_enlargement.md")
    args = parser.parse_args()
    models = [tuple(spec.split("=", 1)) for spec in args.weights] or [("universal", str(pretrained_path("universal")))]
    start = time.perf_counter()
    rows = [row for name, path in models for row in rows_for(name, Path(path))]
    header = ["model", "dataset", "photographs", "n", "mean enlargement", "best threshold", "F1 at best", "F1 at stored (threshold)"]
    lines = ["# Best threshold against enlargement", "",
             f"Generated by `python benchmarks/threshold_enlargement.py{''.join(f' --weights {n}=…' for n, _ in models) if args.weights else ''}` "
             f"({time.perf_counter() - start:.0f} s, {cpu_model()}); models: " + ", ".join(f"`{n}` = {p}" for n, p in models) + ".",
             "Pooled F1 inside the FOV. Enlargement: the FOV diameter a photograph ran at over its own (below 1: shrunk).",
             "A test split's best threshold is optimistic (chosen on its own labels).", "",
             *("| " + " | ".join(cells) + " |" for cells in [header, ["---"] * len(header), *rows])]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out} ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
