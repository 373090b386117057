"""Plain ``m2unet segment`` vs ``--engine ray`` on many photographs: images/s and peak memory of the whole command.

Inputs: N DRIVE-size photographs (565×584; the 40 DRIVE images, linked under new names as often as needed) and
M HRF-size ones (3504×2336, the first HRF images), segmented with the matching shipped model. Each configuration
runs the real command in a subprocess; memory is the peak, sampled every 0.2 s, of the proportional set size
(PSS: shared pages split between the processes sharing them) summed over the command's process tree, which for
``--engine ray`` includes the local Ray it starts (GCS, raylet, workers, object store).

    .venv/bin/python benchmarks/bench_engine.py                         # 200 DRIVE + 30 HRF, every configuration
    .venv/bin/python benchmarks/bench_engine.py --drive 40 --hrf 0      # quicker; keeps the HRF rows of bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("M2UNET_DATASETS", ROOT.parent / "shared" / "datasets"))
# name → extra command-line options
CONFIGS = {
    "plain, 1 model × all cores (segment before this change)": ["--workers", "1"],
    "plain, throughput mode: 2 models × 1 core": ["--workers", "2"],
    "--engine ray (local Ray, 1 actor per CPU)": ["--engine", "ray"],
}


def cpu_name() -> str:
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("Model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def make_inputs(folder: Path, drive: int, hrf: int) -> dict[str, Path]:
    sources = {"drive": sorted((DATASETS / "DRIVE").glob("*/images/*.tif")), "hrf": sorted((DATASETS / "HRF" / "images").glob("*.jpg"))}
    made = {}
    for name, count in (("drive", drive), ("hrf", hrf)):
        if not count:
            continue
        target = folder / name
        target.mkdir(parents=True)
        for index in range(count):
            source = sources[name][index % len(sources[name])]
            os.symlink(source, target / f"{index:04d}{source.suffix}")
        made[name] = target
    return made


def peak_pss(process: psutil.Popen) -> int:
    """Poll until ``process`` exits; the largest PSS sum over it and its descendants."""
    peak = 0
    while process.poll() is None:
        total = 0
        try:
            tree = [process] + process.children(recursive=True)
        except psutil.NoSuchProcess:
            break
        for member in tree:
            try:
                total += member.memory_full_info().pss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        peak = max(peak, total)
        time.sleep(0.2)
    return peak


def run(inputs: Path, out: Path, model: str, extra: list[str]) -> dict:
    command = [sys.executable, "-m", "m2unet", "segment", str(inputs), "-o", str(out), "--model", model, *extra]
    started = time.perf_counter()
    process = psutil.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak = peak_pss(process)
    seconds = time.perf_counter() - started
    output = process.stdout.read()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{output}")
    count = len(list(inputs.iterdir()))
    backend = re.search(r"with (\S+),", output)
    return {"images": count, "seconds": round(seconds, 1), "images_per_s": round(count / seconds, 3), "peak_pss_mb": round(peak / 2**20),
            "backend": backend.group(1) if backend else "?", "summary": output.strip().splitlines()[-1]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drive", type=int, default=200)
    parser.add_argument("--hrf", type=int, default=30)
    parser.add_argument("--out", default=str(ROOT / "results" / "engine"))
    parser.add_argument("--report-only", action="store_true", help="only rewrite bench.md and sizing.md from bench.json")
    args = parser.parse_args()
    if args.report_only:
        bench = json.loads((Path(args.out) / "bench.json").read_text())
        write_report(Path(args.out), bench["rows"], bench["cpu"])
        write_sizing(Path(args.out), bench)
        return 0
    work = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    rows = []
    try:
        inputs = make_inputs(work / "in", args.drive, args.hrf)
        for dataset, folder in inputs.items():
            for name, extra in CONFIGS.items():
                load = os.getloadavg()[0]
                result = run(folder, work / "out" / f"{dataset}-{len(rows)}", dataset, extra)
                rows.append({"dataset": dataset, "config": name, "load_before": round(load, 1), **result})
                print(json.dumps(rows[-1]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_report(Path(args.out), merged(Path(args.out) / "bench.json", rows))
    write_sizing(Path(args.out), json.loads((Path(args.out) / "bench.json").read_text()))
    return 0


def merged(path: Path, rows: list[dict]) -> list[dict]:
    """This run's rows, after the earlier rows (bench.json) of the datasets this run did not measure."""
    done = {row["dataset"] for row in rows}
    earlier = json.loads(path.read_text())["rows"] if path.is_file() else []
    return [row for row in earlier if row["dataset"] not in done] + rows


