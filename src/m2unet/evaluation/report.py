"""``m2unet report``: the paper's Table 2, Tables 3–4 and Figure 5 rebuilt from available results, one page.

Published numbers come from :mod:`m2unet.paper`, the datasets' labels and input sizes from
:data:`m2unet.data.datasets.DATASETS`; ours from `m2unet evaluate` outputs
(metrics.json) and from measurements made here (model size, MAdds, time per image on this CPU).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import numpy as np

from .. import paper
from ..data.datasets import DATASETS
from ..errors import M2UNetError
from ..system import cpu_model
from .compare import paired_rows, paired_table
from .evaluate import load_run, run_label, write_text
from .figures import pr_figure

TABLE2_SIZES = (544, 960)


def _f(value, digits=4):
    return "–" if value is None else f"{value:.{digits}f}"


def find_runs(root: Path = Path("results")) -> list[Path]:
    """Every `m2unet evaluate` output under ``root`` (folders holding a metrics.json with curves)."""
    found = []
    for file in sorted(Path(root).rglob("metrics.json")):
        try:
            load_run(file)
        except M2UNetError:
            continue
        found.append(file.parent)
    return found


def complexity_rows(names: list[str] | None = None) -> list[dict]:
    """Parameters, size on disk and GMAdds of every registered model (MAdds traced on the meta device: no compute)."""
    from ..models import create_model, list_models
    from ..models.complexity import count_madds, count_parameters, size_on_disk_bytes

    rows = []
    for name in sorted(names or list_models(), key=lambda n: (n != "m2unet", n)):
        model = create_model(name)
        # MiB: the paper's 2.2 MB for M2U-Net is its float32 file in units of 2^20 bytes (2,296,312 B)
        row = {"model": name, "params": count_parameters(model), "size_mb": size_on_disk_bytes(model) / 2**20}
        meta = model.to("meta")
        row["gmadds"] = {side: count_madds(meta, side, side) / 1e9 for side in TABLE2_SIZES}
        rows.append(row)
    return rows


def time_per_image(repeats: int, sizes: dict[str, tuple[int, int]]) -> dict[str, float]:
    """Median seconds of ``predict_probability`` (M2U-Net, eager fp32) per image, per dataset input size."""
    import torch

    from ..inference.predict import predict_probability
    from ..models import create_model

    model = create_model("m2unet").eval()
    rng = np.random.default_rng(0)
    seconds = {}
    for dataset, (h, w) in sizes.items():
        image = rng.random((h, w, 3), dtype=np.float32)
        predict_probability(model, image)  # warm-up
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            predict_probability(model, image)
            runs.append(time.perf_counter() - start)
        seconds[dataset] = statistics.median(runs)
    seconds["_threads"] = torch.get_num_threads()
    return seconds


BENCH_FILE = Path("results/bench/bench.json")


def bench_times(path: Path = BENCH_FILE) -> dict[str, dict]:
    """Per dataset: `m2unet bench`'s median seconds for eager fp32 ("torch") and its fastest backend, where that
    file exists and has the dataset's input size ({} otherwise: the report then shows only its own timing)."""
    import json

    try:
        cells = json.loads(Path(path).read_text())["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    found = {}
    for dataset, spec in DATASETS.items():
        h, w = spec.input_size
        matching = [c for c in cells if isinstance(c, dict) and c.get("width") == w and c.get("height") == h and c.get("median_ms")]
        if not matching:
            continue
        fastest = min(matching, key=lambda c: c["median_ms"])
        torch_cell = next((c for c in matching if c.get("backend") == "torch"), None)
        found[dataset] = {
            "torch": torch_cell["median_ms"] / 1000 if torch_cell else None,
            "fastest": (str(fastest.get("backend")), fastest["median_ms"] / 1000),
        }
    return found


def table2(complexity: list[dict], results: list[dict]) -> str:
    datasets = list(DATASETS)
    head = "| model | source | params (M) | size (MiB) | GMAdds 544² | GMAdds 960² | " + " | ".join(f"F1 {DATASETS[d].label}" for d in datasets) + " |"
    lines = [head, "|" + "---|" * (6 + len(datasets))]
    for row in complexity:
        published = paper.TABLE2.get(row["model"])
        if published:
            f1 = [_f(paper.RESULTS.get(d, {}).get(row["model"], {}).get("f1")) for d in datasets]
            lines.append(
                f"| {published['label']} | paper | {published['params_m']:.2f} | {_f(published['size_mb'], 1)} | "
                f"{_f(published['gmadds'].get(544), 2)} | {_f(published['gmadds'].get(960), 2)} | " + " | ".join(f1) + " |"
            )
        ours = []
        for d in datasets:
            matching = [r for r in results if r["dataset"] == d and r["pooled"] and (r.get("weights") or {}).get("model") == row["model"]]
            several = len(matching) > 1
            ours.append(" / ".join(_f1_cell(r, several) for r in matching) or f"pending: {PENDING_REASONS.get((row['model'], d), 'no evaluated run under results/')}")
        lines.append(
            f"| {published['label'] if published else row['model']} | this repo | {row['params'] / 1e6:.2f} | {row['size_mb']:.1f} | "
            f"{row['gmadds'][544]:.2f} | {row['gmadds'][960]:.2f} | " + " | ".join(ours) + " |"
        )
    return "\n".join(lines)


# Why a Table 2 cell has no committed run (shown only while none exists; a run's F1 replaces it).
PENDING_REASONS = {
    ("unet", "chase_db1"): "not trained, needs a GPU (31 M parameters at 960²)",
    ("unet", "hrf"): "not trained, needs a GPU (full 3504×2336)",
    ("erfnet", "hrf"): "not trained, needs a GPU (full 3504×2336)",
}


def _f1_cell(result: dict, name_source: bool = False) -> str:
    """Best-threshold F1 of one run; a run stopped before its planned epochs says how far it got."""
    text = _f(result["pooled"]["crop"]["best"]["f1"])
    if name_source:
        text += " (authors' weights)" if (result.get("weights") or {}).get("source") == "authors" else " (ours)"
    metadata = (result.get("weights") or {}).get("metadata") or {}
    done, planned = metadata.get("epochs_trained"), metadata.get("epochs")
    if done is not None and planned is not None and int(done) < int(planned):
        text += f" ({int(done)}/{int(planned)} epochs: a lower bound; the full run is pending)"
    return text


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def tables34(results: list[dict], timing: dict | None, bench: dict | None = None) -> str:
    blocks = []
    for dataset, spec in DATASETS.items():
        label, (h, w) = spec.label, spec.input_size
        runs = [r for r in results if r["dataset"] == dataset]
        published = paper.RESULTS.get(dataset, {})
        lines = [
            f"### {label} ({w}×{h})",
            "",
            "| rater | source | split | F1 best thr. (optimistic) | F1 a-priori | accuracy | AUC | accuracy, crop only | AUC, crop only | time / image |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        times = ", ".join(f"{paper.TIMING[k]['seconds'][dataset] * 1000:g} ms ({paper.TIMING[k]['label']})" if paper.TIMING[k]["seconds"][dataset] < 1 else f"{paper.TIMING[k]['seconds'][dataset]:g} s ({paper.TIMING[k]['label']})" for k in paper.TIMING)
        if "m2unet" in published:
            p = published["m2unet"]
            lines.append(f"| M2U-Net | paper | test | {_f(p['f1'])} | – | {_f(p['accuracy'])} | {_f(p['auc'])} | | | {times} |")
        if "second_observer" in published:
            p = published["second_observer"]
            lines.append(f"| 2nd observer | paper | test | {_f(p['f1'])} | | {_f(p['accuracy'])} | – | | | |")
        ours_time = f"{_seconds(timing[dataset])} (this CPU, fp32 eager)" if timing and dataset in timing else "not measured here"
        if bench and dataset in bench:
            backend, fastest = bench[dataset]["fastest"]
            eager = f"fp32 eager {_seconds(bench[dataset]['torch'])}, " if bench[dataset]["torch"] else ""
            ours_time += f"; `m2unet bench`: {eager}{backend} {_seconds(fastest)}"
        observers = {}
        for r in runs:
            if r.get("second_observer"):
                observers[r["split"]] = r
            if not r["pooled"]:
                continue
            crop, only = r["pooled"]["crop"], r["pooled"]["crop_only"]
            # the timings above are M2U-Net's; other architectures: `m2unet bench --arch`
            is_m2unet = (r.get("weights") or {}).get("model", "m2unet") == "m2unet"
            lines.append(
                f"| {run_label(r)} | this repo | {r['split']} ({r['images']}) | {_f(crop['best']['f1'])} | {_f(crop['a_priori']['f1'])} (thr. {crop['a_priori']['threshold']:.3f}) | "
                f"{_f(crop['best']['accuracy'])} | {_f(crop['roc_auc'])} | {_f(only['best']['accuracy'])} | {_f(only['roc_auc'])} | "
                f"{ours_time if is_m2unet else 'see `m2unet bench --arch`'} |"
            )
        for split, r in observers.items():
            o = r["second_observer"]
            lines.append(
                f"| 2nd observer | this repo | {split} ({r['images']}) | {_f(o['pooled']['crop']['f1'])} (FOV {_f(o['pooled']['fov']['f1'])}; "
                f"mean per image in FOV {_f(o['per_image']['fov']['f1']['mean'])}) | | {_f(o['pooled']['crop']['accuracy'])} (FOV {_f(o['pooled']['fov']['accuracy'])}) | – | "
                f"{_f(o['pooled']['crop_only']['accuracy'])} | – | |"
            )
        if not runs:
            lines.append(f"| (no evaluation of {label} found) | | | | | | | | | |")
        paired = paired_rows([r for r in runs if r["pooled"]], [run_label(r) for r in runs if r["pooled"]], region="crop")
        if paired:  # is one model really ahead of another? The same images, resampled together
            lines += ["", paired_table(paired)]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


HOW_MADE = "## How these numbers were made"  # report.md's heading above the command that wrote it


def write_report(out_dir: Path, runs: list[Path] | None = None, timing_repeats: int = 3, models: list[str] | None = None, command: str | None = None) -> Path:
    out_dir = Path(out_dir)
    runs = runs if runs is not None else find_runs()
    results = [load_run(run) for run in runs]
    complexity = complexity_rows(models)
    timing = time_per_image(timing_repeats, {name: spec.input_size for name, spec in DATASETS.items()}) if timing_repeats > 0 else None
    bench = bench_times()
    figures = []
    for dataset, spec in DATASETS.items():
        matching, label = [r for r in results if r["dataset"] == dataset], spec.label
        if not matching:
            continue
        plot = pr_figure([run_label(r) for r in matching], matching, out_dir / f"pr_{dataset}.png", title=f"{label}: precision–recall (whole crop, pooled)")
        figures.append(f"![{label} precision–recall]({plot.name})")
        for r in matching:
            source = Path(r["_path"]) / "figure5.png"
            if source.is_file():  # linked where the evaluation wrote it, not copied: one file, one place
                link = Path(os.path.relpath(source.resolve(), out_dir.resolve())).as_posix()
                figures.append(f"![{label} Figure 5: {run_label(r)}]({link})")
    commands = "\n".join(f"    {r.get('command') or '(command not recorded)'}" for r in results) or "    (none)"
    if timing:
        timing_note = (f"Time on this CPU: median of {timing_repeats} runs of `predict_probability` (PyTorch eager fp32) at the dataset's input size, "
                       f"{cpu_model()}, {timing['_threads']} torch threads; the machine is shared, so treat it as an upper bound.")
    else:
        timing_note = "Time on this CPU: not measured (`--timing-repeats 0`)."
    text = f"""# M2U-Net: the paper's tables, reproduced

Published numbers: {paper.CITATION}. Ours: this repository's code, measured on this machine.

**Protocols.** The paper's F1 uses the best threshold found on the test images themselves (optimistic); "a-priori" uses
a threshold fixed before looking at them (stored with the weights, or the best one on the training split). "Whole crop"
pools every pixel of the paper's crop and counts the pixels the crop removed as true negatives; "crop only" adds nothing.
F1 does not depend on that choice; accuracy and AUC do.

## Table 2: size and cost

MAdds count one multiply-accumulate per weight use in convolutions (see `m2unet.models.complexity`); size on disk is the
float32 safetensors file. F1 (ours): best threshold, whole crop, for the evaluated weights of that architecture.

{table2(complexity, results)}

## Tables 3–4: quality and speed

{timing_note} {"The `m2unet bench` times come from `" + str(BENCH_FILE) + "` (its own machine state, load and backends: see its .md; int8 and bf16 backends trade some accuracy for speed)." if bench else "`m2unet bench` compares faster backends."}

{tables34(results, timing, bench)}

## Figure 5 and precision–recall curves

{chr(10).join(figures) if figures else "(no evaluation outputs found: run `m2unet evaluate` first)"}

{HOW_MADE}

    {command or f"m2unet report --out {out_dir}"}
{commands}
"""
    path = out_dir / "report.md"
    write_text(path, text)
    return path
