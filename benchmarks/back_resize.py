"""results/scale/back_resize*.md: three ways to bring a map computed on an enlarged photograph back to its grid.

A photograph whose FOV is narrower than the model's run diameter is enlarged to run (DRIVE's 540-px FOV to 1024 px,
1.9×), and its probability shrunk back (m2unet.data.scale.ScaleFrame.to_image). Three ways, scored on the same map:
the area-weighted mean (bilinear, antialiased), sampled at each photograph pixel's centre (bilinear, no antialiasing),
and the maximum over the model pixels whose centres fall inside each photograph pixel (m2unet.data.scale.shrink_by_max:
a pixel is vessel where any part of it is, as whoever drew a low-resolution camera's labels marked it). The mean
dilutes a vessel thinner than the photograph's pixel below the threshold. The shipped way is the maximum from the
model's m2unet.data.scale.back_max_from up (1.5× the most its training photographs were enlarged) and the mean below. Scored on the held-out training images
(which a choice may use) and the test split, at the stored threshold; photographs shrunk to run (HRF) come back
enlarged, alike in all three ways, and are left out.

    python benchmarks/back_resize.py                       # universal; DRIVE and CHASE_DB1
    python benchmarks/back_resize.py --tta                 # the same with flip TTA on the scaled view
    python benchmarks/back_resize.py --search-diameter     # each photograph's diameter searched (what `auto` runs)
    python benchmarks/back_resize.py --weights runs/loo-drive-ema300/best.safetensors --datasets drive \
        --out results/scale/back_resize_loo_drive.md      # the model trained without DRIVE, on DRIVE
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from m2unet.data import load_dataset
from m2unet.data.datasets import DATASETS
from m2unet.data.scale import back_max_from
from m2unet.evaluation import metrics as M
from m2unet.system import cpu_model
from m2unet.weights import pretrained_path

REPO = Path(__file__).resolve().parents[1]
WAYS = ("mean (area-weighted)", "sampled at pixel centres", "maximum over each pixel")


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


def every_way(predictor, image: np.ndarray, tta: bool) -> tuple[float, list[np.ndarray]]:
    """(the enlargement, the probability of ``image`` brought back each way in :data:`WAYS`) from one run at the
    model's scale, or at the diameter its search stops at."""
    from m2unet.data.contrast import restoring
    from m2unet.data.fov import estimate_fov_mask
    from m2unet.data.scale import DiameterSearch, run_frame, scale_frame
    from m2unet.inference.tiling import flip_average

    mask = estimate_fov_mask(image)
    restored, _ = restoring(predictor.predict, image, mask, predictor.contrast_floor)
    if isinstance(predictor.scale, DiameterSearch):
        frame = scale_frame(mask, predictor.scale.run(restored, image, mask)[1])
    else:
        frame = run_frame(mask, predictor.scale)
    view = frame.to_model(image)
    probability = flip_average(restored, view) if tta else restored(view)
    if frame.identity or frame.scale <= 1:
        return frame.scale, [frame.to_image(probability)] * len(WAYS)
    top, left, height, width = frame.box
    sampled = np.zeros(frame.image_shape, dtype=np.float32)
    sampled[top : top + height, left : left + width] = sample_at_centres(probability, (height, width))
    # the mean (max_from None) and the maximum (from any enlargement) as ScaleFrame.to_image brings them back
    return frame.scale, [frame.to_image(probability), sampled, frame.to_image(probability, max_from=0.0)]


def score(predictor, dataset: str, split: str, threshold: float, tta: bool) -> list[dict]:
    """Per way: pooled F1 at ``threshold`` and at the best threshold, and the map's vessel area over the labels'."""
    names = DATASETS[dataset].holdout if split == "held-out training images" else None
    data = load_dataset(dataset, "train" if names else "test")
    counts: list[list[dict]] = [[] for _ in WAYS]
    enlargements = []
    for index in range(len(data)):
        if names and data.items[index].name not in names:
            continue
        sample = data[index]
        enlargement, maps = every_way(predictor, sample.image, tta)
        enlargements.append(enlargement)
        for way, probability in enumerate(maps):
            counts[way].append(M.threshold_counts(probability, sample.label, sample.mask))
    rows = []
    for way, per_image in zip(WAYS, counts, strict=True):
        pooled = M.sum_counts(per_image)
        best, best_f1 = M.best_threshold(pooled)
        at = M.at_threshold(pooled, threshold)
        rows.append({"dataset": dataset, "images": split, "n": len(per_image), "way": way, "f1": M.f1_at(pooled, threshold),
                     "area": (at["tp"] + at["fp"]) / (at["tp"] + at["fn"]), "best": best, "best_f1": best_f1,
                     "enlargement": f"{min(enlargements):.2f}–{max(enlargements):.2f}×"})
    return rows


def main() -> int:
    from m2unet.evaluation.predictor import model_predictor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None, help="default: the shipped universal model")
    parser.add_argument("--datasets", default="drive,chase_db1")
    parser.add_argument("--tta", action="store_true", help="flip TTA on the scaled view, as evaluate --tta runs it")
    parser.add_argument("--search-diameter", action="store_true", help="each photograph's diameter searched, as --model auto runs")
    parser.add_argument("--out", type=Path, default=None, help="default results/scale/back_resize[_tta][_search].md")
    args = parser.parse_args()
    weights = args.weights or pretrained_path("universal")
    flags = (" --tta" if args.tta else "") + (" --search-diameter" if args.search_diameter else "")
    out = args.out or REPO / "results" / "scale" / f"back_resize{flags.replace(' --', '_').replace('-diameter', '')}.md"
    predictor, metadata, _ = model_predictor(weights, None, "fp32", "cpu", search_diameter=args.search_diameter)
    threshold = float(metadata["threshold"])
    start = time.perf_counter()
    rows = [row for dataset in args.datasets.split(",") for split in ("held-out training images", "test split")
            for row in score(predictor, dataset, split, threshold, args.tta)]
    command = (f"python benchmarks/back_resize.py{flags}" + (f" --weights {args.weights} --datasets {args.datasets}" if args.weights else "")
               + (f" --out {args.out}" if args.out else ""))  # so that the file's own command rewrites it
    lines = [
        "# A map computed on an enlarged photograph, back on its grid: mean, pixel centres or maximum",
        "",
        f"Generated by `{command}` ({weights.name}, threshold {threshold:.3f} stored with it{', flip TTA' if args.tta else ''}"
        f"{', each diameter searched' if args.search_diameter else ''}; {time.perf_counter() - start:.0f} s on {cpu_model()}). "
        "Pooled F1 inside the FOV; area: the map's vessel pixels over the labels' at the stored threshold. Enlargement: "
        f"model pixels per photograph pixel; for this model the shipped way is the maximum from {back_max_from(metadata):.2f}× up "
        "(m2unet.data.scale.back_max_from), the mean below.",
        "",
        "| dataset | images | enlargement | way back | F1 at the stored threshold | area | best threshold | F1 there |",
        "|---|---|---|---|---:|---:|---:|---:|",
        *(f"| {r['dataset']} | {r['images']} ({r['n']}) | {r['enlargement']} | {r['way']} | {r['f1']:.4f} | {r['area']:.3f} | "
          f"{r['best']:.3f} | {r['best_f1']:.4f} |" for r in rows),
        "",
    ]
    out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
