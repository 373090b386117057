"""results/scale/error_location_DATASET.md: where a model's binary map and a second observer disagree with the first.

For each test photograph of DATASET, the map at the model's stored threshold (`m2unet.vessels`, as `m2unet segment
--weights FILE` writes `*_vessels.png`, here PyTorch fp32) is compared with the first observer inside the dataset's FOV
mask, pooled over the split: F1, precision, recall, the map's vessel area over the labels', and where the errors lie.
A false positive within 2 px of a labelled vessel is an edge drawn wider than the observer drew it; one farther away is
a vessel (or speck) the observer did not draw. A false negative within 2 px of the map's vessels is an edge drawn
narrower; one farther away a vessel the map missed. The second observer, where the dataset has one, is scored the same
way: how far two people disagree, and where.

    python benchmarks/error_location.py --dataset chase_db1 --weights universal \\
        --weights pool-s1=RUNS/loo-chase_db1-pool15-s1/best.safetensors
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

import m2unet
from m2unet.data import load_dataset
from m2unet.evaluation.metrics import f1_score, precision, recall
from m2unet.system import cpu_model

REPO = Path(__file__).resolve().parents[1]
NEAR_PX = 2  # an error this close to the other side's vessel is at a vessel's edge


def error_classes(drawn: np.ndarray, label: np.ndarray, fov: np.ndarray) -> list[np.ndarray]:
    """Masks of [TP, FP near, FP far, FN near, FN far] of one binary map against one label, inside ``fov``."""
    near_label = ndimage.distance_transform_edt(~label) <= NEAR_PX
    near_drawn = ndimage.distance_transform_edt(~drawn) <= NEAR_PX
    false_positive, false_negative = drawn & ~label & fov, ~drawn & label & fov
    return [drawn & label & fov, false_positive & near_label, false_positive & ~near_label, false_negative & near_drawn,
            false_negative & ~near_drawn]


COLOURS = [(255, 255, 255), (255, 160, 0), (230, 30, 30), (120, 200, 255), (40, 80, 255)]  # in error_classes' order


def error_colours(classes: list[np.ndarray]) -> np.ndarray:
    """uint8 RGB of :func:`error_classes`: agreement white, an edge drawn wider orange, a vessel only the map has red,
    an edge drawn narrower light blue, a vessel only the observer has blue; black elsewhere."""
    picture = np.zeros((*classes[0].shape, 3), dtype=np.uint8)
    for where, colour in zip(classes, COLOURS, strict=True):
        picture[where] = colour
    return picture


def figure(path: Path, sample, panels: list[tuple[str, list[np.ndarray]]], size: int = 256) -> None:
    """The photograph and each map's errors (:func:`error_classes`) against the first observer, on a square of ``size``
    px at the FOV's centre (CHASE_DB1's photographs are centred near the disc, where thin and wide vessels meet)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = np.nonzero(sample.mask)
    top, left = int(rows.mean()) - size // 2, int(cols.mean()) - size // 2
    window = np.s_[top:top + size, left:left + size]
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(4.2 * (len(panels) + 1), 4.6))
    axes[0].imshow(sample.image[window])
    axes[0].set_title(sample.name, fontsize=9)
    for axis, (title, classes) in zip(axes[1:], panels, strict=True):
        axis.imshow(error_colours(classes)[window], interpolation="nearest")
        axis.set_title(title, fontsize=9)
    for axis in axes:
        axis.axis("off")
    fig.text(0.5, 0.02, "white: both drew it · orange: edge drawn wider · red: vessel only the map has · light blue: edge drawn "
             "narrower · blue: vessel only the first observer has", ha="center", fontsize=8)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def row(name: str, counts: np.ndarray) -> list[str]:
    """One table row from counts summed over the split."""
    tp, fp_near, fp_far, fn_near, fn_far = (int(x) for x in counts)
    fp, fn = fp_near + fp_far, fn_near + fn_far
    return [name, f"{f1_score(tp, fp, fn):.4f}", f"{precision(tp, fp):.3f}", f"{recall(tp, fn=fn):.3f}", f"{(tp + fp) / (tp + fn):.2f}",
            f"{fp_near / fp:.2f}", f"{fn_near / fn:.2f}", f"{f1_score(tp, fp_far, fn):.4f}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="chase_db1")
    parser.add_argument("--weights", action="append", required=True, help="NAME=FILE, or a pretrained model's name (repeatable)")
    parser.add_argument("--out", type=Path, help="[default: results/scale/error_location_DATASET.md]")
    parser.add_argument("--figure", help="Also draw this test photograph's errors (first model and second observer) beside the table (.png)")
    args = parser.parse_args(argv)
    out = args.out or REPO / "results" / "scale" / f"error_location_{args.dataset}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    data = load_dataset(args.dataset, "test")
    if args.figure and args.figure not in [item.name for item in data.items]:
        parser.error(f"--figure {args.figure}: not a photograph of {data.name}'s test split")
    models = [item.split("=", 1) if "=" in item else (item, None) for item in args.weights]
    totals = {name: np.zeros(5, dtype=np.int64) for name, _ in models}
    observer = np.zeros(5, dtype=np.int64)
    for index in range(len(data)):
        sample = data[index]
        for name, weights in models:
            drawn = m2unet.vessels(sample.image, model=name if weights is None else "auto", weights=weights, fov_mask=sample.mask,
                                   backend="torch", precision="fp32", search_diameter=False)
            classes = error_classes(drawn, sample.label, sample.mask)
            totals[name] += [where.sum() for where in classes]
            if sample.name == args.figure and name == models[0][0]:
                panels = [(f"{name} against the first observer", classes)]
        if sample.second_label is not None:
            classes = error_classes(sample.second_label, sample.label, sample.mask)
            observer += [where.sum() for where in classes]
            if sample.name == args.figure:
                panels.append(("second observer against the first", classes))
        if sample.name == args.figure:
            figure(out.with_suffix(".png"), sample, panels)
        print(f"{index + 1}/{len(data)} {sample.name}", flush=True)
    rows = [row(name if weights is None else f"{name} (`{weights}`)", totals[name]) for name, weights in models]
    if observer.any():
        rows.append(row("second observer", observer))
    header = ["map", "F1", "precision", "recall", "area / labels'", f"FP within {NEAR_PX} px of a labelled vessel",
              f"FN within {NEAR_PX} px of the map's", "F1 without the far FP"]
    lines = [f"# Where the maps disagree with {data.name}'s first observer (test split, {len(data)} photographs)", "",
             f"Generated by `python benchmarks/error_location.py --dataset {args.dataset} "
             + " ".join(f"--weights {item}" for item in args.weights) + (f" --figure {args.figure}" if args.figure else "")
             + f"` ({time.perf_counter() - start:.0f} s, {cpu_model()}).",
             "Each map at its stored threshold, run as `segment --weights FILE` runs it (stored diameter, PyTorch fp32), pooled",
             f"inside the dataset's FOV masks. An error within {NEAR_PX} px of the other side's vessels is at a vessel's edge (a width",
             "drawn differently), one farther away a whole vessel drawn by one side only. Last column: F1 had the map drawn no",
             "vessel the observer did not (only its edge errors and its misses left).", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows),
             *(["", f"![{args.figure}: the errors of {models[0][0]} and of the second observer against the first]({out.with_suffix('.png').name})"]
               if args.figure else [])]
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
