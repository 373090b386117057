"""Comparing several evaluation outputs: one Markdown table and one precision–recall plot."""

from __future__ import annotations

import csv
from pathlib import Path

from ..errors import M2UNetError
from .evaluate import REGION_NAMES, load_run, run_label, write_text
from .figures import pr_figure
from .metrics import paired_bootstrap_f1_difference


def comparison_rows(results: list[dict], region: str = "crop") -> list[dict]:
    rows = []
    for result in results:
        if result["pooled"]:
            pooled, boot = result["pooled"][region], result["bootstrap_f1"][region]
            rows.append({
                "model": run_label(result), "dataset": f"{result['dataset']} {result['split']}", "images": result["images"],
                "threshold": pooled["a_priori"]["threshold"], "f1_a_priori": pooled["a_priori"]["f1"],
                "f1_a_priori_ci": (boot["a_priori"]["low"], boot["a_priori"]["high"]),
                "best_threshold": pooled["best"]["threshold"], "f1_best": pooled["best"]["f1"],
            "accuracy": pooled["a_priori"]["accuracy"], "auc": pooled["roc_auc"], "ap": pooled["average_precision"],
            })
        observer = result.get("second_observer")
        if observer:
            point = observer["pooled"][region]
            rows.append({"model": "second observer", "dataset": f"{result['dataset']} {result['split']}", "images": result["images"],
                         "threshold": None, "f1_a_priori": point["f1"], "f1_a_priori_ci": (observer["bootstrap_f1"][region]["low"], observer["bootstrap_f1"][region]["high"]),
                         "best_threshold": None, "f1_best": None, "accuracy": point["accuracy"], "auc": None, "ap": None})
    unique, seen = [], set()
    for row in rows:  # one second-observer row per dataset
        key = (row["model"], row["dataset"]) if row["model"] == "second observer" else id(row)
        if key not in seen:
            seen.add(key)
            unique.append(row)
    return unique


def markdown_table(rows: list[dict], region: str) -> str:
    def f(value, digits=4):
        return "–" if value is None else f"{value:.{digits}f}"

    lines = [
        f"Pooled over each split's pixels ({REGION_NAMES[region]}). F1 a-priori: at the threshold fixed before the test images "
        "(95% bootstrap interval over images); F1 best: at the best threshold on the test images themselves (the paper's protocol, optimistic).",
        "",
        "| model | dataset | images | threshold | F1 a-priori | 95% interval | best threshold | F1 best (optimistic) | accuracy | ROC AUC | AP |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        low, high = r["f1_a_priori_ci"]
        lines.append(
            f"| {r['model']} | {r['dataset']} | {r['images']} | {f(r['threshold'], 3)} | {f(r['f1_a_priori'])} | [{low:.4f}, {high:.4f}] | "
            f"{f(r['best_threshold'], 3)} | {f(r['f1_best'])} | {f(r['accuracy'])} | {f(r['auc'])} | {f(r['ap'])} |"
        )
    return "\n".join(lines)


def a_priori_counts(result: dict, region: str) -> dict[str, tuple[int, int, int]] | None:
    """Per-image (tp, fp, fn) of the model at its a-priori threshold, from the run's per_image.csv (None if absent)."""
    file = Path(result["_path"]) / "per_image.csv"
    if not result["pooled"] or not file.is_file():
        return None
    with open(file, newline="") as handle:
        return {row["image"]: (int(row["tp"]), int(row["fp"]), int(row["fn"])) for row in csv.DictReader(handle)
                if row["rater"] == "model" and row["region"] == region and row["protocol"] == "a_priori"}


def paired_rows(results: list[dict], labels: list[str], region: str = "crop") -> list[dict]:
    """ΔF1 a-priori of every run against the first model run on the same dataset split and images, paired bootstrap."""
    rows, references = [], {}
    for result, label in zip(results, labels, strict=True):
        counts = a_priori_counts(result, region)
        if not counts:
            continue
        key = (result["dataset"], result["split"])
        if key not in references:
            references[key] = (label, counts)
            continue
        reference_label, reference = references[key]
        if set(counts) != set(reference):
            continue  # different images: no pairing
        names = sorted(reference)
        paired = paired_bootstrap_f1_difference([counts[n] for n in names], [reference[n] for n in names])
        rows.append({"model": label, "reference": reference_label, "dataset": f"{key[0]} {key[1]}", "images": len(names), **paired})
    return rows


def paired_table(rows: list[dict]) -> str:
    lines = [
        "Paired differences: F1 a-priori of each model minus the first model's on the same images; the 95% interval comes from "
        "resampling the images together (paired bootstrap), so it is much narrower than each model's own bootstrap interval. "
        "It covers which test images were drawn, not training randomness (seeds, thread counts), which needs repeated runs; "
        "'ahead' is the share of resamples in which the model beats the reference.",
        "",
        "| model | reference | dataset | images | ΔF1 a-priori | 95% paired interval | ahead |",
        "|---|---|---|---:|---:|---|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['reference']} | {r['dataset']} | {r['images']} | {r['difference']:+.4f} | "
                     f"[{r['low']:+.4f}, {r['high']:+.4f}] | {r['share_positive']:.1%} |")
    return "\n".join(lines)


MADE_BY = "Made by:"  # comparison.md's heading above the command that wrote it (read back by `m2unet compare`)


def compare_runs(runs: list[Path], out_dir: Path, region: str = "crop", command: str | None = None) -> tuple[str, Path]:
    if not runs:
        raise M2UNetError("give at least one evaluation output folder")
    results = [load_run(run) for run in runs]
    labels = [run_label(r) if r["pooled"] else "second observer" for r in results]
    if len(set(zip(labels, (r["dataset"] for r in results), strict=True))) < len(results):  # same name twice: add the folder
        labels = [f"{label} [{Path(r['_path']).name}]" for label, r in zip(labels, results, strict=True)]
        for result, label in zip(results, labels, strict=True):
            result["weights"] = {**result.get("weights", {}), "label": label}
    table = markdown_table(comparison_rows(results, region), region)
    paired = paired_rows(results, labels, region)
    if paired:
        table += "\n\n" + paired_table(paired)
    out_dir = Path(out_dir)
    plot = pr_figure(labels, results, out_dir / "pr_curves.png", region=region)
    sources = "\n".join(f"- `{r['_path']}`: {r.get('command') or ''}" for r in results)
    made_by = f"\n\n{MADE_BY}\n\n    {command}\n" if command else "\n"
    write_text(out_dir / "comparison.md", f"# Comparison\n\n{table}\n\n![precision–recall](pr_curves.png)\n\nRuns:\n{sources}{made_by}")
    return table, plot
