"""``m2unet bench``: latency, images/s and peak memory per model, backend and image size, beside PyTorch eager fp32.

Each (model, backend, size) cell runs in a fresh Python process, so its peak RSS (VmHWM) is its own:
model load + compiled runtime + one image's inference. On CPU the timed call is the inference path of
``m2unet segment`` (:func:`m2unet.inference.tiling.predict_tiled`: padding, tiles of ≤ 1536² for large
images, the model), on a fixed random image; decoding and PNG writing are not timed. Exports are made (and
cached) before timing. With ``--device cuda`` the whole image goes through the GPU in one call
(:func:`m2unet.inference.bench_worker.run_cuda_cell`: host → device copy, model or CUDA-graph replay, sigmoid,
device → host copy). The load average is recorded before and after each cell: on a shared machine the
numbers are only as quiet as the machine.

Models: ``--model`` (a pretrained M2U-Net), ``--weights FILE`` (any of our weights files) and ``--arch NAME``
(a registered architecture with random weights, saved once to the export cache: latency does not depend on
the weight values), each repeatable, so M2U-Net, U-Net and ERFNet can be timed side by side.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import click

from ..errors import M2UNetError, one_line_errors
from ..weights import PRETRAINED_NAMES
from .bench_worker import CUDA_BACKENDS
from .tiling import MAX_TILE, TILE_OVERLAP

DEFAULT_SIZES = "544x544,960x960,3504x2336"
DEFAULT_BACKENDS = "torch,torch-bf16,onnxruntime,onnxruntime-int8,openvino,openvino-bf16,openvino-int8"
DEFAULT_CUDA_BACKENDS = ",".join(CUDA_BACKENDS)
BASELINE = "torch"
CUDA_BASELINE = "cuda"
UNTRAINED_SEED = 0


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


def baseline_for(device: str) -> str:
    return CUDA_BASELINE if device == "cuda" else BASELINE


def check_backends(text: str, device: str) -> list[str]:
    """The backend names of ``--backends`` for ``device``, the baseline first; a CPU backend with --device cuda
    (or a GPU one with --device cpu) is an error."""
    from .backends import BACKENDS

    names = [b.strip() for b in text.split(",") if b.strip()]
    unknown = [b for b in names if b not in BACKENDS and b not in CUDA_BACKENDS]
    if unknown:
        raise M2UNetError(f"unknown backend(s) {', '.join(unknown)}; available: {', '.join(BACKENDS)} (--device cpu), "
                          f"{', '.join(CUDA_BACKENDS)} (--device cuda)")
    if device == "cuda":
        wrong = [b for b in names if b not in CUDA_BACKENDS]
        if wrong:
            raise M2UNetError(f"backend(s) {', '.join(wrong)} run on CPU, not with --device cuda; GPU backends: {', '.join(CUDA_BACKENDS)}")
    else:
        wrong = [b for b in names if b in CUDA_BACKENDS]
        if wrong:
            raise M2UNetError(f"backend(s) {', '.join(wrong)} need --device cuda; CPU backends: {', '.join(BACKENDS)}")
    baseline = baseline_for(device)
    return [baseline] + [b for b in names if b != baseline]


def repeats_for(width: int, height: int, backend: str, repeats: int | None) -> tuple[int, int]:
    """(warm-up runs, timed runs): fewer for large images and for the slow eager baseline."""
    if backend in CUDA_BACKENDS:  # a GPU is fast; warm-up covers cudnn autotuning (and graph capture)
        pixels = width * height
        return 5, repeats or (50 if pixels <= 600 * 600 else 30 if pixels <= 1100 * 1100 else 20)
    if repeats is not None:
        return 1, repeats
    pixels = width * height
    slow = backend.startswith("torch")
    if pixels <= 600 * 600:
        return 3, 10 if slow else 30
    if pixels <= 1100 * 1100:
        return 2, 5 if slow else 15
    return 1, 2 if slow else 5


def untrained_weights(arch: str) -> Path:
    """A weights file of architecture ``arch`` with random weights (``torch.manual_seed(0)``, so the file and
    its cached exports are the same on every run), in the export cache. For latency only: int8 exports of it
    are calibrated on DRIVE training images."""
    import torch

    from ..export import cache_root
    from ..models import create_model
    from ..weights import save_weights

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(UNTRAINED_SEED)
        model = create_model(arch)  # m2unet: encoder_weights=None, random encoder, nothing downloaded
    metadata = {"model": arch, "untrained": True, "init": f"random, torch.manual_seed({UNTRAINED_SEED})", "calibration": "drive",
                "note": "random weights for latency only (m2unet bench --arch)"}
    return save_weights(model, cache_root() / "untrained" / f"untrained-{arch}.safetensors", metadata)


def resolve_models(model_names: tuple[str, ...], weights_files: tuple[str, ...], archs: tuple[str, ...]) -> list[dict]:
    """The models to time: [{"model": label, "arch", "weights": Path, "untrained": bool}], in the order given
    (--model, then --weights, then --arch); the pretrained ``drive`` model when none is given."""
    from ..models import list_models
    from ..weights import load_weights, pretrained_path

    arch_names = [a.strip() for text in archs for a in text.split(",") if a.strip()]
    unknown = [a for a in arch_names if a not in list_models()]
    if unknown:
        raise M2UNetError(f"--arch {', '.join(unknown)}: unknown model; available: {', '.join(list_models())}")
    if not (model_names or weights_files or arch_names):
        model_names = ("drive",)
    entries = [{"model": f"m2unet ({name})", "arch": "m2unet", "weights": pretrained_path(name), "untrained": False} for name in model_names]
    for file in weights_files:
        path = Path(file)
        model, meta = load_weights(path)  # a file that is not a model fails here, in one line, not in every cell
        arch = meta.get("model") or getattr(model, "registry_name", "m2unet")
        del model
        entries.append({"model": f"{arch} ({path.stem})", "arch": arch, "weights": path, "untrained": bool(meta.get("untrained"))})
    entries += [{"model": f"{arch} (untrained)", "arch": arch, "weights": untrained_weights(arch), "untrained": True} for arch in dict.fromkeys(arch_names)]
    unique = {}
    for entry in entries:
        unique.setdefault(str(Path(entry["weights"]).resolve()), entry)
    return list(unique.values())


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


def _several_models(cells: list[dict]) -> bool:
    return len({c.get("model") for c in cells}) > 1


def markdown_table(cells: list[dict], baseline_name: str = BASELINE) -> str:
    """One row per cell; a model column when cells of several models are present; GPU columns for cuda runs.
    Speed-up is relative to ``baseline_name`` of the same model and size."""
    cuda = baseline_name == CUDA_BASELINE
    several = _several_models(cells)
    baseline = {(c.get("model"), c["width"], c["height"]): c["median_ms"] for c in cells if c["backend"] == baseline_name and "median_ms" in c}
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
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(aligns) + "|"]
    for c in cells:
        lead = [c.get("model", "")] if several else []
        size = f"{c['width']}×{c['height']}"
        if "error" in c:
            row = [*lead, c["backend"], size, f"failed: {c['error']}"]
            lines.append("| " + " | ".join(row + [""] * (len(columns) - len(row))) + " |")
            continue
        base = baseline.get((c.get("model"), c["width"], c["height"]))
        speedup = f"{base / c['median_ms']:.1f}×" if base else "–"
        load = f"{c['loadavg_before'][0]:.2f} → {c['loadavg_after'][0]:.2f}"
        if cuda:
            gpu = f"{c['peak_gpu_mb']:.0f}" if c.get("peak_gpu_mb") is not None else "–"
            diff = f"{c['max_abs_diff_vs_fp32']:.1e}" if c.get("max_abs_diff_vs_fp32") is not None else "–"
            row = [c["backend"], size, f"{c['median_ms']:.2f}", f"{c['min_ms']:.2f}–{c['max_ms']:.2f}", f"{c['images_per_s']:.1f}", speedup,
                   gpu, f"{c['peak_rss_mb']:.0f}", diff, load]
        else:
            row = [c["backend"], size, f"{c['median_ms']:.1f}", f"{c['images_per_s']:.2f}", speedup, f"{c['peak_rss_mb']:.0f}",
                   f"{c['rss_after_load_mb']:.0f}", load]
        lines.append("| " + " | ".join([*lead, *row]) + " |")
    return "\n".join(lines)


def bar_chart(cells: list[dict], path: Path, title: str) -> None:
    """Median latency per size (one panel each, log scale): bars per backend, grouped by model when several."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from ..data.io import write_atomic

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


