"""What a process may use: its cores (affinity) and its memory (the machine's available, or its control group's)."""

from __future__ import annotations

import os

import pytest

from m2unet.inference.batch import STREAM_CORES, STREAM_MEMORY_MB
from m2unet.inference.collection import default_streams
from m2unet.system import usable_memory_mb

GB = 2**30


def fake_machine(tmp_path, available_kb: int, cgroup_line: str, files: dict[str, str]):
    """A /proc with meminfo and self/cgroup, and a /sys/fs/cgroup holding ``files`` (path → text)."""
    proc, cgroup = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "self").mkdir(parents=True)
    (proc / "meminfo").write_text(f"MemTotal:       64000000 kB\nMemFree:         1000000 kB\nMemAvailable:   {available_kb} kB\n")
    (proc / "self" / "cgroup").write_text(cgroup_line + "\n")
    for path, text in files.items():
        (cgroup / path).parent.mkdir(parents=True, exist_ok=True)
        (cgroup / path).write_text(text + "\n")
    return proc, cgroup


def test_memory_left_is_the_lower_of_the_machines_and_the_control_groups(tmp_path):
    # cgroup v2 (a container or a batch job): 8 GB limit, 3 GB used, on a machine with 40 GB available
    proc, cgroup = fake_machine(tmp_path / "v2", 40 * 2**20, "0::/job.slice/job_42", {"job.slice/job_42/memory.max": str(8 * GB),
                                                                                      "job.slice/job_42/memory.current": str(3 * GB)})
    assert usable_memory_mb(proc, cgroup) == pytest.approx(5 * 1024)
    # cgroup v1 memory controller; its limit above the machine's available memory
    proc, cgroup = fake_machine(tmp_path / "v1", 6 * 2**20, "4:memory:/slurm/uid_0/job_7\n0::/", {"memory/slurm/uid_0/job_7/memory.limit_in_bytes": str(16 * GB),
                                                                                                "memory/slurm/uid_0/job_7/memory.usage_in_bytes": str(GB)})
    assert usable_memory_mb(proc, cgroup) == pytest.approx(6 * 1024)
    # no limit ("max", or v1's huge number): the machine's available memory
    proc, cgroup = fake_machine(tmp_path / "none", 6 * 2**20, "0::/", {"memory.max": "max", "memory.current": str(GB)})
    assert usable_memory_mb(proc, cgroup) == pytest.approx(6 * 1024)
    assert usable_memory_mb(tmp_path / "nothing", tmp_path / "nothing") is None  # not Linux: unknown


def test_default_streams_fit_the_cores_and_the_memory():
    said = []
    assert default_streams(16, 64 * 1024, said.append) == 16 // STREAM_CORES and not said
    assert default_streams(16, 3.5 * STREAM_MEMORY_MB, said.append) == 3
    assert said and "3 model stream(s), not 8" in said[0] and "--workers" in said[0]
    assert default_streams(16, 100, said.append) == 1 and default_streams(1, 64 * 1024) == 1


def test_a_process_pinned_to_one_core_counts_one():
    """As under taskset or a batch scheduler's cpuset: the machine's core count is not what the process may use."""
    import subprocess
    import sys

    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this platform")
    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "from m2unet.system import usable_cores; print(usable_cores(), os.cpu_count())")
    pinned, machine = map(int, subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())
    assert pinned == 1 and machine >= 1
    memory = usable_memory_mb()
    assert memory is None or memory > 0
