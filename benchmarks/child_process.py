"""What the benchmark scripts share: time one command in a child process, and write a result table (Markdown + JSON)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from m2unet.data import write_atomic


def measure_command(command: list[str]) -> dict:
    """Run ``command``; its wall time, its own CPU seconds and peak RSS (``wait4``), exit status, the load average
    before and after, and the last line of its stdout (m2unet's summary line)."""
    load_before = os.getloadavg()
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    stdout = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)  # this child's own CPU time and peak RSS
    return {"exit_status": status, "wall_s": time.perf_counter() - start, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024, "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
            "summary": stdout.strip().splitlines()[-1:]}


def write_table(out: Path, stem: str, lines: list[str], rows: list[dict]) -> None:
    """``out/stem.md`` (the Markdown ``lines``) and ``out/stem.json`` (the raw ``rows``), atomically; print the table."""
    write_atomic(out / f"{stem}.md", lambda tmp: Path(tmp).write_text("\n".join(lines)))
    write_atomic(out / f"{stem}.json", lambda tmp: Path(tmp).write_text(json.dumps(rows, indent=1) + "\n"))
    print("\n".join(lines))
