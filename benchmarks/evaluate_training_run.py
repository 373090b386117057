"""Test-split F1 of a training run's best weights (also for a run still in progress or stopped early).

Usage:  .venv/bin/python benchmarks/evaluate_training_run.py results/train/drive-global [--split test]

Reads RUN/best.safetensors and its metadata (dataset, stored threshold), computes the pooled F1 inside the
FOV over the dataset's test split at the stored threshold and at the best threshold, and writes
RUN/test_f1.json (with the epoch the weights come from). Training itself writes the same numbers into
summary.json when it finishes; this is for runs that have not.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from m2unet.data.io import write_atomic  # noqa: E402
from m2unet.training.engine import evaluate_test_split  # noqa: E402
from m2unet.weights import read_metadata, threshold_of  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    weights = args.run / "best.safetensors"
    meta = read_metadata(weights)
    start = time.perf_counter()
    result = evaluate_test_split(weights, meta["dataset"], threshold_of(meta), split=args.split)
    if result is None:
        sys.exit(f"{meta['dataset']}: no labelled {args.split} split")
    result.update(best_epoch=meta.get("best_epoch"), epochs_trained_when_saved=meta.get("epochs_trained"), val_dice=meta.get("val_dice"),
                  seconds=round(time.perf_counter() - start, 1), command=f"python benchmarks/evaluate_training_run.py {args.run}")
    write_atomic(args.run / "test_f1.json", lambda tmp: Path(tmp).write_text(json.dumps(result, indent=2) + "\n"))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
