"""Plain ``m2unet segment`` vs ``--engine ray`` on many photographs: images/s and peak memory of the whole command.

Inputs: N DRIVE-size photographs (565×584; the 40 DRIVE images, linked under new names as often as needed) and
M HRF-size ones (3504×2336, the first HRF images), segmented with the matching shipped model. Each configuration
runs the real command in a subprocess; memory is the peak, sampled every 0.2 s, of the proportional set size
(PSS: shared pages split between the processes sharing them) summed over the command's process tree, which for
``--engine ray`` includes the local Ray it starts (GCS, raylet, workers, object store).

    .venv/bin/python benchmarks/bench_engine.py                         # 1, 50 and 200 DRIVE + 30 HRF, every configuration
    .venv/bin/python benchmarks/bench_engine.py --drive 40 --hrf 0      # quicker; keeps the other rows of bench.json

A run of 1 image gives the start-up of each configuration (Python, Ray, actors, model compile: the whole command
less one image's work). Rows of earlier runs are kept unless this run measures the same (dataset, configuration,
images); the rows of the first Ray design (read tasks shipping decoded images to model actors, one row per block)
were measured at commit 0486650 with this script of that commit.
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
    "plain, 1 model × all cores (the default on 2 cores)": ["--workers", "1"],
    "plain, throughput mode: 2 models × 1 core": ["--workers", "2"],
    "--engine ray: 1 actor × 2 cores (the default on 2 cores)": ["--engine", "ray"],
    "--engine ray: 2 actors × 1 core": ["--engine", "ray", "--workers", "2"],
}


def cpu_name() -> str:
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("Model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def make_inputs(folder: Path, dataset: str, count: int) -> Path:
    """``count`` links to the dataset's photographs under new names, repeating them as needed."""
    sources = sorted((DATASETS / "DRIVE").glob("*/images/*.tif")) if dataset == "drive" else sorted((DATASETS / "HRF" / "images").glob("*.jpg"))
    folder.mkdir(parents=True)
    for index in range(count):
        source = sources[index % len(sources)]
        os.symlink(source, folder / f"{index:04d}{source.suffix}")
    return folder


def watch_tree(process: psutil.Popen, visit, interval: float) -> None:
    """Until ``process`` exits, call ``visit(members)`` every ``interval`` seconds with it and its descendants."""
    while process.poll() is None:
        try:
            members = [process] + process.children(recursive=True)
        except psutil.NoSuchProcess:
            break
        visit(members)
        time.sleep(interval)


def peak_pss(process: psutil.Popen) -> int:
    """Poll until ``process`` exits; the largest PSS sum over it and its descendants."""
    peak = 0

    def visit(members):
        nonlocal peak
        total = 0
        for member in members:
            try:
                total += member.memory_full_info().pss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        peak = max(peak, total)

    watch_tree(process, visit, 0.2)
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
    parser.add_argument("--drive", default="1,50,200", help="DRIVE-size photographs per run, comma-separated (0: none)")
    parser.add_argument("--hrf", default="30", help="HRF-size photographs per run, comma-separated (0: none)")
    parser.add_argument("--configs", default=",".join(str(i) for i in range(len(CONFIGS))), help="which CONFIGS to run (indices)")
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
        configs = [list(CONFIGS.items())[int(i)] for i in args.configs.split(",")]
        for dataset, counts in (("drive", args.drive), ("hrf", args.hrf)):
            for count in (int(n) for n in counts.split(",") if int(n)):
                folder = make_inputs(work / f"in-{dataset}-{count}", dataset, count)
                for name, extra in configs:
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
    """The earlier rows (bench.json) this run did not measure again, and this run's, ordered by dataset and size."""
    def key(row):
        return row["dataset"], row["config"], row["images"]

    done = {key(row) for row in rows}
    earlier = json.loads(path.read_text())["rows"] if path.is_file() else []
    kept = [row for row in earlier if key(row) not in done] + rows
    return sorted(kept, key=lambda row: (row["dataset"] != "drive", row["dataset"], row["images"]))


PLAIN = next(iter(CONFIGS))  # the reference: plain segment as it runs by default


def ratio(row: dict, rows: list[dict]) -> str:
    """images/s of ``row`` over plain segment's default on the same photographs (empty when that was not run)."""
    plain = [r for r in rows if r["config"] == PLAIN and r["dataset"] == row["dataset"] and r["images"] == row["images"]]
    return f"{row['images_per_s'] / plain[0]['images_per_s']:.2f}×" if plain else ""


def start_up(rows: list[dict]) -> list[str]:
    """Start-up per configuration: the whole command on one photograph, less the plain default's per-image time."""
    ones = {row["config"]: row["seconds"] for row in rows if row["dataset"] == "drive" and row["images"] == 1}
    if PLAIN not in ones:
        return []
    lines = ["", "Start-up (the whole command on one DRIVE photograph; plain segment's default includes Python, imports, "
             "model compile and one image): " + "; ".join(f"{config}: {seconds} s" for config, seconds in ones.items()) + "."]
    steady = [(row["config"], row) for row in rows if row["dataset"] == "drive" and row["images"] > 1 and row["config"] in ones]
    for config, row in sorted(steady, key=lambda item: (item[0], item[1]["images"])):
        per_image = (row["seconds"] - ones[config]) / (row["images"] - 1)
        lines.append(f"- {config}, {row['images']} images: {1000 * per_image:.0f} ms per further image (wall seconds less start-up, "
                     "per image)")
    return lines


