"""Comparing several evaluation outputs: one Markdown table and one precision–recall plot."""

from __future__ import annotations

from pathlib import Path

from ..errors import M2UNetError
from .evaluate import REGION_NAMES, load_run, run_label, write_text
from .figures import pr_figure


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


def compare_runs(runs: list[Path], out_dir: Path, region: str = "crop") -> tuple[str, Path]:
    if not runs:
        raise M2UNetError("give at least one evaluation output folder")
    results = [load_run(run) for run in runs]
    labels = [run_label(r) if r["pooled"] else "second observer" for r in results]
    if len(set(zip(labels, (r["dataset"] for r in results), strict=True))) < len(results):  # same name twice: add the folder
        labels = [f"{label} [{Path(r['_path']).name}]" for label, r in zip(labels, results, strict=True)]
        for result, label in zip(results, labels, strict=True):
            result["weights"] = {**result.get("weights", {}), "label": label}
    table = markdown_table(comparison_rows(results, region), region)
    out_dir = Path(out_dir)
    plot = pr_figure(labels, results, out_dir / "pr_curves.png", region=region)
    sources = "\n".join(f"- `{r['_path']}`: {r.get('command') or ''}" for r in results)
    write_text(out_dir / "comparison.md", f"# Comparison\n\n{table}\n\n![precision–recall](pr_curves.png)\n\nRuns:\n{sources}\n")
    return table, plot
