"""results/scale/threshold_transfer.md: does any threshold rule carry to a camera never seen in training?

On held-out DRIVE the leave-one-out model (trained on CHASE_DB1 + HRF) scores 0.733 at its stored threshold and 0.788
at DRIVE's own best one (results/scale/loo.md), so the threshold looks like the loss. This script tries rules that
need no label of the new camera, each fixed on the training datasets' held-out images (never on the test set):

- stored: the threshold in the weights (best pooled F1 on the held-out training images of both datasets);
- balanced: the threshold with the best *mean* of the two datasets' F1 (pooled F1 favours the dataset with more
  vessel pixels);
- Otsu: each image's own threshold, Otsu's on its probabilities inside the FOV (scikit-image, 256 bins);
- Otsu × α: Otsu's threshold scaled by α, α chosen like ``balanced``;
- hysteresis: pixels ≥ the stored threshold plus connected pixels ≥ k × it, k chosen like ``balanced``;
- mass × β: each image keeps its β·Σp most probable FOV pixels (Σp: its probability mass inside the FOV, the vessel
  area a calibrated map expects), β chosen like ``balanced``: a map that is unsure everywhere keeps fewer pixels
  at a lower cut, whatever its absolute level;
- soft-F1 × α: each image's cut maximising the soft F1 of its map against its own binary map (the F1 it expects if
  its probabilities were calibrated), scaled by α chosen like ``balanced``.

Beside them, the test set's best single threshold (optimistic: chosen on the test labels). Pooled F1 inside the FOV.

    python benchmarks/threshold_transfer.py --runs runs                 # runs/loo-<held-out>/best.safetensors
    python benchmarks/threshold_transfer.py --runs runs --suffix=-lowres # runs/loo-<held-out>-lowres/ where present

Probability maps are cached (float16 .npz) in ``--cache`` (default RUNS/probabilities), so reruns only score.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from m2unet.data import load_dataset
from m2unet.data.datasets import DATASETS
from m2unet.evaluation import metrics as M
from m2unet.system import cpu_model
from m2unet.weights import pretrained_path

REPO = Path(__file__).resolve().parents[1]
NAMES = tuple(DATASETS)
GRID = np.round(np.arange(0.05, 0.96, 0.01), 2)


def probabilities(weights: Path, dataset: str, split: str, cache: Path) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(probability, label, FOV) per image of the split, ``split`` = "val" meaning the held-out training images;
    ``cache``: this weights file's folder of cached maps."""
    from m2unet.evaluation.predictor import model_predictor

    folder = cache / dataset / split
    names = DATASETS[dataset].holdout if split == "val" else None
    data = load_dataset(dataset, "train" if split == "val" else split)
    predict = None
    out = []
    for index in range(len(data)):
        name = data.items[index].name
        if names is not None and name not in names:
            continue
        path = folder / f"{name}.npz"
        if not path.exists():
            predict = predict or model_predictor(weights, None, "fp32", "cpu")[0]
            sample = data[index]
            folder.mkdir(parents=True, exist_ok=True)
            with open(path.with_suffix(".tmp"), "wb") as handle:
                np.savez_compressed(handle, p=predict(sample.image).astype(np.float16), label=sample.label, mask=sample.mask)
            path.with_suffix(".tmp").replace(path)
        stored = np.load(path)
        out.append((stored["p"].astype(np.float32), stored["label"].astype(bool), stored["mask"].astype(bool)))
    return out


def pooled_f1(items, binarise) -> float:
    """Pooled F1 inside the FOV of ``binarise(probability) → bool map`` over the images."""
    total = M.sum_counts(M.binary_counts(binarise(p), label, mask) for p, label, mask in items)
    return float(M.f1_score(total["tp"], total["fp"], total["fn"]))


def otsu(probability: np.ndarray, mask: np.ndarray) -> float:
    from skimage.filters import threshold_otsu

    return float(threshold_otsu(probability[mask], nbins=256))


def mass_cut(inside: np.ndarray, beta: float) -> float:
    """The cut that keeps the β·Σp most probable FOV pixels; ``inside``: the FOV's probabilities, descending."""
    keep = int(round(beta * float(inside.sum(dtype=np.float64))))
    return float(inside[min(max(keep, 1), inside.size - 1)])


def soft_f1_cut(inside: np.ndarray) -> float:
    """The cut maximising 2·Σ_{p≥t} p / (Σp + #{p≥t}) inside the FOV: the map's F1 against itself as soft labels."""
    values = inside.astype(np.float64)
    kept = np.arange(1, values.size + 1)
    return float(values[int(np.argmax(2 * np.cumsum(values) / (values.sum() + kept)))])


def hysteresis(low: float, high: float):
    from skimage.filters import apply_hysteresis_threshold

    return lambda p: apply_hysteresis_threshold(p, low, high)


def balanced_choice(candidates, vals: dict[str, list], rule) -> float:
    """The candidate with the best mean over the training datasets of their pooled F1 under ``rule(candidate)``."""
    return max(candidates, key=lambda c: np.mean([pooled_f1(items, rule(c, items)) for items in vals.values()]))


