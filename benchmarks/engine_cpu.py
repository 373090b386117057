"""Where `--engine ray`'s time goes on this machine: CPU seconds of every process of the command, plain `segment` and
`--engine ray`, on the same DRIVE-size photographs; writes results/engine/cpu.md.

    .venv/bin/python benchmarks/engine_cpu.py [--images 200]

Each process's CPU time (user + system) is sampled every 0.5 s while the command runs and the last sample kept, so
a process that lives under 0.5 s may be missed (a few tenths of a second in all).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import cpu_name, make_inputs, watch_tree  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"plain segment": [], "--engine ray": ["--engine", "ray"]}


def process_name(process: psutil.Process, driver: int) -> str:
    if process.pid == driver:
        return "the command (driver)"
    words = process.cmdline()
    if words and words[0].startswith("ray::"):
        return words[0]
    return os.path.basename(words[0]) if words else process.name()


def cpu_by_process(command: list[str]) -> tuple[float, dict[str, float]]:
    """Wall seconds of ``command`` and CPU seconds per process name (summed over processes of that name)."""
    started = time.perf_counter()
    process = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last: dict[int, tuple[str, float]] = {}

    def visit(members):
        for member in members:
            try:
                times = member.cpu_times()
                last[member.pid] = (process_name(member, process.pid), times.user + times.system)
            except psutil.Error:
                pass

    watch_tree(process, visit, 0.5)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed with exit status {process.returncode}")
    totals: collections.Counter = collections.Counter()
    for name, seconds in last.values():
        totals[name] += seconds
    return wall, dict(totals.most_common())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--out", default=str(ROOT / "results" / "engine" / "cpu.md"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="engine-cpu-"))
    load = os.getloadavg()[0]
    lines = ["# CPU seconds per process: plain `segment` vs `--engine ray`", "",
             f"Command: `.venv/bin/python benchmarks/engine_cpu.py --images {args.images}`; {args.images} DRIVE photographs "
             f"(565×584), `--model drive`; CPU: {cpu_name()}, {os.cpu_count()} cores; 1-minute load at the start: {load:.1f}.", ""]
    try:
        folder = make_inputs(work / "in", "drive", args.images)
        for name, extra in CONFIGS.items():
            command = [sys.executable, "-m", "m2unet", "segment", str(folder), "-o", str(work / name.replace(" ", "-")), "--model", "drive", *extra]
            wall, totals = cpu_by_process(command)
            lines += [f"## {name}: {wall:.1f} s wall, {sum(totals.values()):.1f} CPU seconds", "", "| process | CPU seconds |", "|---|---:|"]
            lines += [f"| `{process}` | {seconds:.1f} |" for process, seconds in totals.items()] + [""]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    from m2unet.data import write_atomic

    write_atomic(args.out, lambda tmp: Path(tmp).write_text("\n".join(lines)))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
