"""Package a trained model as one of the shipped defaults: src/m2unet/pretrained/NAME.safetensors.

The training metadata (dataset, recipe, epochs, best epoch, validation Dice, a-priori threshold, commit)
is kept, and the test metrics measured by `m2unet evaluate` are added, so the file says what it is.

Beside it goes NAME.onnx, its ONNX export (with the same metadata and the digest of the .safetensors it came from),
so that an install without PyTorch (onnxruntime or openvino only) runs the shipped models too.

Usage:
  python scripts/ship_pretrained.py --name drive --weights results/train/drive-global/best.safetensors \
      --evaluation results/ours/drive/metrics.json
  python scripts/ship_pretrained.py --name universal --weights runs/universal/best.safetensors \
      --evaluation results/ours/universal/drive/metrics.json --evaluation results/ours/universal/chase_db1/metrics.json \
      --evaluation results/ours/universal/hrf/metrics.json        # one model, several test sets
  python scripts/ship_pretrained.py --onnx-only      # re-export every shipped model's NAME.onnx
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from m2unet.export import write_shipped_onnx
from m2unet.weights import PRETRAINED_DIR, PRETRAINED_NAMES, load_weights, save_weights

REPO = Path(__file__).resolve().parents[1]


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
    parser.add_argument("--name", choices=PRETRAINED_NAMES)
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--evaluation", type=Path, action="append", help="metrics.json of `m2unet evaluate` on the test split "
                        "(repeat for a model of several datasets: its `test` metadata is then one summary per dataset)")
    parser.add_argument("--hardware", help="Replace the metadata's hardware, e.g. for a run resumed on another machine")
    parser.add_argument("--onnx-only", action="store_true", help="Only (re)write NAME.onnx of every shipped model")
    args = parser.parse_args()
    if args.onnx_only:
        for name in PRETRAINED_NAMES:
            if (PRETRAINED_DIR / f"{name}.safetensors").is_file():
                print(f"wrote {write_shipped_onnx(PRETRAINED_DIR / f'{name}.safetensors')}")
        return
    if not (args.name and args.weights and args.evaluation):
        parser.error("--name, --weights and --evaluation are required (or --onnx-only)")
    model, metadata = load_weights(args.weights)
    datasets = metadata.get("datasets") or [args.name]
    summaries, evaluations = {}, {}
    for path in args.evaluation:
        metrics = json.loads(path.read_text())
        if metrics["dataset"] not in datasets:
            raise SystemExit(f"{path}: evaluated on {metrics['dataset']!r}, not on the model's data ({', '.join(datasets)})")
        evaluated_threshold = metrics["pooled"]["fov"]["a_priori"]["threshold"]
        if abs(evaluated_threshold - metadata["threshold"]) > 1e-3:
            raise SystemExit(f"{path}: evaluated at threshold {evaluated_threshold}, the weights store {metadata['threshold']}")
        summaries[metrics["dataset"]] = test_summary(metrics)
        if not path.resolve().is_relative_to(REPO):
            raise SystemExit(f"{path}: not inside the repository; a shipped model's evaluations are committed under results/")
        evaluations[metrics["dataset"]] = path.resolve().relative_to(REPO).as_posix()  # where the card and tests read it
    test = summaries[args.name] if args.name in summaries and len(summaries) == 1 else summaries
    metadata.update({"name": args.name, "source": "m2unet", "test": test, "test_evaluations": evaluations, "trained_from": str(args.weights)})
    if args.hardware:
        metadata["hardware"] = args.hardware
    out = save_weights(model, PRETRAINED_DIR / f"{args.name}.safetensors", metadata)
    quoted = {d: t["fov"]["f1_a_priori"] for d, t in summaries.items()}
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB); test F1 a-priori " + ", ".join(f"{d} {f:.4f}" for d, f in quoted.items()))
    print(f"wrote {write_shipped_onnx(out)}")


if __name__ == "__main__":
    main()