def write_report(out: Path, rows: list[dict], cpu: str | None = None) -> None:
    from m2unet.data import write_atomic

    out.mkdir(parents=True, exist_ok=True)
    cpu = cpu or cpu_name()
    lines = ["# Plain `segment` vs `--engine ray`", "",
             f"CPU: {cpu}, {os.cpu_count()} cores visible. Command: `.venv/bin/python benchmarks/bench_engine.py --drive N,… "
             "--hrf M --configs …` (rows of separate runs are merged in bench.json; measured with the project's background training "
             "run paused). Whole command, wall clock: start-up (Python, Ray, actors, model compile) included. "
             "× plain: images/s over plain segment's default on the same photographs. Peak memory: PSS summed over the command's "
             "process tree (Ray's own processes included).",
             "Load: the machine's 1-minute load average when the run began (it decays slowly after the training is paused, and other "
             "jobs on this machine were not paused).", "",
             "| photographs | configuration | backend | images | seconds | images/s | × plain | peak memory (MB) | load |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        size = "DRIVE 565×584" if row["dataset"] == "drive" else "HRF 3504×2336"
        lines.append(f"| {size} | {row['config']} | {row['backend']} | {row['images']} | {row['seconds']} | {row['images_per_s']:.2f} | "
                     f"{ratio(row, rows)} | {row['peak_pss_mb']} | {row['load_before']} |")
    lines += start_up(rows)
    write_atomic(out / "bench.md", lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))
    write_atomic(out / "bench.json", lambda tmp: Path(tmp).write_text(json.dumps({"cpu": cpu, "cores": os.cpu_count(), "rows": rows}, indent=1)))


PHOTOGRAPHS = 170_000  # UK Biobank's fundus photographs
MEGAPIXELS = {"drive": 565 * 584 / 1e6, "hrf": 3504 * 2336 / 1e6, "ukb": 2048 * 1536 / 1e6}
CLUSTERS = ((1, 32), (10, 32), (100, 32))  # (nodes, cores per node)


def duration(hours: float) -> str:
    return f"{hours:,.2f}" if hours >= 0.1 else f"{hours * 60:.1f} min"


def write_sizing(out: Path, bench: dict) -> None:
    """sizing.md: core-hours and wall hours for PHOTOGRAPHS photographs, from the measured core-seconds per image."""
    from m2unet.data import write_atomic

    cores = bench.get("cores", os.cpu_count())
    lines = [f"# Sizing: {PHOTOGRAPHS:,} photographs on CPU nodes", "",
             "From `results/engine/bench.json` (`.venv/bin/python benchmarks/bench_engine.py --report-only`): core-seconds per image =",
             f"cores ({cores}) × wall seconds of the whole command / images (the cheapest run of each engine, start-up included), on",
             f"{bench['cpu']}, with the project's training paused but other jobs not (load column of bench.md), so these are",
             "upper bounds. UK Biobank photographs (2048×1536) are scaled from the HRF cost per pixel. Wall hours assume the work",
             "spreads evenly over every core (Ray: one actor per 2 cores of every node), plus a start-up of a minute or less per run",
             "(bench.md: about 12 s for a local Ray on 2 cores).", "",
             "| photographs | measured with | core-s per image | core-hours | " + " | ".join(f"hours, {n} × {c} cores" for n, c in CLUSTERS) + " |",
             "|---|---|---:|---:|" + "---:|" * len(CLUSTERS)]
    best = {}
    for row in (row for row in bench["rows"] if "first design" not in row["config"]):
        cost = cores * row["seconds"] / row["images"]
        key = (row["dataset"], "ray" if "ray" in row["config"] else "plain")
        best[key] = min(best.get(key, (cost, row["config"])), (cost, row["config"]))
    for (dataset, _engine), (cost, config) in sorted(best.items()):
        sizes = [(dataset, cost)] + ([("ukb", cost * MEGAPIXELS["ukb"] / MEGAPIXELS["hrf"])] if dataset == "hrf" else [])
        for size, per_image in sizes:
            label = {"drive": "DRIVE-size 565×584", "hrf": "HRF-size 3504×2336", "ukb": "UK Biobank 2048×1536 (scaled from HRF)"}[size]
            hours = PHOTOGRAPHS * per_image / 3600
            lines.append(f"| {label} | {config} | {per_image:.2f} | {hours:,.0f} | " + " | ".join(duration(hours / (n * c)) for n, c in CLUSTERS) + " |")
    lines += ["", "GPU nodes: not measured here (no GPU in this session); see docs/engine.md for how to size them.", ""]
    write_atomic(out / "sizing.md", lambda tmp: Path(tmp).write_text("\n".join(lines)))


if __name__ == "__main__":
    sys.exit(main())