@click.command()
@click.option("--sizes", default=DEFAULT_SIZES, show_default=True, help="Image sizes WxH, comma-separated.")
@click.option("--backends", default=None, help=f"Backends, comma-separated; the baseline (torch on CPU, cuda on GPU) is always added. "
              f"[default: {DEFAULT_BACKENDS}; with --device cuda: {DEFAULT_CUDA_BACKENDS}]")
@click.option("--device", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda"]),
              help="cuda: time the GPU backends (whole image in one call) on a CUDA build of torch (not this project's CPU install).")
@click.option("--model", "model_names", multiple=True, type=click.Choice(list(PRETRAINED_NAMES)),
              help="Pretrained M2U-Net weights to run; repeatable. [default: drive, unless --weights or --arch is given]")
@click.option("--weights", "weights_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A weights file (.safetensors of ours, e.g. a trained U-Net or ERFNet; the architecture comes from its metadata); repeatable.")
@click.option("--arch", "archs", multiple=True, metavar="NAME[,NAME...]",
              help="A registered architecture (m2unet, unet, erfnet) with random weights: latency does not depend on the values; "
                   "repeatable or comma-separated.")
@click.option("--repeats", type=click.IntRange(1, 1000), default=None, help="Timed runs per cell [default: 10–30 for small sizes, 2–5 for HRF; GPU 20–50].")
@click.option("--hint", default="LATENCY", show_default=True, type=click.Choice(["LATENCY", "THROUGHPUT"]), help="OpenVINO PERFORMANCE_HINT.")
@click.option("--threads", type=int, default=None, help="Threads per runtime [default: the runtime's choice, all cores].")
@click.option("-o", "--out", "out_dir", default="results/bench", show_default=True, type=click.Path(file_okay=False), help="Writes bench.json, bench.md, bench.png here.")
@one_line_errors
def bench(sizes, backends, device, model_names, weights_files, archs, repeats, hint, threads, out_dir):
    """Median latency, images/s and peak memory per model, backend and size, with PyTorch eager fp32 (the authors' way) as baseline.

    Every cell runs in its own process (clean peak RSS). The load average before and after each cell is
    recorded, since other work on the machine slows every number down. Several models (--model, --weights,
    --arch) give one row per model; the speed-up is relative to the baseline of the same model and size.

    With --device cuda the GPU backends are timed: cuda (eager fp32, the baseline), cuda-fp16 and cuda-bf16
    (autocast, channels_last), cuda-fp16-graph and cuda-bf16-graph (the same, captured in a CUDA graph).

    \b
    Examples:
      m2unet bench
      m2unet bench --sizes 544x544 --backends openvino-bf16,openvino-int8 --repeats 50
      m2unet bench --arch m2unet,unet,erfnet --sizes 544x544 --backends openvino-bf16
      m2unet bench --weights results/train/erfnet-drive/best.safetensors --sizes 544x544
      m2unet bench --device cuda --arch m2unet,unet,erfnet
    """
    from ..export import cached_export
    from ..weights import calibration_for

    size_list = parse_sizes(sizes)
    names = check_backends(backends if backends is not None else (DEFAULT_CUDA_BACKENDS if device == "cuda" else DEFAULT_BACKENDS), device)
    baseline = baseline_for(device)
    cuda_version = None
    if device == "cuda":
        import torch

        from .backends import require_cuda

        require_cuda()
        cuda_version = torch.version.cuda
    models = resolve_models(model_names, weights_files, archs)
    several = len(models) > 1
    cells = []
    unavailable = {}
    for entry in models:
        for name in names:  # export outside the timed processes (once, cached)
            if name.startswith(("onnxruntime", "openvino")):
                kind = ("onnx" if name.startswith("onnx") else "openvino") + ("-int8" if name.endswith("int8") else "")
                try:
                    cached_export(entry["weights"], kind, calibration_for(entry["weights"]), progress=click.echo)
                except (M2UNetError, ImportError) as error:  # e.g. no calibration images for int8: the other backends still run
                    unavailable[(entry["model"], name)] = str(error)
                    click.echo(f"{entry['model']} {name}: not available: {error}", err=True)
                except Exception as error:  # an architecture the exporter or quantizer cannot handle: that cell fails, the rest go on
                    message = f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
                    unavailable[(entry["model"], name)] = message
                    click.echo(f"{entry['model']} {name}: export failed: {message}", err=True)
    command = " ".join(["m2unet bench", *sys.argv[2:]]) if len(sys.argv) > 1 and sys.argv[1] == "bench" else "m2unet bench"
    from ..data.io import write_atomic

    out = Path(out_dir)
    started = time.time()
    for width, height in size_list:
        for entry in models:
            label = f"{entry['model']:>20} " if several else ""
            for name in names:
                where = {"model": entry["model"], "backend": name, "width": width, "height": height}
                if (entry["model"], name) in unavailable:
                    cells.append({**where, "error": unavailable[(entry["model"], name)]})
                    continue
                warmup, count = repeats_for(width, height, name, repeats)
                job = {"weights": str(entry["weights"]), "backend": name, "width": width, "height": height, "warmup": warmup, "repeats": count,
                       "hint": hint, "threads": threads, "device": device}
                result = subprocess.run([sys.executable, "-m", "m2unet.inference.bench_worker", json.dumps(job)], capture_output=True, text=True)
                if result.returncode != 0:
                    last = (result.stderr.strip().splitlines() or ["no output"])[-1][:200]
                    cell = {**where, "error": last}
                    click.echo(f"{label}{name:>17} {width}×{height}: failed: {last}", err=True)
                else:
                    cell = {"model": entry["model"], **json.loads(result.stdout.strip().splitlines()[-1])}
                    gpu = f"  peak GPU {cell['peak_gpu_mb']:7.0f} MB" if cell.get("peak_gpu_mb") is not None else ""
                    click.echo(f"{label}{name:>17} {width}×{height}: median {cell['median_ms']:9.2f} ms  {cell['images_per_s']:7.2f} images/s  "
                               f"peak RSS {cell['peak_rss_mb']:6.0f} MB{gpu}  load {cell['loadavg_before'][0]:.2f}")
                cells.append(cell)
                # every finished cell is kept at once, so a run stopped midway (time limit, kill) loses nothing measured
                write_atomic(out / "bench.partial.json", lambda tmp: Path(tmp).write_text(json.dumps({"command": command, "cells": cells}, indent=1) + "\n"))
    machine = machine_info()
    gpu_name = next((c["gpu_name"] for c in cells if c.get("gpu_name")), None)
    if device == "cuda":
        machine.update({"gpu": gpu_name, "cuda": cuda_version,
                        "cudnn": next((c["cudnn"] for c in cells if c.get("cudnn")), None)})
    report = {"command": command, "device": device, "baseline": baseline, "weights": ", ".join(Path(e["weights"]).name for e in models),
              "models": [{**e, "weights": str(e["weights"])} for e in models], "hint": hint, "threads": threads, "machine": machine,
              "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "seconds": round(time.time() - started, 1), "cells": cells}
    table = markdown_table(cells, baseline)
    write_atomic(out / "bench.json", lambda tmp: Path(tmp).write_text(json.dumps(report, indent=1) + "\n"))
    header = (f"# m2unet bench\n\nCommand: `{command}`  \nMachine: {machine.get('cpu', '?')}, {machine['cpu_count']} CPUs, "
              f"ISA {', '.join(machine.get('isa', []))}  \n")
    if device == "cuda":
        tf32 = next((c["cudnn_tf32"] for c in cells if c.get("cudnn_tf32") is not None), None)
        header += (f"GPU: {gpu_name or '?'}, CUDA {cuda_version}, cuDNN {machine.get('cudnn')}, cudnn.benchmark on"
                   f"{', cuDNN TF32 convolutions ' + ('on (PyTorch default)' if tf32 else 'off') if tf32 is not None else ''}  \n")
    header += f"Versions: {', '.join(f'{k} {v}' for k, v in machine['versions'].items())}  \n"
    models_text = "; ".join(f"{e['model']} = {Path(e['weights']).name}" for e in models)
    header += f"Started {report['started_utc']}, took {report['seconds']} s. Models: {models_text}."
    header += f" OpenVINO hint: {hint}.\n\n" if device == "cpu" else "\n\n"
    if device == "cuda":
        header += ("Latency: median over the timed runs of one whole image on the GPU (no tiling): host float32 H×W×3 image → GPU copy, "
                   "zero padding to a multiple of 16, model (or CUDA-graph replay), sigmoid, probability → host copy, with "
                   "`torch.cuda.synchronize()` before each clock reading; untimed warm-up runs first (cudnn autotuning, graph capture). "
                   "`cuda` = PyTorch eager fp32 (the baseline); `cuda-fp16` / `cuda-bf16` = autocast with channels_last model and input; "
                   "`-graph` = the same captured once per input shape in a `torch.cuda.CUDAGraph`. Peak GPU MB: "
                   "`torch.cuda.max_memory_allocated` of the cell's process (weights, activations, graph pool). Max |Δp| vs fp32: "
                   "largest probability difference from eager fp32 of the same model on a second random image (a correctness check).\n\n")
    else:
        header += (f"Latency: median over the timed runs of the inference path of `m2unet segment` (padding, tiles of ≤ {MAX_TILE}² with {TILE_OVERLAP} px overlap "
                   "for large images, model, sigmoid) on one image; decode and PNG writing not included. Peak RSS: the whole process "
                   "(Python, runtime, model, one image; VmHWM); RSS after load: before the first image (Python + runtime + model; PyTorch is "
                   "imported only by the torch backends). `torch` = PyTorch eager fp32, the authors' way.\n\n")
    if any(e["untrained"] for e in models):
        header += ("Models marked (untrained) run random weights (`--arch`, torch.manual_seed(0)): latency does not depend on the weight values, "
                   "so only their timings are meaningful; their int8 rows are calibrated on DRIVE training images.\n\n")
    if several:
        header += f"Speed-up: relative to `{baseline}` of the same model and size.\n\n"
    write_atomic(out / "bench.md", lambda tmp: Path(tmp).write_text(header + table + "\n"))
    loads = [c["loadavg_before"][0] for c in cells if "loadavg_before" in c]
    load_note = f", 1-min load avg {min(loads):.1f}–{max(loads):.1f}" if loads else ""
    what = "M2U-Net" if not several and models[0]["arch"] == "m2unet" else ", ".join(e["model"] for e in models)
    where = f"{gpu_name or 'GPU'}, " if device == "cuda" else ""
    bar_chart(cells, out / "bench.png", f"{what} latency per image ({where}{machine.get('cpu', '?')}, {machine['cpu_count']} CPUs{load_note}); command: {command}")
    click.echo("")
    click.echo(table)
    (out / "bench.partial.json").unlink(missing_ok=True)
    click.echo(f"\nwrote {out / 'bench.json'}, {out / 'bench.md'}, {out / 'bench.png'}")
