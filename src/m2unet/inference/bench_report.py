"""What ``m2unet bench`` writes: bench.json (the report as measured), bench.md (header and table), bench.png (chart).

:func:`m2unet.inference.bench.run_bench` measures and returns the report; :func:`write_report` writes it. A run
keeps bench.partial.json cell by cell (:func:`write_partial`), so a run stopped midway loses nothing measured.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from ..data.io import write_atomic
from .backend_spec import BackendSpec
from .tiling import MAX_TILE, TILE_OVERLAP

CUDA_LATENCY = (
    "Latency: median over the timed runs of one whole image on the GPU (no tiling): host float32 H×W×3 image → GPU copy, "
    "zero padding to a multiple of 16, model (or CUDA-graph replay), sigmoid, probability → host copy, with "
    "`torch.cuda.synchronize()` before each clock reading; untimed warm-up runs first (cudnn autotuning, graph capture). "
    "`cuda` = PyTorch eager fp32 (the baseline); `cuda-fp16` / `cuda-bf16` = autocast with channels_last model and input; "
    "`-graph` = the same captured once per input shape in a `torch.cuda.CUDAGraph`. Peak GPU MB: "
    "`torch.cuda.max_memory_allocated` of the cell's process (weights, activations, graph pool). Max |Δp| vs fp32: "
    "largest probability difference from eager fp32 of the same model on a second random image (a correctness check).\n\n")
CPU_LATENCY = (
    f"Latency: median over the timed runs of the inference path of `m2unet segment` (padding, tiles of ≤ {MAX_TILE}² with {TILE_OVERLAP} px overlap "
    "for large images, model, sigmoid) on one image; decode and PNG writing not included. Peak RSS: the whole process "
    "(Python, runtime, model, one image; VmHWM); RSS after load: before the first image (Python + runtime + model; PyTorch is "
    "imported only by the torch backends). `torch` = PyTorch eager fp32, the authors' way.\n\n")
UNTRAINED_NOTE = (
    "Models marked (untrained) run random weights (`--arch`, torch.manual_seed(0)): latency does not depend on the weight values, "
    "so only their timings are meaningful; their int8 rows are calibrated on DRIVE training images.\n\n")


def _write_json(path: Path, data: dict) -> None:
    write_atomic(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=1) + "\n"))


def recorded_command(path: Path) -> str | None:
    """The command a bench.json records (None: none, or not a bench.json this version can read)."""
    try:
        return json.loads(Path(path).read_text()).get("command")
    except (OSError, ValueError, AttributeError):
        return None


def write_partial(out: Path, command: str, cells: list[dict]) -> None:
    """bench.partial.json: the cells measured so far (rewritten after each cell, removed once the report is whole)."""
    _write_json(out / "bench.partial.json", {"command": command, "cells": cells})


def write_report(report: dict, out: Path) -> str:
    """Write bench.json, bench.md and bench.png of ``report`` (:func:`m2unet.inference.bench.run_bench`) into
    ``out`` and remove bench.partial.json; returns the Markdown table."""
    out = Path(out)
    table = markdown_table(report["cells"], report["baseline"])
    _write_json(out / "bench.json", report)
    write_atomic(out / "bench.md", lambda tmp: Path(tmp).write_text(report_header(report) + table + "\n"))
    bar_chart(report["cells"], out / "bench.png", chart_title(report))
    (out / "bench.partial.json").unlink(missing_ok=True)
    return table


def report_header(report: dict) -> str:
    """bench.md above the table: command, machine, versions, models and what the columns mean."""
    machine, models, device = report["machine"], report["models"], report["device"]
    header = (f"# m2unet bench\n\nCommand: `{report['command']}`  \nMachine: {machine.get('cpu', '?')}, {machine['cpu_count']} CPUs, "
              f"ISA {', '.join(machine.get('isa', []))}  \n")
    if device == "cuda":
        tf32 = next((c["cudnn_tf32"] for c in report["cells"] if c.get("cudnn_tf32") is not None), None)
        header += (f"GPU: {machine.get('gpu') or '?'}, CUDA {machine.get('cuda')}, cuDNN {machine.get('cudnn')}, cudnn.benchmark on"
                   f"{', cuDNN TF32 convolutions ' + ('on (PyTorch default)' if tf32 else 'off') if tf32 is not None else ''}  \n")
    header += f"Versions: {', '.join(f'{k} {v}' for k, v in machine['versions'].items())}  \n"
    models_text = "; ".join(f"{e['model']} = {Path(e['weights']).name}" for e in models)
    header += f"Started {report['started_utc']}, took {report['seconds']} s. Models: {models_text}."
    header += f" OpenVINO hint: {report['hint']}.\n\n" if device == "cpu" else "\n\n"
    header += CUDA_LATENCY if device == "cuda" else CPU_LATENCY
    if any(e["untrained"] for e in models):
        header += UNTRAINED_NOTE
    if len(models) > 1:
        header += f"Speed-up: relative to `{report['baseline']}` of the same model and size.\n\n"
    return header


def chart_title(report: dict) -> str:
    """The chart's title: the models, the machine, the load average during the run and the command."""
    machine, models, cells = report["machine"], report["models"], report["cells"]
    loads = [c["loadavg_before"][0] for c in cells if "loadavg_before" in c]
    load_note = f", 1-min load avg {min(loads):.1f}–{max(loads):.1f}" if loads else ""
    what = "M2U-Net" if len(models) == 1 and models[0]["arch"] == "m2unet" else ", ".join(e["model"] for e in models)
    where = f"{machine.get('gpu') or 'GPU'}, " if report["device"] == "cuda" else ""
    return f"{what} latency per image ({where}{machine.get('cpu', '?')}, {machine['cpu_count']} CPUs{load_note}); command: {report['command']}"


