"""results/scale/back_resize.md: is DRIVE's in-domain threshold gap the way the map comes back to the photograph?

The universal model runs a DRIVE photograph enlarged from a 540-px FOV to 1024 px and its probability is shrunk back
(m2unet.data.scale.ScaleFrame.to_image: bilinear, antialiased). Antialiasing averages a thin vessel's probability
with the background around it, so a 1-px vessel that the model found in the enlarged view can fall below the
threshold on the photograph's grid, while the threshold was chosen in the enlarged view, against labels enlarged by
sampling. On DRIVE's test split the universal model's maps cover 0.89 of the labels' vessel area at its threshold
(results/scale/area_ratio.md). This script scores both ways of bringing the same map back — as shipped, and
sampled at each photograph pixel's centre (bilinear, no antialiasing: the map's value where the pixel is) — on the
held-out training images (which a choice may use) and on the test split (which it may not), at the stored threshold.
HRF's photographs are shrunk to run, so their maps are enlarged back and both ways agree there.

    python benchmarks/back_resize.py                       # universal; DRIVE and CHASE_DB1
    python benchmarks/back_resize.py --tta                 # the same with flip TTA on the scaled view
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
WAYS = ("antialiased (as shipped)", "sampled at pixel centres")


def sample_at_centres(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``plane`` resized to ``size`` = (height, width) by bilinear interpolation at each new pixel's centre (no
    antialiasing: shrinking skips values instead of averaging them)."""

    def axis(new: int, old: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        at = np.clip((np.arange(new) + 0.5) * old / new - 0.5, 0, old - 1)
        low = np.floor(at).astype(int)
        return low, np.minimum(low + 1, old - 1), (at - low).astype(np.float32)

    y0, y1, wy = axis(size[0], plane.shape[0])
    x0, x1, wx = axis(size[1], plane.shape[1])
    rows = plane[y0] * (1 - wy)[:, None] + plane[y1] * wy[:, None]
    return rows[:, x0] * (1 - wx) + rows[:, x1] * wx


def both_ways(predictor, image: np.ndarray, tta: bool) -> tuple[np.ndarray, np.ndarray]:
    """The probability of ``image`` brought back each way in :data:`WAYS` from one run at the model's scale."""
    from m2unet.data.contrast import restoring
    from m2unet.data.fov import estimate_fov_mask
    from m2unet.data.scale import run_frame
    from m2unet.inference.tiling import flip_average

    mask = estimate_fov_mask(image)
    restored, _ = restoring(predictor.predict, image, mask, predictor.contrast_floor)
    frame = run_frame(mask, predictor.scale)
    view = frame.to_model(image)
    probability = flip_average(restored, view) if tta else restored(view)
    if frame.identity:
        return probability, probability
    top, left, height, width = frame.box
    sampled = np.zeros(frame.image_shape, dtype=np.float32)
    sampled[top : top + height, left : left + width] = sample_at_centres(probability, (height, width))
    return frame.to_image(probability), sampled


def score(predictor, dataset: str, split: str, threshold: float, tta: bool) -> list[dict]:
    """Per way: pooled F1 at ``threshold`` and at the best threshold, and the map's vessel area over the labels'."""
    names = DATASETS[dataset].holdout if split == "held-out training images" else None
    data = load_dataset(dataset, "train" if names else "test")
    counts: list[list[dict]] = [[], []]
    for index in range(len(data)):
        if names and data.items[index].name not in names:
            continue
        sample = data[index]
        for way, probability in enumerate(both_ways(predictor, sample.image, tta)):
            counts[way].append(M.threshold_counts(probability, sample.label, sample.mask))
    rows = []
    for way, per_image in zip(WAYS, counts, strict=True):
        pooled = M.sum_counts(per_image)
        best, best_f1 = M.best_threshold(pooled)
        at = M.at_threshold(pooled, threshold)
        rows.append({"dataset": dataset, "images": split, "n": len(per_image), "way": way, "f1": M.f1_at(pooled, threshold),
                     "area": (at["tp"] + at["fp"]) / (at["tp"] + at["fn"]), "best": best, "best_f1": best_f1})
    return rows


def main() -> int:
    from m2unet.evaluation.predictor import model_predictor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None, help="default: the shipped universal model")
    parser.add_argument("--datasets", default="drive,chase_db1")
    parser.add_argument("--tta", action="store_true", help="flip TTA on the scaled view, as evaluate --tta runs it")
    parser.add_argument("--out", type=Path, default=None, help="default results/scale/back_resize[_tta].md")
    args = parser.parse_args()
    weights = args.weights or pretrained_path("universal")
    out = args.out or REPO / "results" / "scale" / f"back_resize{'_tta' if args.tta else ''}.md"
    predictor, metadata, _ = model_predictor(weights, None, "fp32", "cpu")
    threshold = float(metadata["threshold"])
    start = time.perf_counter()
    rows = [row for dataset in args.datasets.split(",") for split in ("held-out training images", "test split")
            for row in score(predictor, dataset, split, threshold, args.tta)]
    lines = [
        "# The map back on the photograph's grid: antialiased or sampled at pixel centres",
        "",
        f"Generated by `python benchmarks/back_resize.py{' --tta' if args.tta else ''}` ({weights.name}, threshold "
        f"{threshold:.3f} stored with it{', flip TTA' if args.tta else ''}; {time.perf_counter() - start:.0f} s on "
        f"{cpu_model()}). Pooled F1 inside the FOV; area: the map's vessel pixels over the labels' at the stored threshold.",
        "",
        "| dataset | images | way back | F1 at the stored threshold | area | best threshold | F1 there |",
        "|---|---|---|---:|---:|---:|---:|",
        *(f"| {r['dataset']} | {r['images']} ({r['n']}) | {r['way']} | {r['f1']:.4f} | {r['area']:.3f} | {r['best']:.3f} | "
          f"{r['best_f1']:.4f} |" for r in rows),
        "",
    ]
    out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
