"""results/scale/consistency_diameter.md: choosing each photograph's run diameter by its own map's self-consistency.

`m2unet segment` runs a photograph whose FOV is d px across at clamp(d, lo, hi) (the range stored with the weights).
FOV diameter is not vessel width: a 30° camera draws wider vessels than a 45° one at the same diameter, so a
high-resolution 30° photograph is shrunk too little (CHASE_DB1 enlarged to a 2400-px FOV runs at 1792 px and loses).
This measures a label-free alternative: run the photograph at each candidate diameter and keep the one whose
probability map agrees best with its own binary map at the stored threshold (soft Dice of p and [p ≥ t]: high when the
map is confident on both sides of the threshold, low when much of it hovers near the threshold). Pooled F1 inside
the FOV at the stored threshold, against the stored range, each fixed diameter and the per-photograph oracle
(optimistic). The search within the stored range is `m2unet segment --search-diameter`; the search over all
candidates (below the range too) is measured, not offered. The per-photograph scores are kept in OUT.json, so the
table can be redone from them (--tabulate) without running the model again.

    .venv/bin/python benchmarks/consistency_diameter.py [--weights FILE] [--images N] [--change "FOV 2400 px"]
    .venv/bin/python benchmarks/consistency_diameter.py --tabulate results/scale/consistency_diameter.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from m2unet.data import estimate_fov_mask, load_dataset, write_atomic
from m2unet.data.contrast import model_contrast_floor, run_as_trained
from m2unet.data.scale import DiameterSearch, fov_diameter, model_scale, run_at, self_consistency
from m2unet.evaluation.camera_shift import CAMERA_CHANGES
from m2unet.evaluation.metrics import binary_counts, f1_score
from m2unet.evaluation.predictor import model_predictor
from m2unet.system import cpu_model
from m2unet.weights import pretrained_path, read_metadata, threshold_of

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "results" / "scale" / "consistency_diameter.md"
DATASETS = ("drive", "chase_db1", "hrf")
CANDIDATES = (768, 1024, 1280, 1536, 1792)


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


def rule_cells(photos: list[dict], stored: tuple[int, int], threshold: float, trained_at: int) -> tuple[list[float], list[int]]:
    """F1 under [stored range, search within it (what ``segment --search-diameter`` does), search from the training
    diameter up to the largest candidate, search over all candidates, oracle], and the choices of the search within the range."""
    within = DiameterSearch.within(stored, threshold)  # m2unet.data.scale's own search, fed the recorded scores
    upward = DiameterSearch(tuple(d for d in CANDIDATES if d >= trained_at), threshold, stored)

    def nearest_stored(photo):
        return nearest(run_at(photo["fov_diameter"], stored))

    def searched(photo, search=within):
        # no score is recorded above the largest candidate: the FOV capped there (the start stays what it was)
        fov = min(photo["fov_diameter"], CANDIDATES[-1])
        return nearest(search.choose(fov, lambda d: photo["rows"][nearest(d)][3]))

    def most_consistent(photo):
        return max(CANDIDATES, key=lambda d: photo["rows"][d][3])

    def oracle(photo):
        return max(CANDIDATES, key=lambda d: f1_score(*photo["rows"][d][:3]))

    rules = (nearest_stored, searched, lambda photo: searched(photo, upward), most_consistent, oracle)
    return [pooled(photos, rule) for rule in rules], [searched(photo) for photo in photos]


def nearest(diameter: int) -> int:
    return min(CANDIDATES, key=lambda d: abs(d - diameter))


def measure(weights: Path, datasets: list[str], changes: list[str], images: int | None) -> dict:
    """{dataset: {change: [photograph rows]}} (:func:`photograph_rows`) over the picked test photographs."""
    metadata = read_metadata(weights)
    threshold, floor = threshold_of(metadata), model_contrast_floor(metadata)
    predict, _, _ = model_predictor(weights, "openvino", "fp32", "cpu", rescale=False)
    record = {}
    for dataset in datasets:
        split = load_dataset(dataset, "test")
        picked = range(len(split)) if images is None else np.linspace(0, len(split) - 1, images).round().astype(int)
        for change in changes:
            photos = record.setdefault(dataset, {}).setdefault(change, [])
            for sample in (split[int(i)] for i in picked):
                photos.append(photograph_rows(predict, sample, change, threshold, floor))
                print(dataset, change, sample.name, {d: round(r[3], 4) for d, r in photos[-1]["rows"].items()}, flush=True)
    return record


def table(record: dict, weights: Path, command: str, cpu: str) -> list[str]:
    metadata = read_metadata(weights)
    threshold, stored = threshold_of(metadata), model_scale(metadata)
    lines = ["# Run diameter chosen per photograph by its map's self-consistency", "",
             f"Generated by `{command}` with {weights.name} ({cpu}). Pooled F1 inside the FOV at the stored threshold "
             f"({threshold:.3f}), contrast restored as `segment` does; candidates {', '.join(map(str, CANDIDATES))} px. Stored range: "
             f"clamp(d, {stored[0]}, {stored[1]}) (its nearest candidate), what `segment` does. Search in range: what `segment "
             "--search-diameter` does within the stored range (m2unet.data.scale.DiameterSearch: from the stored choice to the neighbour "
             "whose map is more self-consistent, while there is one; `segment` also tries the diameters above the range, up to the "
             "photograph's own, which are not among the candidates here). Search upward: the same search over the candidates from the training FOV diameter "
             f"({metadata.get('fov_diameter')} px) up. Search, all: the most self-consistent of all candidates. Oracle: each "
             "photograph's best candidate (optimistic). Chosen: the search in range's diameters.", "",
             "| test set | change | stored range | search in range | search upward | search, all | oracle | " + " | ".join(map(str, CANDIDATES)) + " | chosen |",
             "|---|---|---:|---:|---:|---:|---:|" + "---:|" * len(CANDIDATES) + "---|"]
    for dataset, by_change in record.items():
        for change, photos in by_change.items():
            rules, chosen = rule_cells(photos, stored, threshold, int(metadata.get("fov_diameter") or stored[0]))
            fixed = [pooled(photos, lambda photo, d=d: d) for d in CANDIDATES]
            counts = ", ".join(f"{d}×{chosen.count(d)}" for d in CANDIDATES if d in chosen)
            lines.append(f"| {dataset} | {change} | " + " | ".join(f"{v:.4f}" for v in rules + fixed) + f" | {counts} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None, help="weights file (default: the shipped universal)")
    parser.add_argument("--images", type=int, default=None, help="test photographs per dataset, spread evenly over the split (default: all)")
    parser.add_argument("--change", action="append", default=None, choices=list(CAMERA_CHANGES), help="camera change(s)")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--tabulate", type=Path, default=None, help="only redo the table from a recorded OUT.json")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    weights = args.weights or pretrained_path("universal")
    if args.tabulate:
        recorded = json.loads(args.tabulate.read_text())
        record = {d: {c: [{**p, "rows": {int(k): v for k, v in p["rows"].items()}} for p in photos] for c, photos in by.items()}
                  for d, by in recorded["photographs"].items()}
        command, cpu = recorded["command"], recorded["cpu"]
    else:
        record = measure(weights, args.datasets.split(","), args.change or ["as it is", "FOV 2400 px"], args.images)
        command, cpu = "python benchmarks/consistency_diameter.py " + " ".join(f"'{a}'" if " " in a else a for a in sys.argv[1:]), cpu_model()
        write_atomic(args.out.with_suffix(".json"), lambda tmp: Path(tmp).write_text(json.dumps({"command": command, "cpu": cpu, "photographs": record})))
    lines = table(record, weights, command, cpu)
    write_atomic(args.out, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))
    print("\n".join(lines[-sum(len(v) for v in record.values()):]))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