def rules(stored: float, vals: dict[str, list]) -> dict[str, tuple]:
    """name → (rule(items) → binarise, the parameter chosen on the training datasets' held-out images)."""
    def fixed(t, items=None):
        return lambda p: p >= t

    def otsu_scaled(alpha, items):
        cut = {id(p): alpha * otsu(p, m) for p, _, m in items}
        return lambda p: p >= cut[id(p)]

    def hysteresis_k(k, items=None):
        return hysteresis(k * stored, stored)

    descending: dict[int, np.ndarray] = {}  # each map's FOV probabilities sorted once, not once per candidate parameter
    soft_f1_cuts: dict[int, float] = {}

    def inside(p, m):
        if id(p) not in descending:
            descending[id(p)] = np.sort(p[m])[::-1]
        return descending[id(p)]

    def soft_f1_of(p, m):
        if id(p) not in soft_f1_cuts:
            soft_f1_cuts[id(p)] = soft_f1_cut(inside(p, m))
        return soft_f1_cuts[id(p)]

    def per_image(cut):
        def rule(parameter, items):
            cuts = {id(p): cut(p, m, parameter) for p, _, m in items}
            return lambda p: p >= cuts[id(p)]
        return rule

    mass = per_image(lambda p, m, beta: mass_cut(inside(p, m), beta))
    soft_f1 = per_image(lambda p, m, alpha: alpha * soft_f1_of(p, m))

    balanced = balanced_choice(GRID, vals, fixed)
    alpha = balanced_choice(np.round(np.arange(0.6, 1.81, 0.05), 2), vals, otsu_scaled)
    k = balanced_choice((1.0, 0.9, 0.8, 0.7, 0.6, 0.5), vals, hysteresis_k)
    beta = balanced_choice(np.round(np.arange(0.2, 0.81, 0.02), 2), vals, mass)
    scale = balanced_choice(np.round(np.arange(1.0, 3.01, 0.1), 1), vals, soft_f1)
    return {
        "stored": (lambda items: fixed(stored), f"{stored:.3f}"),
        "balanced": (lambda items: fixed(balanced), f"{balanced:.2f}"),
        "Otsu per image": (lambda items: otsu_scaled(1.0, items), "—"),
        "Otsu × α": (lambda items: otsu_scaled(alpha, items), f"α {alpha:.2f}"),
        "hysteresis": (lambda items: hysteresis_k(k), f"k {k:.1f}"),
        "mass × β": (lambda items: mass(beta, items), f"β {beta:.2f}"),
        "soft-F1 × α": (lambda items: soft_f1(scale, items), f"α {scale:.1f}"),
    }


def test_row(test_set: str, trained_on: list[str], weights: Path, name: str, cache: Path) -> list[str]:
    """The rules' F1 on ``test_set``'s test split, each chosen on the held-out images of ``trained_on``."""
    from m2unet.weights import read_metadata

    stored = float(read_metadata(weights)["threshold"])
    test = probabilities(weights, test_set, "test", cache / name)
    vals = {d: probabilities(weights, d, "val", cache / name) for d in trained_on}
    cells = [test_set, f"`{name}`"]
    for make, parameter in rules(stored, vals).values():
        cells.append(f"{pooled_f1(test, make(test)):.4f} ({parameter})")
    best = max(GRID, key=lambda t: pooled_f1(test, lambda p, t=t: p >= t))
    cells.append(f"{pooled_f1(test, lambda p: p >= best):.4f} ({best:.2f})")
    return cells


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--suffix", default="", help="also score runs/loo-<held-out><suffix> where it exists")
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "scale" / "threshold_transfer.md")
    args = parser.parse_args()
    cache = args.cache or args.runs / "probabilities"
    start = time.perf_counter()
    header = ["held out", "run", "stored", "balanced", "Otsu per image", "Otsu × α", "hysteresis", "mass × β", "soft-F1 × α",
              "test set's best (optimistic)"]
    rows = []
    for held_out in NAMES:
        for suffix in dict.fromkeys(["", args.suffix]):
            weights = args.runs / f"loo-{held_out}{suffix}" / "best.safetensors"
            if weights.exists():
                rows.append(test_row(held_out, [d for d in NAMES if d != held_out], weights, weights.parent.name, cache))
                print(" | ".join(rows[-1]), flush=True)
    in_domain = []  # a rule must not cost the shipped universal model on the cameras it knows
    for test_set in NAMES:
        in_domain.append(test_row(test_set, list(NAMES), pretrained_path("universal"), "universal", cache))
        print(" | ".join(in_domain[-1]), flush=True)
    lines = ["# Threshold rules on a camera never seen in training", "",
             f"Generated by `python benchmarks/threshold_transfer.py --runs RUNS{' --suffix=' + args.suffix if args.suffix else ''}` "
             f"({time.perf_counter() - start:.0f} s, {cpu_model()}). Pooled F1 inside the FOV on the held-out dataset's test split;",
             "each rule's parameter (in brackets) chosen on the held-out training images of the two training datasets. Probabilities",
             "are cached as float16, so the stored-threshold column can differ from `m2unet evaluate` in the fourth decimal.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    base = [row for row in rows if row[1] == f"`loo-{row[0]}`"]
    if len(base) == len(NAMES):  # the mean over the three held-out datasets, first runs only
        means = [np.mean([float(row[i].split()[0]) for row in base]) for i in range(2, len(header))]
        lines.append("| mean | | " + " | ".join(f"{m:.4f}" for m in means) + " |")
    lines += ["", "In domain: the shipped `universal` on each test split, each rule's parameter chosen on its held-out training",
              "images of all three datasets.", "", "| test set | model | " + " | ".join(header[2:]) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in in_domain]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