def write_report(out: Path, rows: list[dict], cpu: str | None = None) -> None:
    from m2unet.data import write_atomic

    out.mkdir(parents=True, exist_ok=True)
    cpu = cpu or cpu_name()
    lines = ["# Plain `segment` vs `--engine ray`", "",
             f"CPU: {cpu}, {os.cpu_count()} cores visible. Command: `.venv/bin/python benchmarks/bench_engine.py --drive N --hrf M` "
             "(the DRIVE and HRF rows may come from separate runs: a run keeps the rows of the dataset it skips).",
             "Whole command, wall clock: start-up (Ray, model compile) included. Peak memory: PSS summed over the command's process tree.",
             "Load: the machine's 1-minute load average when the run began (other jobs shared these cores).", "",
             "| photographs | configuration | backend | images | seconds | images/s | peak memory (MB) | load |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        size = "DRIVE 565×584" if row["dataset"] == "drive" else "HRF 3504×2336"
        lines.append(f"| {size} | {row['config']} | {row['backend']} | {row['images']} | {row['seconds']} | {row['images_per_s']:.2f} | "
                     f"{row['peak_pss_mb']} | {row['load_before']} |")
    write_atomic(out / "bench.md", lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))
    write_atomic(out / "bench.json", lambda tmp: Path(tmp).write_text(json.dumps({"cpu": cpu, "cores": os.cpu_count(), "rows": rows}, indent=1)))


PHOTOGRAPHS = 170_000  # UK Biobank's fundus photographs
MEGAPIXELS = {"drive": 565 * 584 / 1e6, "hrf": 3504 * 2336 / 1e6, "ukb": 2048 * 1536 / 1e6}
CLUSTERS = ((1, 32), (10, 32), (100, 32))  # (nodes, cores per node)


def write_sizing(out: Path, bench: dict) -> None:
    """sizing.md: core-hours and wall hours for PHOTOGRAPHS photographs, from the measured core-seconds per image."""
    from m2unet.data import write_atomic

    cores = bench.get("cores", os.cpu_count())
    lines = [f"# Sizing: {PHOTOGRAPHS:,} photographs on CPU nodes", "",
             "From `results/engine/bench.json` (`.venv/bin/python benchmarks/bench_engine.py --report-only`): core-seconds per image =",
             f"cores ({cores}) × wall seconds of the whole command / images, on {bench['cpu']}, a machine shared with other jobs",
             "(load column of bench.md), so these are upper bounds. UK Biobank photographs (2048×1536) are scaled from the HRF",
             "cost per pixel. Wall hours assume the work spreads evenly over every core (one Ray actor per CPU), plus nothing",
             "for start-up (about 15 s per run).", "",
             "| photographs | measured with | core-s per image | core-hours | " + " | ".join(f"hours, {n} × {c} cores" for n, c in CLUSTERS) + " |",
             "|---|---|---:|---:|" + "---:|" * len(CLUSTERS)]
    best = {}
    for row in bench["rows"]:
        cost = cores * row["seconds"] / row["images"]
        key = (row["dataset"], "ray" if "ray" in row["config"] else "plain")
        best[key] = min(best.get(key, (cost, row["config"])), (cost, row["config"]))
    for (dataset, _engine), (cost, config) in sorted(best.items()):
        sizes = [(dataset, cost)] + ([("ukb", cost * MEGAPIXELS["ukb"] / MEGAPIXELS["hrf"])] if dataset == "hrf" else [])
        for size, per_image in sizes:
            label = {"drive": "DRIVE-size 565×584", "hrf": "HRF-size 3504×2336", "ukb": "UK Biobank 2048×1536 (scaled from HRF)"}[size]
            hours = PHOTOGRAPHS * per_image / 3600
            lines.append(f"| {label} | {config} | {per_image:.2f} | {hours:,.0f} | " + " | ".join(f"{hours / (n * c):,.2f}" for n, c in CLUSTERS) + " |")
    lines += ["", "GPU nodes: not measured here (no GPU in this session); see docs/engine.md for how to size them.", ""]
    write_atomic(out / "sizing.md", lambda tmp: Path(tmp).write_text("\n".join(lines)))


if __name__ == "__main__":
    sys.exit(main())
