"""results/scale/review_flags.md: which maps `segment` flags for review (m2unet.inference.review), and what that catches.

The first --images photographs of each dataset's training and test splits, each as it is, changed as other cameras
change them (m2unet.evaluation.camera_shift.CAMERA_CHANGES) and as poor photographs are (POOR_PHOTOGRAPHS: out of
focus, JPEG quality 5, sensor noise, under- and over-exposed, 15 % contrast), run by each shipped model as `m2unet
segment --model NAME` runs it (FOV estimated, default backend). For each map: F1 against the changed label inside the
changed FOV, and the review's two label-free measures: the fraction of the estimated FOV drawn as vessel and the map's
self-consistency. Each model's limits are chosen on the training photographs alone — the lowest value of each
measure over its maps with F1 ≥ 0.7 — and then counted on the test photographs: failed maps (F1 < 0.6) flagged, good
maps (F1 ≥ 0.7) flagged. `auto` (segment's default: the universal model with each photograph's diameter searched,
then the kept view's flips averaged) is counted on the test photographs with the universal model's limits. tests/test_inference_review.py checks that
m2unet.inference.review.LIMITS are the limits these rows give.

    .venv/bin/python benchmarks/review_flags.py [--images 4] [--model universal --model drive ...]
    .venv/bin/python benchmarks/review_flags.py --model auto --keep   # rerun one model, keep the others' rows
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import m2unet
from m2unet.data import estimate_fov_mask, load_dataset, write_atomic
from m2unet.evaluation.camera_shift import CAMERA_CHANGES, POOR_PHOTOGRAPHS
from m2unet.evaluation.metrics import binary_counts, f1_score
from m2unet.inference import review
from m2unet.system import cpu_model
from m2unet.weights import pretrained_path, read_metadata

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "results" / "scale" / "review_flags.md"
DATASETS = ("drive", "chase_db1", "hrf")
CHANGES = {**CAMERA_CHANGES, **POOR_PHOTOGRAPHS}
FAILED_F1 = 0.6


def measured(split: str, images: int, model: str) -> list[dict]:
    """One row per (photograph, change): F1 at the model's stored threshold and the review's two measures."""
    weights = pretrained_path(review.AUTO_LIMITS_FROM if model == "auto" else model)
    threshold = float(read_metadata(weights)["threshold"])
    rows = []
    for dataset in DATASETS:
        for index, sample in enumerate(load_dataset(dataset, split)):
            if index == images:
                break
            for name, change in CHANGES.items():
                image, label, mask = change(sample.image, sample.label, sample.mask)
                probability = m2unet.segment(image, model=model)
                counts = binary_counts(probability >= threshold, label, mask)
                fraction, consistency = review.map_measures(probability, threshold, estimate_fov_mask(image))
                rows.append({"model": model, "split": split, "dataset": dataset, "photograph": sample.name, "change": name,
                             "f1": float(f1_score(counts["tp"], counts["fp"], counts["fn"])),
                             "vessel_fraction": fraction, "self_consistency": consistency})
            print(f"{model} {split} {dataset} {sample.name}: {len(CHANGES)} changes", flush=True)
    return rows


def flagged(row: dict, limits: tuple[float, float]) -> bool:
    return bool(review.reasons_for(row["vessel_fraction"], row["self_consistency"], limits))


def summary_lines(rows: list[dict], limits: tuple[float, float]) -> list[str]:
    failed = [r for r in rows if r["f1"] < FAILED_F1]
    good = [r for r in rows if r["f1"] >= review.GOOD_F1]
    caught = [r for r in failed if flagged(r, limits)]
    false = [r for r in good if flagged(r, limits)]
    lines = [f"- failed maps (F1 < {FAILED_F1}) flagged: **{len(caught)} of {len(failed)}**; good maps (F1 ≥ {review.GOOD_F1}) flagged: "
             f"**{len(false)} of {len(good)}**; in between: {sum(flagged(r, limits) for r in rows if FAILED_F1 <= r['f1'] < review.GOOD_F1)} "
             f"of {len(rows) - len(failed) - len(good)} flagged."]
    for row in false:
        lines.append(f"- good map flagged: {row['dataset']} {row['photograph']}, {row['change']} (F1 {row['f1']:.3f}, "
                     f"vessel {100 * row['vessel_fraction']:.1f} %, self-consistency {row['self_consistency']:.3f})")
    for row in failed:
        if row not in caught:
            lines.append(f"- failed map not flagged: {row['dataset']} {row['photograph']}, {row['change']} (F1 {row['f1']:.3f}, "
                         f"vessel {100 * row['vessel_fraction']:.1f} %, self-consistency {row['self_consistency']:.3f})")
    return lines


def change_table(rows: list[dict], limits: tuple[float, float]) -> list[str]:
    lines = ["| change | maps | mean F1 | flagged | mean F1 of the flagged | of the others |", "|---|---:|---:|---:|---:|---:|"]
    for name in CHANGES:
        mine = [r for r in rows if r["change"] == name]
        marked = [r["f1"] for r in mine if flagged(r, limits)]
        kept = [r["f1"] for r in mine if not flagged(r, limits)]
        lines.append(f"| {name} | {len(mine)} | {np.mean([r['f1'] for r in mine]):.3f} | {len(marked)} | "
                     + (f"{np.mean(marked):.3f}" if marked else "–") + " | " + (f"{np.mean(kept):.3f}" if kept else "–") + " |")
    return lines


def model_section(model: str, training: list[dict], test: list[dict], limits: tuple[float, float]) -> list[str]:
    if model == "auto":
        head = [f"With `{review.AUTO_LIMITS_FROM}`'s limits ({100 * limits[0]:.1f} %, {limits[1]:.2f}); test photographs only.", ""]
    else:
        head = [f"**Limits chosen on the training photographs** (the lowest over their "
                f"{sum(r['f1'] >= review.GOOD_F1 for r in training)} maps with F1 ≥ {review.GOOD_F1}): vessel fraction "
                f"**{100 * limits[0]:.1f} %**, self-consistency **{limits[1]:.2f}** (the models m2unet.inference.review.LIMITS "
                "reviews hold these: tests/test_inference_review.py checks them against the .json beside this file).", ""]
    lines = [f"## `{model}`", "", *head, "### Test photographs", "", *summary_lines(test, limits), "", *change_table(test, limits), ""]
    if training:
        lines += ["### Training photographs (where the limits come from)", "", *summary_lines(training, limits), "",
                  *change_table(training, limits), ""]
    return lines


MODELS = ("universal", "auto", "drive", "chase_db1", "hrf")


def kept_record(path: Path, rerun: list[str]) -> tuple[list[dict], list[dict]]:
    """The runs and rows of the .json at path for the models not rerun (``--keep``); nothing when there is none."""
    if not path.exists():
        return [], []
    record = json.loads(path.read_text())
    runs = [{**run, "models": [m for m in run["models"] if m not in rerun]} for run in record["runs"]]
    return [run for run in runs if run["models"]], [row for row in record["rows"] if row["model"] not in rerun]


def limits_from(rows: list[dict], model: str) -> tuple[float, float]:
    """A model's limits, chosen on its training rows; auto has none of its own (the model it runs lends them)."""
    if model == "auto":
        return limits_from(rows, review.AUTO_LIMITS_FROM) if any(r["model"] == review.AUTO_LIMITS_FROM for r in rows) \
            else review.LIMITS[review.AUTO_LIMITS_FROM]
    return review.chosen_limits([r for r in rows if r["model"] == model and r["split"] == "train"])


