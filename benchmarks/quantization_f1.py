"""F1 of every backend/precision against PyTorch fp32 on a test set (default: DRIVE test, 20 images, 544×544).

For each backend: pooled counts over the test set inside the official FOV masks (m2unet.evaluation.metrics),
F1 at the best pooled threshold and at 0.5, and the max / mean |Δ probability| vs PyTorch eager fp32.
int8 models are calibrated on the training images of the same dataset (cached, see m2unet.export).

    .venv/bin/python benchmarks/quantization_f1.py                       # writes results/export/precision_f1.md
    .venv/bin/python benchmarks/quantization_f1.py --dataset chase_db1 --split test_01_10
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from m2unet.data import load_dataset, write_atomic
from m2unet.evaluation.metrics import best_threshold, f1_score, threshold_counts
from m2unet.inference.backends import BACKENDS, create_backend
from m2unet.inference.tiling import predict_tiled
from m2unet.weights import pretrained_path

OUT = Path(__file__).resolve().parents[1] / "results" / "export"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="drive", choices=["drive", "chase_db1", "hrf"])
    parser.add_argument("--split", default="test")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    args = parser.parse_args()
    weights = pretrained_path(args.dataset)
    data = load_dataset(args.dataset, args.split)
    samples = [data[i] for i in range(len(data))]
    names = args.backends.split(",")
    if names[0] != "torch":
        names = ["torch"] + [n for n in names if n != "torch"]
    reference: list[np.ndarray] = []
    rows = []
    started = time.time()
    for name in names:
        backend = create_backend(name, weights, calibration=args.dataset, progress=print)
        counts = None
        max_diff, sum_diff, pixels = 0.0, 0.0, 0
        for index, sample in enumerate(samples):
            probability = predict_tiled(backend, sample.image)
            c = threshold_counts(probability, sample.label, sample.mask)
            counts = c if counts is None else {k: counts[k] + c[k] for k in counts}
            if name == "torch":
                reference.append(probability)
            else:
                diff = np.abs(probability - reference[index])[sample.mask]
                max_diff = max(max_diff, float(diff.max()))
                sum_diff += float(diff.sum())
                pixels += diff.size
        threshold, best_f1 = best_threshold(counts)
        at_half = float(f1_score(counts["tp"][500], counts["fp"][500], counts["fn"][500]))
        rows.append({"backend": name, "best_threshold": threshold, "f1_best": best_f1, "f1_at_0.5": at_half,
                     "max_abs_diff": max_diff, "mean_abs_diff": sum_diff / pixels if pixels else 0.0})
        print(f"{name:>17}: F1 {best_f1:.5f} (t={threshold:.3f}), F1@0.5 {at_half:.5f}, max |Δp| {max_diff:.2e}", flush=True)
    base = rows[0]
    lines = [
        f"# F1 of each backend and precision vs PyTorch fp32 — {args.dataset} {args.split} ({len(samples)} images)",
        "",
        f"Command: `.venv/bin/python benchmarks/quantization_f1.py --dataset {args.dataset} --split {args.split}`  ",
        f"Weights: {weights.name}. F1 pooled over all images inside the FOV masks; ΔF1 = backend − PyTorch fp32.",
        f"int8: post-training quantization calibrated on the {args.dataset} training images. |Δp|: inside the FOV.",
        "",
        "| backend | F1 (best threshold) | ΔF1 | threshold | F1 @ 0.5 | ΔF1 @ 0.5 | max abs Δp | mean abs Δp |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['backend']} | {r['f1_best']:.5f} | {r['f1_best'] - base['f1_best']:+.5f} | {r['best_threshold']:.3f} | "
                     f"{r['f1_at_0.5']:.5f} | {r['f1_at_0.5'] - base['f1_at_0.5']:+.5f} | {r['max_abs_diff']:.2e} | {r['mean_abs_diff']:.2e} |")
    lines += ["", f"Took {time.time() - started:.0f} s.", ""]
    suffix = "" if (args.dataset, args.split) == ("drive", "test") else f"_{args.dataset}_{args.split}"
    write_atomic(OUT / f"precision_f1{suffix}.md", lambda tmp: Path(tmp).write_text("\n".join(lines)))
    write_atomic(OUT / f"precision_f1{suffix}.json", lambda tmp: Path(tmp).write_text(json.dumps(rows, indent=1) + "\n"))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
