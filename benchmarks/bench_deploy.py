"""Exported models without PyTorch: start-up, wall time and peak RSS of `m2unet segment`, and install sizes.

For a small device the cost of a run is mostly start-up: importing PyTorch alone takes longer than segmenting a
DRIVE image with OpenVINO. Each row is one `m2unet segment IMAGE` process (median wall time of --repeats runs, the
largest peak RSS), after one warm-up run that fills the export cache:

- the shipped weights with `--backend torch` (PyTorch eager fp32, the authors' way);
- the shipped weights with the default OpenVINO backend, whose export is cached after the first run: PyTorch is
  then not needed either;
- files from `m2unet export` (`--weights drive.onnx|drive-int8.onnx|drive.xml`).

Every 'no PyTorch' row runs in a process where `import torch` fails (sys.modules['torch'] = None), as on a device
with only ONNX Runtime or OpenVINO installed.

Install size: the files each distribution installed (importlib.metadata), with its native libraries.

    .venv/bin/python benchmarks/bench_deploy.py [IMAGE] [--repeats 5]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from child_process import measure_command, write_table

from m2unet.data import default_datasets_root

OUT = Path(__file__).resolve().parents[1] / "results" / "bench"
NO_TORCH = "import sys; sys.modules['torch'] = None; from m2unet.cli import main; main(prog_name='m2unet')"


def installed_mb(distribution: str) -> float | None:
    try:
        files = importlib.metadata.distribution(distribution).files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    return sum(os.path.getsize(f.locate()) for f in files if os.path.isfile(f.locate())) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", nargs="?", default=str(default_datasets_root() / "DRIVE" / "test" / "images" / "01_test.tif"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp)
        for name, extra in [("drive.onnx", ["--format", "onnx"]), ("drive-int8.onnx", ["--format", "onnx", "--int8"]), ("drive.xml", ["--format", "openvino"])]:
            subprocess.run([sys.executable, "-m", "m2unet", "export", *extra, "-o", str(models / name)], check=True, capture_output=True)
        cases = [
            ("drive.safetensors (shipped)", "torch fp32 (imports PyTorch)", [sys.executable, "-m", "m2unet"], ["--model", "drive", "--backend", "torch"]),
            ("drive.safetensors (shipped)", "openvino bf16 (the default), export cached: no PyTorch", [sys.executable, "-c", NO_TORCH],
             ["--model", "drive", "--backend", "openvino", "--precision", "bf16"]),
            ("drive.onnx", "onnxruntime fp32, no PyTorch", [sys.executable, "-c", NO_TORCH], ["--weights", str(models / "drive.onnx"), "--backend", "onnxruntime"]),
            ("drive-int8.onnx", "onnxruntime int8, no PyTorch", [sys.executable, "-c", NO_TORCH], ["--weights", str(models / "drive-int8.onnx"), "--backend", "onnxruntime"]),
            ("drive.xml", "openvino fp32, no PyTorch", [sys.executable, "-c", NO_TORCH], ["--weights", str(models / "drive.xml"), "--backend", "openvino", "--precision", "fp32"]),
            ("drive.xml", "openvino bf16, no PyTorch", [sys.executable, "-c", NO_TORCH], ["--weights", str(models / "drive.xml"), "--backend", "openvino", "--precision", "bf16"]),
        ]
        for model, how, program, options in cases:
            command = [*program, "segment", args.image, "-o", str(models / "out"), *options]
            measure_command(command)  # warm-up: export cache, page cache
            runs = [measure_command(command) for _ in range(args.repeats)]
            if any(r["exit_status"] for r in runs):
                raise SystemExit(f"{model} ({how}) failed: {runs[-1]['summary']}")
            rows.append({"model": model, "how": how, "wall_s": statistics.median(r["wall_s"] for r in runs),
                         "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "summary": runs[-1]["summary"],
                         "loadavg_before": runs[0]["loadavg_before"], "loadavg_after": runs[-1]["loadavg_after"]})
            print(rows[-1], flush=True)
    sizes = {name: installed_mb(name) for name in ("torch", "onnxruntime", "openvino", "numpy", "pillow")}
    lines = [
        "# Exported models without PyTorch: `m2unet segment` start to finish",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_deploy.py {' '.join(sys.argv[1:])}`".rstrip() + f"  \nImage: `{Path(args.image).name}`; "
        f"median wall time of {args.repeats} runs of the whole command (interpreter start, imports, model load or compile, decode, FOV mask, "
        "inference, two PNGs); peak RSS: the largest of those runs. 'no PyTorch': `import torch` raises in that process.",
        "",
        "| model file | backend | wall s | peak RSS MB | load avg (1 min) before → after |",
        "|---|---|---:|---:|---|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['how']} | {r['wall_s']:.2f} | {r['peak_rss_mb']:.0f} | {r['loadavg_before'][0]:.2f} → {r['loadavg_after'][0]:.2f} |")
    lines += ["", "Installed size of the runtimes (files of the distribution, MB): "
              + ", ".join(f"{name} {size:.0f}" for name, size in sizes.items() if size is not None) + ".", ""]
    rows.append({"installed_mb": sizes})
    write_table(OUT, "deploy", lines, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
