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

:func:`run_bench` measures and returns the report; :mod:`.bench_report` writes it (bench.json, bench.md, bench.png).
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

from ..errors import M2UNetError, keep_another_commands_output, one_line_errors
from ..system import cpu_isa, cpu_model
from ..weights import PRETRAINED_NAMES
from .backend_spec import BackendSpec
from .bench_worker import CUDA_BACKENDS
from .tiling import MULTIPLE

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
        if min(w, h) < MULTIPLE:
            raise M2UNetError(f"--sizes {part!r}: each side must be at least {MULTIPLE}")
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
    slow = BackendSpec.parse(backend).runtime == "torch"
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
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(), "processor": platform.processor(),
            "cpu": cpu_model(), "isa": cpu_isa()}
    versions = {}
    for module in ("torch", "onnxruntime", "openvino", "numpy"):
        try:
            versions[module] = __import__(module).__version__
        except Exception:
            versions[module] = None
    info["versions"] = versions
    return info


def export_models(models: list[dict], names: list[str]) -> dict[tuple[str, str], str]:
    """Make (and cache) the exported models the backends ``names`` run, outside the timed processes;
    {(model, backend): why} for those that cannot be made (the other cells still run)."""
    from ..export import cached_export
    from ..weights import calibration_for

    unavailable = {}
    for entry in models:
        for name in names:
            kind = BackendSpec.parse(name).export_kind
            if kind is None:
                continue
            try:
                cached_export(entry["weights"], kind, calibration_for(entry["weights"]), progress=click.echo)
            except (M2UNetError, ImportError) as error:  # e.g. no calibration images for int8: the other backends still run
                unavailable[(entry["model"], name)] = str(error)
                click.echo(f"{entry['model']} {name}: not available: {error}", err=True)
            except Exception as error:  # an architecture the exporter or quantizer cannot handle: that cell fails, the rest go on
                message = f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
                unavailable[(entry["model"], name)] = message
                click.echo(f"{entry['model']} {name}: export failed: {message}", err=True)
    return unavailable


def run_worker(job: dict, where: dict, label: str) -> dict:
    """One cell in a fresh process (:mod:`.bench_worker`): its measurements, or ``error`` with the worker's last line."""
    name, size = job["backend"], f"{job['width']}×{job['height']}"
    result = subprocess.run([sys.executable, "-m", "m2unet.inference.bench_worker", json.dumps(job)], capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1][:200]
        click.echo(f"{label}{name:>17} {size}: failed: {last}", err=True)
        return {**where, "error": last}
    cell = {"model": where["model"], **json.loads(result.stdout.strip().splitlines()[-1])}
    gpu = f"  peak GPU {cell['peak_gpu_mb']:7.0f} MB" if cell.get("peak_gpu_mb") is not None else ""
    click.echo(f"{label}{name:>17} {size}: median {cell['median_ms']:9.2f} ms  {cell['images_per_s']:7.2f} images/s  "
               f"peak RSS {cell['peak_rss_mb']:6.0f} MB{gpu}  load {cell['loadavg_before'][0]:.2f}")
    return cell


def measure_cells(models: list[dict], names: list[str], sizes: list[tuple[int, int]], settings: dict, unavailable: dict, keep=None) -> list[dict]:
    """One cell per size, model and backend, each in its own process; ``settings``: repeats, hint, threads, device.
    ``keep(cells)`` is called after every cell (bench.partial.json), so a run stopped midway loses nothing measured."""
    cells = []
    for width, height in sizes:
        for entry in models:
            label = f"{entry['model']:>20} " if len(models) > 1 else ""
            for name in names:
                where = {"model": entry["model"], "backend": name, "width": width, "height": height}
                if (entry["model"], name) in unavailable:
                    cells.append({**where, "error": unavailable[(entry["model"], name)]})
                    continue
                warmup, count = repeats_for(width, height, name, settings["repeats"])
                job = {"weights": str(entry["weights"]), "backend": name, "width": width, "height": height, "warmup": warmup, "repeats": count,
                       "hint": settings["hint"], "threads": settings["threads"], "device": settings["device"]}
                cells.append(run_worker(job, where, label))
                if keep is not None:
                    keep(cells)
    return cells


def run_bench(models: list[dict], names: list[str], sizes: list[tuple[int, int]], *, repeats: int | None = None, hint: str = "LATENCY",
              threads: int | None = None, device: str = "cpu", command: str = "m2unet bench", keep=None) -> dict:
    """Measure every cell (see :func:`measure_cells`; exports made first) and return the report that
    :func:`m2unet.inference.bench_report.write_report` writes: command, machine, models, settings and cells."""
    cuda_version = None
    if device == "cuda":
        import torch

        from .backends import require_cuda

        require_cuda()
        cuda_version = torch.version.cuda
    unavailable = export_models(models, names)
    started = time.time()
    settings = {"repeats": repeats, "hint": hint, "threads": threads, "device": device}
    cells = measure_cells(models, names, sizes, settings, unavailable, keep)
    machine = machine_info()
    if device == "cuda":
        machine.update({"gpu": next((c["gpu_name"] for c in cells if c.get("gpu_name")), None), "cuda": cuda_version,
                        "cudnn": next((c["cudnn"] for c in cells if c.get("cudnn")), None)})
    return {"command": command, "device": device, "baseline": baseline_for(device), "weights": ", ".join(Path(e["weights"]).name for e in models),
            "models": [{**e, "weights": str(e["weights"])} for e in models], "hint": hint, "threads": threads, "machine": machine,
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "seconds": round(time.time() - started, 1), "cells": cells}


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
@click.option("--overwrite", is_flag=True, help="Replace a bench.json in --out that another command made.")
@one_line_errors
def bench(sizes, backends, device, model_names, weights_files, archs, repeats, hint, threads, out_dir, overwrite):
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
      m2unet bench --sizes 544x544 -o my-bench --overwrite    # replace what my-bench holds

    A folder whose bench.json another command made is refused unless --overwrite; the same command measures it again.
    """
    from .bench_report import recorded_command, write_partial, write_report

    size_list = parse_sizes(sizes)
    names = check_backends(backends if backends is not None else (DEFAULT_CUDA_BACKENDS if device == "cuda" else DEFAULT_BACKENDS), device)
    if device == "cuda":
        from .backends import require_cuda

        require_cuda()  # before the models are resolved (untrained ones are saved)
    models = resolve_models(model_names, weights_files, archs)
    typed = [word for word in sys.argv[2:] if word != "--overwrite"]  # it says what may be replaced, not what was measured
    command = " ".join(["m2unet bench", *typed]) if len(sys.argv) > 1 and sys.argv[1] == "bench" else "m2unet bench"
    out = Path(out_dir)
    keep_another_commands_output(out / "bench.json", command, overwrite, recorded_command)  # before minutes of measuring
    report = run_bench(models, names, size_list, repeats=repeats, hint=hint, threads=threads, device=device, command=command,
                       keep=lambda cells: write_partial(out, command, cells))
    table = write_report(report, out)
    click.echo("")
    click.echo(table)
    click.echo(f"\nwrote {out / 'bench.json'}, {out / 'bench.md'}, {out / 'bench.png'}")
