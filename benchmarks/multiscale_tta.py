"""results/scale/multiscale_tta.md: does averaging a model's maps over several FOV diameters help a camera left out?

Held-out CHASE_DB1 scores better when its photographs run smaller than the stored choice (a 30° camera draws wider
vessels than the 45° cameras the runs learnt from: docs/universal.md, "Zooms up to 1.5×"), while the model trained on
CHASE_DB1 loses there. Averaging the probability maps of one photograph run at several diameters (a multi-scale
test-time augmentation, beside or on top of the flips of ``segment --tta``) might keep the first without the second.
Each model runs every test photograph at each fixed diameter, as ``segment`` runs it otherwise (contrast floor, FOV
estimated from the photograph), and at its stored choice; maps are averaged per photograph, then scored pooled inside
the FOV at the weights' stored threshold (a priori) and at the split's best (optimistic).

    python benchmarks/multiscale_tta.py --dataset chase_db1 --diameters 768,896,1024 \\
        --weights zoom15-s1=RUNS/loo-chase_db1-zoom15-s1/best.safetensors \\
        --weights poolz20-s1=RUNS/loo-chase_db1-poolz20-s1/best.safetensors --weights universal

Maps are cached (float16 .npz, the plain view and the mean of the view and its three flips) in ``--cache``
(default RUNS/multiscale_maps beside the first weights' run folder, or runs/multiscale_maps), so reruns only score.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np

from m2unet.data import load_dataset
from m2unet.data.contrast import model_contrast_floor
from m2unet.data.fov import estimate_fov_mask
from m2unet.data.io import write_atomic
from m2unet.data.scale import back_max_from, fov_diameter, model_scale, run_at
from m2unet.evaluation import metrics as M
from m2unet.evaluation.predictor import ScaledPredictor, unscaled_predictor
from m2unet.system import cpu_model
from m2unet.weights import pretrained_path

REPO = Path(__file__).resolve().parents[1]
STORED = "stored choice"


def cached_maps(weights: Path, label: str, dataset: str, diameters: list[int], cache: Path) -> tuple[list[dict], float]:
    """Per test photograph {diameter or STORED: (plain map, flip-averaged map), "sample": its sample}, and the stored threshold.
    The stored choice reuses a fixed diameter's maps where it is one of them."""
    predict, metadata, _ = unscaled_predictor(weights, None, "fp32", "cpu")
    floor, max_from, scale = model_contrast_floor(metadata), back_max_from(metadata), model_scale(metadata)
    folder = cache / label / dataset
    folder.mkdir(parents=True, exist_ok=True)
    photographs = []
    for sample in load_dataset(dataset, "test"):
        stored = run_at(fov_diameter(estimate_fov_mask(sample.image)), scale)
        maps = {"sample": sample}
        for diameter in dict.fromkeys([*diameters, stored]):
            maps[diameter] = run_or_read(folder / f"{sample.name}-{diameter}.npz", ScaledPredictor(predict, (diameter, diameter), floor, max_from), sample.image)
        maps[STORED] = maps[stored]
        photographs.append(maps)
        print(f"{label} {sample.name}: stored choice {stored} px", flush=True)
    return photographs, float(metadata["threshold"])


CACHE_USE = {"computed": 0, "read": 0}  # for the table's header: a rerun from the cache takes seconds, not minutes


def run_or_read(path: Path, plain: ScaledPredictor, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(plain map, mean over the view and its flips) of ``image``, computed once and cached at ``path``."""
    CACHE_USE["read" if path.exists() else "computed"] += 1
    if not path.exists():
        maps = {"p0": plain(image).astype(np.float16), "p4": plain.with_flips()(image).astype(np.float16)}
        write_atomic(path, lambda temporary: np.savez_compressed(temporary, **maps))
    stored = np.load(path)
    return stored["p0"].astype(np.float32), stored["p4"].astype(np.float32)


def combinations(diameters: list[int]) -> list[tuple]:
    """The stored choice, each diameter alone, then the mean over every set of two or more."""
    sets = [c for size in range(2, len(diameters) + 1) for c in itertools.combinations(diameters, size)]
    return [(STORED,), *[(d,) for d in diameters], *sets]


def scores(photographs: list[dict], threshold: float, combination: tuple, flips: bool) -> tuple[float, float, float]:
    """(a-priori F1, best F1, best threshold) of the maps averaged over ``combination``, pooled inside the FOV."""
    view = 1 if flips else 0
    counts = []
    for maps in photographs:
        probability = np.mean([maps[d][view] for d in combination], axis=0)
        counts.append(M.threshold_counts(probability, maps["sample"].label, maps["sample"].mask))
    total = M.sum_counts(counts)
    best_threshold, best_f1 = M.best_threshold(total)
    return M.f1_at(total, threshold), best_f1, best_threshold


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="chase_db1")
    parser.add_argument("--diameters", default="768,896,1024", help="fixed FOV diameters, comma-separated")
    parser.add_argument("--weights", action="append", required=True, metavar="LABEL=FILE or NAME",
                        help="a run's weights, or a shipped model's name (repeatable)")
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "scale" / "multiscale_tta.md")
    args = parser.parse_args()
    diameters = [int(d) for d in args.diameters.split(",")]
    models = {}
    for item in args.weights:
        label, _, file = item.partition("=")
        models[label] = Path(file) if file else pretrained_path(label)
    cache = args.cache or next((p.parent.parent / "multiscale_maps" for p in models.values() if "pretrained" not in p.parts), Path("runs/multiscale_maps"))
    start = time.perf_counter()
    results = {label: cached_maps(weights, label, args.dataset, diameters, cache) for label, weights in models.items()}
    header = ["diameters (px)", *[f"{label}{', flips' if flips else ''}" for label in models for flips in (False, True)]]
    lines = [f"# Averaging maps over FOV diameters: {args.dataset} test split", "",
             f"Generated by `python benchmarks/multiscale_tta.py --dataset {args.dataset} --diameters {args.diameters} "
             + " ".join(f"--weights {label}" if "pretrained" in weights.parts else f"--weights {label}={shown(weights)}" for label, weights in models.items()) + f"` ({time.perf_counter() - start:.0f} s, {cpu_model()}; "
             f"{CACHE_USE['computed']} photograph-diameter maps computed, {CACHE_USE['read']} read from the cache).",
             "Pooled F1 inside the FOV at each model's stored threshold (a priori), in brackets the split's best F1 and its",
             "threshold (optimistic). Each row averages the probability maps of every photograph run at those diameters; "
             f"\"{STORED}\" is the diameter the weights choose for each photograph (`segment --model universal`, without the search); "
             "\"flips\": each map is itself the mean over the view and its three flips (`segment --tta`). Maps cached as float16.", "",
             "Stored thresholds: " + ", ".join(f"{label} {results[label][1]:.3f}" for label in models) + ".", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for combination in combinations(diameters):
        cells = []
        for label in models:
            photographs, threshold = results[label]
            for flips in (False, True):
                a_priori, best, at = scores(photographs, threshold, combination, flips)
                cells.append(f"{a_priori:.4f} ({best:.4f} at {at:.2f})")
        lines.append(f"| {' + '.join(str(d) for d in combination)} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


def shown(weights: Path) -> str:
    """A weights file as the table names it: relative to the repository when inside it, else its run folder and name."""
    try:
        return str(weights.resolve().relative_to(REPO))
    except ValueError:
        return f"RUNS/{weights.parent.name}/{weights.name}"


if __name__ == "__main__":
    raise SystemExit(main())
