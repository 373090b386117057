"""A bounded load test of `m2unet serve` on localhost: N requests, C at a time, DRIVE-size photographs.

Starts the real server (a child process on a free loopback port), sends one warm-up request per model, then
--requests POST /v1/segment calls with the DRIVE test photographs (565×584 TIFF, as they are) in turn, at most
--concurrency in flight, and records each latency and status; then stops the server with SIGTERM and reads its peak
RSS (VmHWM). Writes results/serve/load.md and load.json, with the CPU, the load average and the busiest other
processes (a training run may share the cores; the client runs on them too).

    .venv/bin/python benchmarks/bench_serve.py                                # 300 requests, 8 at a time
    .venv/bin/python benchmarks/bench_serve.py --requests 100 --backend onnxruntime --out /tmp/serve
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from tqdm import tqdm

from m2unet.inference.bench import machine_info

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def busy_processes(exclude: set[int]) -> list[str]:
    """Other processes using over half a core now (ps), e.g. a training run."""
    out = subprocess.run(["ps", "-eo", "pid,pcpu,args", "--sort=-pcpu"], capture_output=True, text=True).stdout.splitlines()[1:]
    found = []
    for line in out[:8]:
        pid, pcpu, args = line.split(None, 2)
        if int(pid) not in exclude and float(pcpu) > 50:
            found.append(f"{float(pcpu):.0f} % CPU: {args[:90]}")
    return found


def start_server(port: int, backend: str | None, workers: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "m2unet", "serve", "--port", str(port), "--workers", str(workers)]
    if backend:
        command += ["--backend", backend]
    env = dict(os.environ, PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    server = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
        if server.poll() is not None:
            raise SystemExit(f"server exited: {server.stderr.read()}")
    server.kill()
    raise SystemExit("server did not start within 60 s")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def load(base: str, photos: list[Path], requests: int, concurrency: int) -> list[dict]:
    gate = asyncio.Semaphore(concurrency)
    bar = tqdm(total=requests, desc="requests", unit="req")
    contents = [path.read_bytes() for path in photos]

    async def one(client: httpx.AsyncClient, index: int) -> dict:
        async with gate:
            started = time.perf_counter()
            try:
                answer = await client.post(f"{base}/v1/segment", files={"image": (photos[index % len(photos)].name, contents[index % len(photos)])})
                status, body = answer.status_code, answer.json()
            except (httpx.HTTPError, ValueError) as error:
                status, body = 0, {"error": type(error).__name__}
            bar.update()
            return {"status": status, "seconds": time.perf_counter() - started, "server_ms": body.get("timings_ms", {}).get("total"),
                    "stages_ms": body.get("timings_ms"), "error": body.get("error")}

    async with httpx.AsyncClient(timeout=300) as client:
        results = await asyncio.gather(*(one(client, index) for index in range(requests)))
    bar.close()
    return results


def summary(results: list[dict], wall: float) -> dict:
    seconds = np.array([r["seconds"] for r in results])
    server_ms = np.array([r["server_ms"] for r in results if r["server_ms"] is not None])
    errors = [r for r in results if r["status"] != 200]
    return {"requests": len(results), "errors": len(errors), "error_examples": sorted({str(r["error"]) for r in errors})[:5],
            "wall_s": round(wall, 2), "requests_per_s": round(len(results) / wall, 2),
            "latency_p50_ms": round(float(np.percentile(seconds, 50)) * 1000, 1), "latency_p95_ms": round(float(np.percentile(seconds, 95)) * 1000, 1),
            "latency_max_ms": round(float(seconds.max()) * 1000, 1),
            "server_work_p50_ms": round(float(np.percentile(server_ms, 50)), 1) if server_ms.size else None,
            "stages_p50_ms": {stage: round(float(np.median([r["stages_ms"][stage] for r in results if r["stages_ms"]])), 1)
                              for stage in ("decode", "fov", "model", "segment", "encode")} if server_ms.size else {}}


def write_report(out: Path, facts: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "load.json").write_text(json.dumps(facts, indent=1) + "\n")
    runs = facts["runs"]
    lines = [
        "# `m2unet serve` under load (localhost)", "",
        f"Command: `{facts['command']}`", "",
        f"POST /v1/segment with the {facts['photos']} DRIVE test photographs (565×584 TIFF) in turn; server `--workers {facts['workers']}`, "
        f"backend {facts['backend']}, model auto (→ drive). First {runs[0]['requests']} requests one at a time (the cost of one request), "
        f"then the load test: {runs[1]['requests']} requests, {facts['concurrency']} in flight at a time.", "",
        "| requests | in flight | errors | p50 latency | p95 latency | max latency | server work p50 | throughput |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        lines.append(f"| {run['requests']} | {run['in_flight']} | {run['errors']} | {run['latency_p50_ms']:.0f} ms | {run['latency_p95_ms']:.0f} ms | "
                     f"{run['latency_max_ms']:.0f} ms | {run['server_work_p50_ms']:.0f} ms | {run['requests_per_s']} requests/s |")
    lines += [
        "", f"Server peak RSS (VmHWM, one model loaded): **{facts['peak_rss_mb']:.0f} MB**; exit status after SIGTERM: {facts['server_exit_code_after_sigterm']}.", "",
        "Latency is the client's: from sending the upload to the whole JSON answer (both maps as base64 PNG), including the time a "
        "request waits for a worker; *server work* is the request's own decode + FOV + model + segment + encode time (`timings_ms.total`). "
        "Under load, server work by stage (median): " + ", ".join(f"{stage} {ms:.0f} ms" for stage, ms in runs[1]["stages_p50_ms"].items()) + ".", "",
        f"Machine: {facts['cpu']}, {facts['cores']} cores; load average before the run {facts['loadavg_before']}, after {facts['loadavg_after']}. "
        "The load-test client runs on the same cores.",
    ]
    if facts["busy_before"]:
        lines += ["", "Other processes busy on these cores when the run started (so the numbers are pessimistic):", ""]
        lines += [f"- {line}" for line in facts["busy_before"]]
    examples = sorted({example for run in runs for example in run["error_examples"]})
    if examples:
        lines += ["", "Errors: " + "; ".join(examples)]
    (out / "load.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--sequential", type=int, default=40, help="requests sent one at a time first")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backend", default=None, help="server --backend (default: the server's own default)")
    parser.add_argument("--photos", type=Path, default=REPO.parent / "shared" / "datasets" / "DRIVE" / "test" / "images")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "serve")
    args = parser.parse_args()
    photos = sorted(args.photos.glob("*.tif"))
    if not photos:
        raise SystemExit(f"no .tif photographs in {args.photos}")
    port = free_port()
    server = start_server(port, args.backend, args.workers)
    base = f"http://127.0.0.1:{port}"
    try:
        backend = httpx.get(f"{base}/v1/models").json()["backend"]
        busy = busy_processes({os.getpid(), server.pid})
        loadavg_before = " / ".join(f"{x:.2f}" for x in os.getloadavg())
        asyncio.run(load(base, photos[:1], 2, 1))  # warm-up: the model is loaded and compiled on first use
        runs = []
        for requests, in_flight in ((args.sequential, 1), (args.requests, args.concurrency)):
            started = time.perf_counter()
            results = asyncio.run(load(base, photos, requests, in_flight))
            runs.append(dict(summary(results, time.perf_counter() - started), in_flight=in_flight))
        peak = peak_rss_mb(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        exit_code = server.wait(timeout=60)
    command = "python benchmarks/bench_serve.py" + "".join(f" --{k} {v}" for k, v in (("requests", args.requests), ("concurrency", args.concurrency), ("sequential", args.sequential),
                                                                                          ("workers", args.workers), ("backend", args.backend)) if v is not None)
    facts = {"command": command, "concurrency": args.concurrency, "workers": args.workers, "backend": backend, "photos": len(photos),
             "runs": runs, "peak_rss_mb": peak, "server_exit_code_after_sigterm": exit_code, "cpu": machine_info().get("cpu", "unknown CPU"),
             "cores": os.cpu_count(), "loadavg_before": loadavg_before, "loadavg_after": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
             "busy_before": busy}
    write_report(args.out, facts)
    print((args.out / "load.md").read_text())
    return 0 if all(run["errors"] == 0 for run in runs) and exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
