"""Compare training runs: validation Dice curves in one plot and a table of their results.

Usage:  .venv/bin/python benchmarks/compare_training_runs.py results/train/drive-global results/train/drive-eq3 \
            --out results/train/drive_jaccard_comparison

Reads each RUN/metrics.csv, RUN/summary.json (or RUN/test_f1.json for an unfinished run) and writes OUT.png
(validation Dice per epoch) and OUT.md (best validation Dice, threshold, test F1, time; and validation Dice
at matching epochs, so that runs of different length compare at equal training budget).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_run(run: Path) -> dict:
    with open(run / "metrics.csv") as handle:
        rows = [r for r in csv.DictReader(handle)]
    validated = {int(r["epoch"]): float(r["val_dice"]) for r in rows if r["val_dice"]}
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else None
    test = (summary or {}).get("test") or (json.loads((run / "test_f1.json").read_text()) if (run / "test_f1.json").is_file() else None)
    config = json.loads((run / "config.json").read_text())["config"]
    return {"name": run.name, "rows": rows, "validated": validated, "summary": summary, "test": test, "config": config}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    runs = [read_run(r) for r in args.runs]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for run in runs:
        epochs = sorted(run["validated"])
        ax.plot(epochs, [run["validated"][e] for e in epochs], marker=".", lw=1, label=f"{run['name']} (J: {run['config']['jaccard']})")
    ax.set(xlabel="epoch", ylabel="validation Dice (best threshold, pooled in FOV)", title="M2U-Net training: validation Dice")
    ax.set_ylim(0.7, None)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out.with_suffix(".png"), dpi=110)
    lines = ["# Training runs compared", "", f"Command: `python benchmarks/compare_training_runs.py {' '.join(map(str, args.runs))} --out {args.out}`", "",
             "| run | Jaccard | epochs done / planned | best epoch | val Dice | threshold | test F1 @ stored threshold | test F1 @ best threshold (t) | training time |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        last = int(run["rows"][-1]["epoch"]) if run["rows"] else 0
        best_epoch = max(run["validated"], key=run["validated"].get) if run["validated"] else None
        best_dice = run["validated"].get(best_epoch)
        threshold = next((float(r["val_threshold"]) for r in run["rows"] if r["val_dice"] and int(r["epoch"]) == best_epoch), None)
        test = run["test"] or {}
        minutes = float(run["rows"][-1]["elapsed_seconds"]) / 60 if run["rows"] else 0
        t_stored = f"{test['f1_at_stored_threshold']:.4f}" if test else "–"
        t_best = f"{test['f1_at_best_threshold']:.4f} ({test['best_threshold']:.3f})" if test else "–"
        done = "" if run["summary"] else " (unfinished)"
        lines.append(f"| {run['name']} | {run['config']['jaccard']} | {last} / {run['config']['epochs']}{done} | {best_epoch} | {best_dice:.4f} | {threshold} | {t_stored} | {t_best} | {minutes:.0f} min |")
    common = sorted(set.intersection(*(set(r["validated"]) for r in runs)))
    marks = [e for e in common if e % 50 == 0 or e == common[-1]]
    lines += ["", "Validation Dice at the same epochs (best so far in brackets):", "",
              "| epoch | " + " | ".join(r["name"] for r in runs) + " |", "|---" * (len(runs) + 1) + "|"]
    for epoch in marks:
        cells = [f"{r['validated'][epoch]:.4f} ({max(v for e, v in r['validated'].items() if e <= epoch):.4f})" for r in runs]
        lines.append(f"| {epoch} | " + " | ".join(cells) + " |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