def _several_models(cells: list[dict]) -> bool:
    return len({c.get("model") for c in cells}) > 1


def _columns(cuda: bool, several: bool) -> tuple[list[str], list[str]]:
    """The table's column titles and alignments (GPU columns for cuda runs; a model column for several models)."""
    if cuda:
        columns = ["backend", "size (W×H)", "median ms", "min–max ms", "images/s", "speed-up vs cuda eager fp32", "peak GPU MB",
                   "peak RSS MB", "max \\|Δp\\| vs fp32", "load avg (1 min) before → after"]
        aligns = ["---", "---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---"]
    else:
        columns = ["backend", "size (W×H)", "median ms", "images/s", "speed-up vs torch eager", "peak RSS MB", "RSS after load MB",
                   "load avg (1 min) before → after"]
        aligns = ["---", "---", "---:", "---:", "---:", "---:", "---:", "---"]
    if several:
        columns, aligns = ["model", *columns], ["---", *aligns]
    return columns, aligns


def _row(c: dict, base: float | None, cuda: bool) -> list[str]:
    """The cells of one measured row after the model column."""
    size = f"{c['width']}×{c['height']}"
    speedup = f"{base / c['median_ms']:.1f}×" if base else "–"
    load = f"{c['loadavg_before'][0]:.2f} → {c['loadavg_after'][0]:.2f}"
    if cuda:
        gpu = f"{c['peak_gpu_mb']:.0f}" if c.get("peak_gpu_mb") is not None else "–"
        diff = f"{c['max_abs_diff_vs_fp32']:.1e}" if c.get("max_abs_diff_vs_fp32") is not None else "–"
        return [c["backend"], size, f"{c['median_ms']:.2f}", f"{c['min_ms']:.2f}–{c['max_ms']:.2f}", f"{c['images_per_s']:.1f}", speedup,
                gpu, f"{c['peak_rss_mb']:.0f}", diff, load]
    return [c["backend"], size, f"{c['median_ms']:.1f}", f"{c['images_per_s']:.2f}", speedup, f"{c['peak_rss_mb']:.0f}",
            f"{c['rss_after_load_mb']:.0f}", load]


def markdown_table(cells: list[dict], baseline_name: str = "torch") -> str:
    """One row per cell; a model column when cells of several models are present; GPU columns for cuda runs.
    Speed-up is relative to ``baseline_name`` of the same model and size."""
    cuda = BackendSpec.parse(baseline_name).device == "cuda"
    several = _several_models(cells)
    baseline = {(c.get("model"), c["width"], c["height"]): c["median_ms"] for c in cells if c["backend"] == baseline_name and "median_ms" in c}
    columns, aligns = _columns(cuda, several)
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(aligns) + "|"]
    for c in cells:
        lead = [c.get("model", "")] if several else []
        if "error" in c:
            row = [*lead, c["backend"], f"{c['width']}×{c['height']}", f"failed: {c['error']}"]
            lines.append("| " + " | ".join(row + [""] * (len(columns) - len(row))) + " |")
            continue
        base = baseline.get((c.get("model"), c["width"], c["height"]))
        lines.append("| " + " | ".join([*lead, *_row(c, base, cuda)]) + " |")
    return "\n".join(lines)


def bar_chart(cells: list[dict], path: Path, title: str) -> None:
    """Median latency per size (one panel each, log scale): bars per backend, grouped by model when several."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    sizes = sorted({(c["width"], c["height"]) for c in cells}, key=lambda s: s[0] * s[1])
    backends = list(dict.fromkeys(c["backend"] for c in cells))
    models = list(dict.fromkeys(c.get("model") for c in cells))
    grouped = len(models) > 1
    panel_width = 4.2 if not grouped else max(4.2, 0.35 * len(models) * len(backends) + 1.5)
    fig, axes = plt.subplots(1, len(sizes), figsize=(panel_width * len(sizes), 4.6 if grouped else 4.2), squeeze=False)
    colours = plt.get_cmap("tab10")(np.arange(len(backends)) % 10)
    bar_width = 0.8 / len(backends) if grouped else 0.8

    def median(model, backend, size):
        return next((c["median_ms"] for c in cells if c.get("model") == model and c["backend"] == backend
                     and (c["width"], c["height"]) == size and "median_ms" in c), np.nan)

    for index, (ax, size) in enumerate(zip(axes[0], sizes, strict=False)):
        for j, backend in enumerate(backends):
            if grouped:
                positions = np.arange(len(models)) + (j - (len(backends) - 1) / 2) * bar_width
                values = [median(m, backend, size) for m in models]
                bars = ax.bar(positions, values, bar_width, color=colours[j], label=backend)
            else:
                values = [median(models[0], backend, size)]
                bars = ax.bar([j], values, bar_width, color=colours[j])
            for bar, value in zip(bars, values, strict=False):
                if np.isfinite(value):
                    ax.annotate(f"{value:.0f}" if value >= 10 else f"{value:.1f}", (bar.get_x() + bar.get_width() / 2, value),
                                ha="center", va="bottom", fontsize=6 if grouped else 7)
        ax.set_yscale("log")
        if grouped:
            ax.set_xticks(range(len(models)), models, fontsize=8)
            if index == 0:
                ax.legend(fontsize=7)
        else:
            ax.set_xticks(range(len(backends)), backends, rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{size[0]}×{size[1]}")
        ax.set_ylabel("median latency per image (ms, log)")
    fig.suptitle(textwrap.fill(title, int(11 * fig.get_figwidth())), fontsize=10)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)
