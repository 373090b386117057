"""What the benchmark scripts share: time one command in a child process, and write a result table (Markdown + JSON)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from m2unet.data import load_dataset, write_atomic


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


def photographs(dataset: str, count: int, folder: Path) -> Path:
    """The first ``count`` test photographs of ``dataset`` copied into ``folder/dataset``."""
    target = folder / dataset
    target.mkdir(parents=True)
    for item in load_dataset(dataset, "test").items[:count]:
        shutil.copy(item.image, target / Path(item.image).name)
    return target


def folder_runs(datasets: list[str], images: int, settings: list, command: Callable[[Path, Path, object], list[str]], key: str) -> list[dict]:
    """Per dataset, its first ``images`` test photographs in a folder of their own, and per setting one measured child
    process (:func:`measure_command`) of ``command(folder, out, setting)``; the rows, the setting under ``key``."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in datasets:
            folder = photographs(dataset, images, Path(tmp))
            for setting in settings:
                out = Path(tmp) / f"out-{dataset}-{setting}"
                row = {"dataset": dataset, "images": images, key: setting, **measure_command(command(folder, out, setting))}
                print(row, flush=True)
                rows.append(row)
    return rows


def folder_arguments(description: str, setting: str, default: str, help_text: str) -> argparse.Namespace:
    """The command line of a :func:`folder_runs` benchmark: --images, --datasets, --out and its own ``setting`` flag."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument(f"--{setting}", default=default, help=help_text)
    parser.add_argument("--datasets", default="hrf,drive")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results" / "bench")
    return parser.parse_args()
