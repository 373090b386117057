"""``m2unet bench``: latency, images/s and peak memory per backend and image size, beside PyTorch eager fp32.

Each (backend, size) cell runs in a fresh Python process, so its peak RSS (``ru_maxrss``) is its own:
model load + compiled runtime + one image's inference. The timed call is the inference path of
``m2unet segment`` (:func:`m2unet.inference.predict.predict_tiled`: padding, tiles of ≤ 1024² for large
images, the model), on a fixed random image; decoding and PNG writing are not timed. Exports are made (and
cached) before timing. The load average is recorded before and after each cell: on a shared machine the
numbers are only as quiet as the machine.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import click

from ..errors import M2UNetError, one_line_errors
from .predict import MAX_TILE, TILE_OVERLAP

DEFAULT_SIZES = "544x544,960x960,3504x2336"
DEFAULT_BACKENDS = "torch,torch-bf16,onnxruntime,onnxruntime-int8,openvino,openvino-bf16,openvino-int8"
BASELINE = "torch"


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """'544x544,3504x2336' (W×H) → [(544, 544), (3504, 2336)] as (width, height)."""
    sizes = []
    for part in text.split(","):
        try:
            w, h = (int(v) for v in part.lower().replace("×", "x").split("x"))
        except ValueError:
            raise M2UNetError(f"--sizes {part!r}: expected WxH, e.g. 3504x2336") from None
        if min(w, h) < 16:
            raise M2UNetError(f"--sizes {part!r}: each side must be at least 16")
        sizes.append((w, h))
    return sizes


def repeats_for(width: int, height: int, backend: str, repeats: int | None) -> tuple[int, int]:
    """(warm-up runs, timed runs): fewer for large images and for the slow eager baseline."""
    if repeats is not None:
        return 1, repeats
    pixels = width * height
    slow = backend.startswith("torch")
    if pixels <= 600 * 600:
        return 3, 10 if slow else 30
    if pixels <= 1100 * 1100:
        return 2, 5 if slow else 15
    return 1, 2 if slow else 5


def machine_info() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(), "processor": platform.processor()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                info["isa"] = sorted(f for f in flags if f.startswith(("avx512", "amx")) or f in ("avx2", "fma"))
                break
    except OSError:
        pass
    versions = {}
    for module in ("torch", "onnxruntime", "openvino", "numpy"):
        try:
            versions[module] = __import__(module).__version__
        except Exception:
            versions[module] = None
    info["versions"] = versions
    return info


def markdown_table(cells: list[dict]) -> str:
    baseline = {(c["width"], c["height"]): c["median_ms"] for c in cells if c["backend"] == BASELINE and "median_ms" in c}
    lines = [
        "| backend | size (W×H) | median ms | images/s | speed-up vs torch eager | peak RSS MB | RSS after load MB | load avg (1 min) before → after |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for c in cells:
        size = f"{c['width']}×{c['height']}"
        if "error" in c:
            lines.append(f"| {c['backend']} | {size} | failed: {c['error']} | | | | | |")
            continue
        base = baseline.get((c["width"], c["height"]))
        speedup = f"{base / c['median_ms']:.1f}×" if base else "–"
        lines.append(
            f"| {c['backend']} | {size} | {c['median_ms']:.1f} | {c['images_per_s']:.2f} | {speedup} | {c['peak_rss_mb']:.0f} | {c['rss_after_load_mb']:.0f} | "
            f"{c['loadavg_before'][0]:.2f} → {c['loadavg_after'][0]:.2f} |"
        )
    return "\n".join(lines)


def bar_chart(cells: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from ..data.io import write_atomic

    sizes = sorted({(c["width"], c["height"]) for c in cells}, key=lambda s: s[0] * s[1])
    backends = list(dict.fromkeys(c["backend"] for c in cells))
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 4.2), squeeze=False)
    colours = plt.get_cmap("tab10")(np.arange(len(backends)))
    for ax, size in zip(axes[0], sizes, strict=False):
        values = [next((c["median_ms"] for c in cells if c["backend"] == b and (c["width"], c["height"]) == size and "median_ms" in c), np.nan) for b in backends]
        bars = ax.bar(range(len(backends)), values, color=colours)
        ax.set_yscale("log")
        ax.set_xticks(range(len(backends)), backends, rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{size[0]}×{size[1]}")
        ax.set_ylabel("median latency per image (ms, log)")
        for bar, value in zip(bars, values, strict=False):
            if np.isfinite(value):
                ax.annotate(f"{value:.0f}" if value >= 10 else f"{value:.1f}", (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom", fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)


@click.command()
@click.option("--sizes", default=DEFAULT_SIZES, show_default=True, help="Image sizes WxH, comma-separated.")
@click.option("--backends", default=DEFAULT_BACKENDS, show_default=True, help="Backends, comma-separated; torch (eager fp32) is always added.")
@click.option("--device", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda"]), help="cuda needs a GPU build of torch (not this project's CPU install).")
@click.option("--model", "model_name", default="drive", show_default=True, type=click.Choice(["drive", "chase_db1", "hrf"]), help="Pretrained weights to run.")
@click.option("--repeats", type=click.IntRange(1, 1000), default=None, help="Timed runs per cell [default: 10–30 for small sizes, 2–5 for HRF].")
@click.option("--hint", default="LATENCY", show_default=True, type=click.Choice(["LATENCY", "THROUGHPUT"]), help="OpenVINO PERFORMANCE_HINT.")
@click.option("--threads", type=int, default=None, help="Threads per runtime [default: the runtime's choice, all cores].")
@click.option("-o", "--out", "out_dir", default="results/bench", show_default=True, type=click.Path(file_okay=False), help="Writes bench.json, bench.md, bench.png here.")
@one_line_errors
def bench(sizes, backends, device, model_name, repeats, hint, threads, out_dir):
    """Median latency, images/s and peak RSS per backend and size, with PyTorch eager fp32 (the authors' way) as baseline.

    Every cell runs in its own process (clean peak RSS). The load average before and after each cell is
    recorded, since other work on the machine slows every number down.

    \b
    Examples:
      m2unet bench
      m2unet bench --sizes 544x544 --backends openvino-bf16,openvino-int8 --repeats 50
    """
    from ..export import cached_export
    from ..weights import pretrained_path
    from .backends import BACKENDS
    from .pipeline import calibration_for

    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise M2UNetError("--device cuda: no CUDA device visible to this torch build (torch.cuda.is_available() is False)")
        raise M2UNetError("--device cuda: GPU benchmarking is not implemented yet (CPU only in this release)")
    size_list = parse_sizes(sizes)
    names = [b.strip() for b in backends.split(",") if b.strip()]
    unknown = [b for b in names if b not in BACKENDS]
    if unknown:
        raise M2UNetError(f"unknown backend(s) {', '.join(unknown)}; available: {', '.join(BACKENDS)}")
    names = [BASELINE] + [b for b in names if b != BASELINE]
    weights = pretrained_path(model_name)
    cells = []
    unavailable = {}
    for name in names:  # export outside the timed processes (once, cached)
        if name.startswith(("onnxruntime", "openvino")):
            kind = ("onnx" if name.startswith("onnx") else "openvino") + ("-int8" if name.endswith("int8") else "")
            try:
                cached_export(weights, kind, calibration_for(weights), progress=click.echo)
            except (M2UNetError, ImportError) as error:  # e.g. no calibration images for int8: the other backends still run
                unavailable[name] = str(error)
                click.echo(f"{name}: not available: {error}", err=True)
    command = " ".join(["m2unet bench", *sys.argv[2:]]) if len(sys.argv) > 1 and sys.argv[1] == "bench" else "m2unet bench"
    started = time.time()
    for width, height in size_list:
        for name in names:
            if name in unavailable:
                cells.append({"backend": name, "width": width, "height": height, "error": unavailable[name]})
                continue
            warmup, count = repeats_for(width, height, name, repeats)
            job = {"weights": str(weights), "backend": name, "width": width, "height": height, "warmup": warmup, "repeats": count, "hint": hint, "threads": threads}
            result = subprocess.run([sys.executable, "-m", "m2unet.inference.bench_worker", json.dumps(job)], capture_output=True, text=True)
            if result.returncode != 0:
                last = (result.stderr.strip().splitlines() or ["no output"])[-1][:200]
                cell = {"backend": name, "width": width, "height": height, "error": last}
                click.echo(f"{name:>17} {width}×{height}: failed: {last}", err=True)
            else:
                cell = json.loads(result.stdout.strip().splitlines()[-1])
                click.echo(f"{name:>17} {width}×{height}: median {cell['median_ms']:9.1f} ms  {cell['images_per_s']:7.2f} images/s  "
                           f"peak RSS {cell['peak_rss_mb']:6.0f} MB  load {cell['loadavg_before'][0]:.2f}")
            cells.append(cell)
    out = Path(out_dir)
    report = {"command": command, "weights": weights.name, "hint": hint, "threads": threads, "machine": machine_info(),
              "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "seconds": round(time.time() - started, 1), "cells": cells}
    table = markdown_table(cells)
    from ..data.io import write_atomic

    write_atomic(out / "bench.json", lambda tmp: Path(tmp).write_text(json.dumps(report, indent=1) + "\n"))
    machine = report["machine"]
    header = (f"# m2unet bench\n\nCommand: `{command}`  \nMachine: {machine.get('cpu', '?')}, {machine['cpu_count']} CPUs, "
              f"ISA {', '.join(machine.get('isa', []))}  \nVersions: {', '.join(f'{k} {v}' for k, v in machine['versions'].items())}  \n"
              f"Started {report['started_utc']}, took {report['seconds']} s. Weights: {weights.name}. OpenVINO hint: {hint}.\n\n"
              f"Latency: median over the timed runs of the inference path of `m2unet segment` (padding, tiles of ≤ {MAX_TILE}² with {TILE_OVERLAP} px overlap "
              "for large images, model, sigmoid) on one image; decode and PNG writing not included. Peak RSS: the whole process "
              "(Python, runtime, model, one image; VmHWM); RSS after load: before the first image (Python + torch, which the package imports, "
              "+ runtime + model). `torch` = PyTorch eager fp32, the authors' way.\n\n")
    write_atomic(out / "bench.md", lambda tmp: Path(tmp).write_text(header + table + "\n"))
    loads = [c["loadavg_before"][0] for c in cells if "loadavg_before" in c]
    load_note = f", 1-min load avg {min(loads):.1f}–{max(loads):.1f}" if loads else ""
    bar_chart(cells, out / "bench.png", f"M2U-Net latency per image ({machine.get('cpu', '?')}, {machine['cpu_count']} CPUs{load_note}); command: {command}")
    click.echo("")
    click.echo(table)
    click.echo(f"\nwrote {out / 'bench.json'}, {out / 'bench.md'}, {out / 'bench.png'}")
