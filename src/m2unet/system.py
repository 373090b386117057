"""What this machine is, and what a process costs: the one CPU probe and the one peak-memory helper.

Every timing the project writes names its CPU (training metadata, benchmark tables, the OpenVINO precision cache),
and every memory figure is the process's peak resident set; both come from here. So do the cores and the memory this
process may use (a batch scheduler's job gets some of a node's, which the node's totals do not show).
"""

from __future__ import annotations

import os
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


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity (a batch scheduler's cpuset, taskset), not the machine's."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity call outside Linux
        return os.cpu_count() or 1


def usable_memory_mb(proc: Path = Path("/proc"), cgroup: Path = Path("/sys/fs/cgroup")) -> float | None:
    """MiB this process may still take: the machine's available memory, or less where its control group (a batch
    scheduler's job, a container) has a lower limit left; None where neither is known."""
    bounds = []
    try:
        fields = dict(line.split(":", 1) for line in (proc / "meminfo").read_text().splitlines() if ":" in line)
        bounds.append(int(fields["MemAvailable"].split()[0]) / 1024)
    except (OSError, KeyError, ValueError):
        pass
    left = cgroup_memory_left_mb(proc, cgroup)
    if left is not None:
        bounds.append(left)
    return min(bounds) if bounds else None


def cgroup_memory_left_mb(proc: Path, cgroup: Path) -> float | None:
    """The memory limit of this process's control group less its use, MiB (cgroup v2, else v1); None without a limit."""
    try:
        entries = [line.split(":", 2) for line in (proc / "self" / "cgroup").read_text().splitlines()]
    except OSError:
        return None
    for hierarchy, controllers, path in entries:
        if hierarchy == "0" and controllers == "":  # v2: memory.max and memory.current in the group's folder
            files = (cgroup / path.lstrip("/") / "memory.max", cgroup / path.lstrip("/") / "memory.current")
        elif "memory" in controllers.split(","):
            files = (cgroup / "memory" / path.lstrip("/") / "memory.limit_in_bytes", cgroup / "memory" / path.lstrip("/") / "memory.usage_in_bytes")
        else:
            continue
        try:
            limit, used = (file.read_text().strip() for file in files)
        except OSError:
            continue
        if limit.isdigit() and int(limit) < 2**60:  # "max" (v2) or a huge number (v1): no limit
            return max(0, int(limit) - int(used)) / 2**20
    return None