def section(model: str, rows: list[dict]) -> list[str]:
    mine = [r for r in rows if r["model"] == model]
    training, test = ([r for r in mine if r["split"] == split] for split in ("train", "test"))
    return model_section(model, training, test, limits_from(rows, model))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4, help="photographs per dataset and split")
    parser.add_argument("--model", action="append", help=f"shipped models (default: {', '.join(MODELS)})")
    parser.add_argument("--keep", action="store_true",
                        help="keep the other models' rows from the .json beside --out (their runs stay named in the header)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    models = args.model or list(MODELS)
    runs, rows = kept_record(args.out.with_suffix(".json"), models) if args.keep else ([], [])
    if any(run["images"] != args.images for run in runs):  # one table, one sample of photographs
        parser.error(f"--keep: the kept rows were measured with --images {runs[0]['images']}, not {args.images}")
    start = time.perf_counter()
    for model in models:
        if model != "auto":
            rows += measured("train", args.images, model)
        rows += measured("test", args.images, model)
    command = (f"python benchmarks/review_flags.py --images {args.images}" + "".join(f" --model {m}" for m in args.model or [])
               + (" --keep" if args.keep else ""))
    runs.append({"command": command, "images": args.images, "seconds": round(time.perf_counter() - start), "cpu": cpu_model(),
                 "models": models})
    present = [m for m in MODELS if any(r["model"] == m for r in rows)]
    generated = "; ".join(f"`{run['command']}` ({run['seconds']} s, {run['cpu']}; its rows here: {', '.join(run['models'])})"
                          for run in runs)
    lines = [
        "# Which maps `segment` flags for review", "",
        f"Generated by {generated}. "
        f"The first {args.images} photographs of each dataset's training and test splits, as they are and changed "
        f"({len(CHANGES)} ways: m2unet.evaluation.camera_shift's CAMERA_CHANGES and POOR_PHOTOGRAPHS), each run as "
        "`m2unet segment --model NAME` runs it; F1 at the model's stored threshold inside the changed FOV; the review's "
        "measures (m2unet.inference.review) inside the estimated FOV. A map is flagged when its vessel fraction or its "
        "self-consistency is below the model's limit, chosen on the training photographs.", "",
        *(line for model in present for line in section(model, rows)),
    ]
    record = {"runs": runs, "rows": rows}
    write_atomic(args.out, lambda tmp: Path(tmp).write_text("\n".join(lines)))
    write_atomic(args.out.with_suffix(".json"), lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1, ensure_ascii=False)))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
