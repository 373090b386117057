"""``--precision auto`` with OpenVINO: the fastest precision on this CPU, found by measuring, cached per CPU model.

Which precision is fastest depends on the CPU, not only on its instruction set: at 544² one 2-core AMD EPYC runs
int8 in 10.3 ms and bf16 in 11.1 ms, while a 2-core Intel Xeon with AMX takes 43.7 ms in int8 and 37.5 ms in bf16
(issue 14). So the first ``auto`` run on a CPU model times each candidate — fp32; bf16 where the CPU computes it
natively; int8 where NNCF can quantize (it needs the DRIVE training images for calibration) — on a 544² input
with the shipped DRIVE model (the three shipped models share one architecture, so one timing serves all), picks
the fastest, and writes the timings and the choice to ``$M2UNET_CACHE/precision/CPU-MODEL.json``; later runs read
that file. The F1 of every precision is within 0.0002 of fp32 on DRIVE (results/export/precision_f1.md).
Delete the file to measure again.
"""

from __future__ import annotations

import functools
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from ..system import cpu_model

PROBE_SIDE = 544
PROBE_RUNS = 12
CANDIDATES = ("fp32", "bf16", "int8")


def cache_file(cpu: str | None = None) -> Path:
    from ..export import cache_root

    slug = re.sub(r"[^A-Za-z0-9]+", "-", cpu or cpu_model()).strip("-")[:100] or "unknown-cpu"
    return cache_root() / "precision" / f"{slug}.json"


def _backend(create_backend, precision: str):
    from ..weights import pretrained_path
    from .backend_spec import BackendSpec

    return create_backend(BackendSpec("openvino", precision).name, pretrained_path("drive"), calibration="drive")


def time_precisions(backends: dict, runs: int = PROBE_RUNS) -> dict[str, float]:
    """Median milliseconds of one 544² inference per backend (all cores), the backends taking turns run by run so
    that other load on the machine falls on each alike."""
    batch = np.random.default_rng(0).random((1, 3, PROBE_SIDE, PROBE_SIDE), dtype=np.float32)
    times: dict[str, list[float]] = {name: [] for name in backends}
    for round_ in range(runs + 2):
        for name, backend in backends.items():
            started = time.perf_counter()
            backend(batch)
            if round_ >= 2:  # the first two: warm-up
                times[name].append(time.perf_counter() - started)
    return {name: round(1000.0 * float(np.median(values)), 2) for name, values in times.items()}


def measure(create_backend, cpu_has_bf16, candidates: tuple[str, ...] = CANDIDATES, progress=None) -> dict:
    """Time each usable candidate (``create_backend`` and ``cpu_has_bf16`` of :mod:`.backends`, which calls this);
    the record written to the cache (``choice``: the fastest)."""
    from ..errors import M2UNetError

    say = progress or (lambda text: print(text, file=sys.stderr))
    say(f"--precision auto: timing OpenVINO precisions on this CPU ({cpu_model()}), once; cached in {cache_file()}")
    backends, skipped = {}, {}
    for precision in candidates:
        if precision == "bf16" and not cpu_has_bf16():
            skipped[precision] = "no native bf16 on this CPU"
            continue
        try:
            backends[precision] = _backend(create_backend, precision)
        except (M2UNetError, ImportError, RuntimeError, OSError) as error:  # e.g. int8 without nncf or calibration images
            skipped[precision] = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
    if not backends:
        raise M2UNetError("--precision auto: no OpenVINO precision could run on this CPU")
    timings = time_precisions(backends)
    choice = min(timings, key=timings.get)
    return {"cpu": cpu_model(), "probe": f"1×3×{PROBE_SIDE}×{PROBE_SIDE}, shipped drive model, median of {PROBE_RUNS}, taking turns",
            "ms": timings, "skipped": skipped, "choice": choice, "measured": time.strftime("%Y-%m-%d %H:%M:%S")}


@functools.lru_cache(maxsize=1)
def precision_record(create_backend, cpu_has_bf16) -> dict:
    """The cached record for this CPU model (``choice``, and ``ms`` per precision); measured (and cached) on first use
    (see :func:`measure`)."""
    from ..data.io import write_atomic

    path = cache_file()
    try:
        record = json.loads(path.read_text())
        if record["choice"] in CANDIDATES:
            return record
    except (OSError, ValueError, KeyError, TypeError):
        pass
    result = measure(create_backend, cpu_has_bf16)
    write_atomic(path, lambda tmp: Path(tmp).write_text(json.dumps(result, indent=1) + "\n"))
    print(f"--precision auto: {', '.join(f'{k} {v} ms' for k, v in result['ms'].items())} → {result['choice']}", file=sys.stderr)
    return result


def fastest_openvino_precision(create_backend, cpu_has_bf16, allowed: tuple[str, ...] = CANDIDATES) -> str:
    """The fastest precision on this CPU model among ``allowed`` (an exported file, int8 or not as exported, allows
    fp32 and bf16 only), from the cached timings; fp32 where none of them was timed."""
    record = precision_record(create_backend, cpu_has_bf16)
    if record["choice"] in allowed:
        return record["choice"]
    timings = {precision: ms for precision, ms in record.get("ms", {}).items() if precision in allowed}
    return min(timings, key=timings.get) if timings else "fp32"
