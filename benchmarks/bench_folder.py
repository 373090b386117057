"""Batch throughput of `m2unet segment` on a folder (default: the 20 DRIVE test images, full 565×584 TIFFs).

Runs the real command in a child process (decode in a background thread, inference, PNG writing in another
thread) and reports wall time, images/s, CPU use (user+sys CPU seconds / wall seconds / cores: 1.0 = every
core busy the whole time), peak RSS, and the load average before and after.

    .venv/bin/python benchmarks/bench_folder.py                         # writes results/bench/folder.md
    .venv/bin/python benchmarks/bench_folder.py --precision int8 ../shared/datasets/HRF/images
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from child_process import measure_command, write_table

from m2unet.data import default_datasets_root

OUT = Path(__file__).resolve().parents[1] / "results" / "bench"


def run(folder: Path, backend: str, precision: str, model: str) -> dict:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "m2unet", "segment", str(folder), "-o", out, "--backend", backend, "--precision", precision, "--model", model]
        subprocess.run(command + ["--tile", "1536"], capture_output=True, text=True)  # warm-up: export / compile caches
        measured = measure_command(command)
        count = sum(1 for _ in Path(out).rglob("*_vessels.png"))
    wall = measured["wall_s"]
    return {"backend": backend, "precision": precision, "model": model, "images": count, **measured,
            "images_per_s": count / wall, "cpu_use": measured["cpu_s"] / wall / os.cpu_count()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", default=str(default_datasets_root() / "DRIVE" / "test" / "images"))
    parser.add_argument("--backend", default="openvino")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--model", default="drive")
    args = parser.parse_args()
    rows = [run(Path(args.folder), "torch", "fp32", args.model), run(Path(args.folder), args.backend, args.precision, args.model)]
    lines = [
        "# `m2unet segment` on a folder: throughput and CPU use",
        "",
        f"Command: `{' '.join(['.venv/bin/python benchmarks/bench_folder.py', *sys.argv[1:]])}`  \nFolder: `{args.folder}`; "
        "wall time of the whole command (start-up, model load, decode, FOV mask, inference, two PNGs per image).  ",
        f"CPU use = CPU seconds of the command / wall seconds / {os.cpu_count()} cores (on a busy machine it cannot reach 1). "
        "The command's own summary line (below) gives images/s without start-up. Peak RSS: of that command.",
        "",
        "| backend | precision | images | wall s | images/s | CPU use | peak RSS MB | load avg (1 min) before → after |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(f"| {r['backend']} | {r['precision']} | {r['images']} | {r['wall_s']:.1f} | {r['images_per_s']:.2f} | {r['cpu_use']:.2f} | "
                     f"{r['peak_rss_mb']:.0f} | {r['loadavg_before'][0]:.2f} → {r['loadavg_after'][0]:.2f} |")
    lines += ["", "Summary lines: " + " / ".join(" ".join(r["summary"]) for r in rows), ""]
    write_table(OUT, "folder", lines, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
