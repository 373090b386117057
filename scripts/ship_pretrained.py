"""Package a trained model as one of the shipped defaults: src/m2unet/pretrained/NAME.safetensors.

The training metadata (dataset, recipe, epochs, best epoch, validation Dice, a-priori threshold, commit)
is kept, and the test metrics measured by `m2unet evaluate` are added, so the file says what it is.

Usage:
  python scripts/ship_pretrained.py --name drive --weights results/train/drive-global/best.safetensors \
      --evaluation results/ours/drive/metrics.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from m2unet.weights import PRETRAINED_DIR, load_weights, save_weights


def test_summary(metrics: dict) -> dict:
    """The numbers a model card quotes, from an `m2unet evaluate` metrics.json."""
    pooled = metrics["pooled"]
    summary = {"dataset": metrics["dataset"], "split": metrics["split"], "images": metrics["images"]}
    for region in ("fov", "crop"):
        summary[region] = {
            "f1_a_priori": pooled[region]["a_priori"]["f1"],
            "threshold_a_priori": pooled[region]["a_priori"]["threshold"],
            "f1_best": pooled[region]["best"]["f1"],
            "threshold_best": pooled[region]["best"]["threshold"],
            "accuracy_a_priori": pooled[region]["a_priori"]["accuracy"],
            "roc_auc": pooled[region]["roc_auc"],
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, choices=["drive", "chase_db1", "hrf"])
    parser.add_argument("--weights", required=True, type=Path)
    parser.add_argument("--evaluation", required=True, type=Path, help="metrics.json of `m2unet evaluate` on the test split")
    parser.add_argument("--hardware", help="Replace the metadata's hardware, e.g. for a run resumed on another machine")
    args = parser.parse_args()
    model, metadata = load_weights(args.weights)
    metrics = json.loads(args.evaluation.read_text())
    if metrics["dataset"] != args.name:
        raise SystemExit(f"{args.evaluation}: evaluated on {metrics['dataset']!r}, not {args.name!r}")
    evaluated_threshold = metrics["pooled"]["fov"]["a_priori"]["threshold"]
    if abs(evaluated_threshold - metadata["threshold"]) > 1e-3:
        raise SystemExit(f"{args.evaluation}: evaluated at threshold {evaluated_threshold}, the weights store {metadata['threshold']}")
    metadata.update({"name": args.name, "source": "m2unet", "test": test_summary(metrics), "trained_from": str(args.weights)})
    if args.hardware:
        metadata["hardware"] = args.hardware
    out = save_weights(model, PRETRAINED_DIR / f"{args.name}.safetensors", metadata)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB); test F1 a-priori {metadata['test']['fov']['f1_a_priori']:.4f}")


if __name__ == "__main__":
    main()
