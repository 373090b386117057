"""What this machine is, and what a process costs: the one CPU probe and the one peak-memory helper.

Every timing the project writes names its CPU (training metadata, benchmark tables, the OpenVINO precision cache),
and every memory figure is the process's peak resident set; both come from here.
"""

from __future__ import annotations

import platform
import resource
import sys
from functools import lru_cache
from pathlib import Path

# ISA extensions worth recording beside a timing: they decide which kernels (AVX-512, bf16 on AMX) a runtime uses.
REPORTED_ISA = ("avx2", "fma")
REPORTED_ISA_PREFIXES = ("avx512", "amx")


@lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({} where there is none: macOS, Windows)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                break  # the first processor's block ends here; the others repeat it
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_model() -> str:
    """The CPU model name (``model name`` of /proc/cpuinfo, else the platform's processor string)."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine() or "unknown-cpu"


def cpu_isa() -> list[str]:
    """The vector extensions of this CPU that matter for inference speed (sorted; [] where unknown)."""
    flags = set(_cpuinfo().get("flags", "").split())
    return sorted(f for f in flags if f.startswith(REPORTED_ISA_PREFIXES) or f in REPORTED_ISA)


def _proc_status_mb(field: str) -> float | None:
    """A memory field of /proc/self/status in MiB (Linux): VmRSS (now) or VmHWM (peak since exec); None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def rss_mb() -> float:
    """Resident memory of this process now (MiB; NaN where the platform does not say)."""
    value = _proc_status_mb("VmRSS")
    return float("nan") if value is None else value


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MiB).

    VmHWM where Linux has it, not ru_maxrss: Linux carries the parent's high-water mark in ru_maxrss across
    fork+exec, so a worker started by a big parent would report the parent's peak.
    """
    peak = _proc_status_mb("VmHWM")
    if peak is not None:
        return peak
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / (1024 * 1024) if sys.platform == "darwin" else maxrss / 1024  # bytes on macOS, KiB on Linux
