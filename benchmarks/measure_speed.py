"""Speed of `m2unet.measure` on a DRIVE-size map (565×584) and an HRF-size map (3504×2336).

The maps are the first observers' labels of DRIVE 01_test and HRF 01_h, inside their FOV masks. One
warm-up call (skan's numba functions compile on first use, once per process), then REPEATS timed calls;
the median is reported, as wall time and as the process's CPU time (the machine may be shared: the CPU
time is what the work costs, the wall time what a user waited). Single-threaded code throughout.

    PYTHONPATH=src .venv/bin/python benchmarks/measure_speed.py     # writes results/measure/speed.md
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

from m2unet.data import read_binary, write_atomic
from m2unet.inference.bench import machine_info
from m2unet.measure import measure
from m2unet.paths import shared_path

OUT = Path(__file__).resolve().parents[1] / "results" / "measure" / "speed.md"
REPEATS = 7
TARGETS = {"DRIVE": 0.2, "HRF": 2.0}


def timed(vessels, fov) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    measure(vessels, fov)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    root = shared_path("datasets")
    maps = {
        "DRIVE": (root / "DRIVE/test/1st_manual/01_manual1.gif", root / "DRIVE/test/mask/01_test_mask.gif"),
        "HRF": (root / "HRF/manual1/01_h.tif", root / "HRF/mask/01_h_mask.tif"),
    }
    start = time.perf_counter()
    first = measure(read_binary(maps["DRIVE"][0]), read_binary(maps["DRIVE"][1]))
    warm_up = time.perf_counter() - start
    lines = ["# Speed of `m2unet.measure`", "",
             f"Command: `PYTHONPATH=src .venv/bin/python benchmarks/measure_speed.py`. CPU: {machine_info().get('cpu', 'unknown')}, {os.cpu_count()} logical CPUs; "
             f"load average at the start {os.getloadavg()[0]:.1f} (other jobs share the machine). Median of {REPEATS} calls after one warm-up "
             f"call (the first call in a process also compiles skan's numba functions: {warm_up:.1f} s here).", "",
             "| map | size | segments | median wall time | median CPU time | target |", "|---|---|---|---|---|---|"]
    for name, (vessel_file, fov_file) in maps.items():
        vessels, fov = read_binary(vessel_file), read_binary(fov_file)
        result = first if name == "DRIVE" else measure(vessels, fov)
        times = [timed(vessels, fov) for _ in range(REPEATS)]
        wall, cpu = statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)
        lines.append(f"| {name} ({vessel_file.name}) | {vessels.shape[1]}×{vessels.shape[0]} | {result.summary['segments']} | "
                     f"{wall:.3f} s | {cpu:.3f} s | ≤ {TARGETS[name]} s |")
    lines += ["", f"Load average at the end: {os.getloadavg()[0]:.1f}.", ""]
    write_atomic(OUT, lambda tmp: Path(tmp).write_text("\n".join(lines)))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
