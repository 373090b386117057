"""One cell of ``m2unet bench`` in its own process: ``python -m m2unet.inference.bench_worker JOB_JSON``.

Kept apart from the CLI so the measured process imports only the package, the runtime and numpy.
"""

from __future__ import annotations

import json
import os
import sys
import time


def run_cell(weights: str, backend: str, width: int, height: int, warmup: int, repeats: int, hint: str, threads: int | None) -> dict:
    """Time one backend at one size in this process (the worker side of a cell)."""
    import numpy as np

    from .backends import create_backend
    from .pipeline import calibration_for
    from .predict import predict_tiled

    load_before = os.getloadavg()
    runner = create_backend(backend, weights, calibration=calibration_for(weights), hint=hint, threads=threads)
    loaded_rss = proc_status_mb("VmRSS")  # interpreter + torch (the package imports it) + runtime + model
    image = np.random.default_rng(0).random((height, width, 3), dtype=np.float32)
    for _ in range(warmup):
        predict_tiled(runner, image)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict_tiled(runner, image)
        times.append(time.perf_counter() - start)
    times.sort()
    median = times[len(times) // 2] if len(times) % 2 else 0.5 * (times[len(times) // 2 - 1] + times[len(times) // 2])
    return {
        "backend": backend, "width": width, "height": height, "repeats": repeats, "warmup": warmup,
        "median_ms": median * 1000, "min_ms": times[0] * 1000, "max_ms": times[-1] * 1000,
        "images_per_s": 1.0 / median, "rss_after_load_mb": loaded_rss, "peak_rss_mb": peak_rss_mb(),
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
    }


def proc_status_mb(field: str) -> float:
    """A memory field of /proc/self/status in MB (Linux): VmRSS (now) or VmHWM (peak since exec)."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def peak_rss_mb() -> float:
    """Peak RSS of this process. VmHWM, not ru_maxrss: Linux carries the parent's high-water mark in
    ru_maxrss across fork+exec, so a worker started by a big parent would report the parent's peak."""
    peak = proc_status_mb("VmHWM")
    if peak == peak:  # not NaN
        return peak
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    job = json.loads(sys.argv[1])
    print(json.dumps(run_cell(job["weights"], job["backend"], job["width"], job["height"], job["warmup"], job["repeats"], job["hint"], job["threads"])))
