"""Cross-dataset F1 of the per-dataset models run as they are, shrunk to their training FOV diameter, or also enlarged.

For each shipped model (and any ``--weights NAME=FILE``) on each dataset's test split: pooled F1 inside the FOV at the
weights' stored (a-priori) threshold, with the image run (a) as it is, (b) at the model's training FOV diameter,
shrinking only (what `segment` does: m2unet.data.scale.model_scale), (c) shrinking or enlarging. The FOV
frame comes from the mask estimated from the image, as in `segment`. OpenVINO fp32 with segment's tiling (it matches
PyTorch fp32 within 3e-5 in probability: results/export/precision_f1.md).

    .venv/bin/python benchmarks/scale_cross.py                      # writes results/scale/cross.md and cross.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from m2unet.data import estimate_fov_mask, load_dataset, write_atomic
from m2unet.data.scale import model_scale, predict_scaled
from m2unet.evaluation import metrics as M
from m2unet.inference.backends import create_backend
from m2unet.inference.tiling import predict_tiled
from m2unet.weights import pretrained_path, read_metadata, threshold_of

OUT = Path(__file__).resolve().parents[1] / "results" / "scale"
DATASETS = ("drive", "chase_db1", "hrf")
POLICIES = {"as is": None, "shrink": "shrink", "shrink or enlarge": "both"}


def f1_on(weights: Path, dataset: str, policy: str | None) -> float:
    metadata = read_metadata(weights)
    backend = create_backend("openvino", weights)
    scale = model_scale(metadata)
    if policy is None or scale is None:
        scale = None
    elif policy == "both":
        scale = (scale[1], scale[1])
    threshold = threshold_of(metadata)
    total = None
    for sample in load_dataset(dataset, "test"):
        image = sample.image
        probability = predict_scaled(lambda view: predict_tiled(backend, view), image, estimate_fov_mask(image), scale)
        counts = M.binary_counts(probability >= threshold, sample.label, sample.mask)
        total = counts if total is None else {k: total[k] + counts[k] for k in total}
    return float(M.f1_score(total["tp"], total["fp"], total["fn"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", action="append", default=[], help="NAME=FILE: another model (e.g. a leave-one-out run)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    models = {name: pretrained_path(name) for name in DATASETS}
    models.update(dict(item.split("=", 1) for item in args.weights))
    started, results = time.time(), {}
    for name, weights in models.items():
        for dataset in DATASETS:
            native = name == dataset
            for label, policy in POLICIES.items():
                if native and policy is not None:
                    continue  # in domain the scale is within tolerance of 1: the same as 'as is'
                key = f"{name} on {dataset}, {label}"
                results[key] = f1_on(Path(weights), dataset, policy)
                print(f"{key}: {results[key]:.4f} ({time.time() - started:.0f} s)", file=sys.stderr, flush=True)
    lines = ["# Cross-dataset F1 with scale normalisation", "",
             f"Command: `python benchmarks/scale_cross.py{''.join(' --weights ' + w for w in args.weights)}`. Pooled F1 inside the FOV on each "
             "test split at the weights' stored threshold; each cell: run as it is / shrunk to the model's training FOV "
             "diameter / shrunk or enlarged to it. In domain the three are the same (scale within 5 % of 1).", "",
             "| model ↓ / test set → | " + " | ".join(DATASETS) + " |", "|---|" + "---|" * len(DATASETS)]
    for name in models:
        cells = []
        for dataset in DATASETS:
            values = [results.get(f"{name} on {dataset}, {label}") for label in POLICIES]
            cells.append(" / ".join(f"{v:.4f}" for v in values if v is not None))
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    lines += ["", f"({time.time() - started:.0f} s on {Path('/proc/cpuinfo').read_text().split('model name')[1].split(':')[1].splitlines()[0].strip()})"]
    args.out.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out / "cross.md", lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))
    write_atomic(args.out / "cross.json", lambda tmp: Path(tmp).write_text(json.dumps(results, indent=2) + "\n"))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
