"""Two Ray nodes on one machine: `ray start --head` plus a worker node started with `ray start --address`, one CPU
each; `m2unet segment --engine ray --address` on them. Checks that work lands on both nodes and that every map
is byte-identical to plain `segment`'s; writes results/engine/two_nodes.md.

    .venv/bin/python benchmarks/ray_two_nodes.py [--images 20]

Both `ray start` commands run with --block in the foreground of this script and are stopped by their process id
(SIGINT, as Ctrl+C would) at the end, so nothing else on the machine is touched.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("M2UNET_DATASETS", ROOT.parent / "shared" / "datasets"))
RAY = Path(sys.executable).with_name("ray")
OPTIONS = ["--model", "drive", "--backend", "openvino", "--precision", "fp32"]
RAY_ENV = {
    "RAY_worker_niceness": "0",  # the nodes' workers at normal priority, as `segment --engine ray` sets for its local Ray
    "RAY_AUTH_MODE": "token",  # `ray start` turns on token authentication (Ray 2.60, installed here); clients then need this to send the token
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def alive_nodes(address: str, env: dict) -> int:
    code = f"import ray; ray.init(address={address!r}, logging_level='ERROR'); print(sum(n['Alive'] for n in ray.nodes()))"
    try:
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:  # no head answering yet
        return 0
    return int(result.stdout.strip().splitlines()[-1]) if result.returncode == 0 and result.stdout.strip() else 0


def wait_for_nodes(address: str, env: dict, count: int, starter: subprocess.Popen, timeout: float = 240) -> bool:
    """Whether ``count`` nodes are alive before ``timeout``, or False as soon as ``starter`` (`ray start`) exits."""
    deadline = time.time() + timeout
    while time.time() < deadline and starter.poll() is None:
        if alive_nodes(address, env) >= count:
            return True
        time.sleep(2)
    return False


def start_node(command: list[str], address: str, env: dict, count: int, attempts: int = 3) -> subprocess.Popen:
    """Run `ray start ... --block` until the cluster has ``count`` nodes: on a loaded machine a node can miss Ray's
    30 s start-up limit ("The current node timed out during startup"), so it is tried again."""
    for attempt in range(1, attempts + 1):
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if wait_for_nodes(address, env, count, process):
            return process
        stop(process)
        print(f"ray start, attempt {attempt}: the node did not come up", file=sys.stderr)
    raise SystemExit(f"the Ray cluster at {address} did not reach {count} node(s) in {attempts} attempts")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def segment(inputs: Path, out: Path, env: dict, extra: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "m2unet", "segment", str(inputs), "-o", str(out), *OPTIONS, *extra],
                            env=env, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise SystemExit(f"segment failed:\n{result.stdout}\n{result.stderr[-3000:]}")
    return time.perf_counter() - started, result.stdout.strip().splitlines()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--out", default=str(ROOT / "results" / "engine" / "two_nodes.md"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ray-two-nodes-"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]), **RAY_ENV)
    inputs = work / "in"
    inputs.mkdir()
    for index, source in enumerate(sorted((DATASETS / "DRIVE").glob("*/images/*.tif"))[: args.images]):
        os.symlink(source, inputs / f"{index:03d}.tif")
    port = free_port()
    # A loopback address other than 127.0.0.1: Ray turns 127.0.0.1 / localhost into the machine's own address, which
    # a sandbox may not let a process connect to ("Failed to connect to Ray cluster at …"); 127.0.0.2 it keeps.
    ip = "127.0.0.2"
    address = f"{ip}:{port}"
    common = ["--num-cpus", "1", "--block", "--disable-usage-stats"]
    head = start_node([str(RAY), "start", "--head", "--node-ip-address", ip, "--port", str(port), "--include-dashboard", "false",
                       *common], address, env, 1)
    worker = None
    try:
        worker = start_node([str(RAY), "start", "--address", address, "--node-ip-address", ip, *common], address, env, 2)
        ray_seconds, ray_summary = segment(inputs, work / "ray", env, ["--engine", "ray", "--address", address])
    finally:
        for process in (worker, head):
            if process is not None:
                stop(process)
    plain_seconds, plain_summary = segment(inputs, work / "plain", env, [])
    report = compare(work, args.images, ray_seconds, ray_summary, plain_seconds, plain_summary)
    shutil.rmtree(work, ignore_errors=True)
    from m2unet.data import write_atomic

    write_atomic(args.out, lambda tmp: Path(tmp).write_text(report))
    print(report)
    return 0 if "**identical**" in report else 1


def compare(work: Path, images: int, ray_seconds: float, ray_summary: str, plain_seconds: float, plain_summary: str) -> str:
    import pyarrow.parquet as pq

    rows = pq.read_table(work / "ray" / "results.parquet").to_pylist()
    per_node = Counter(row["node"] for row in rows if row["status"] == "ok")
    maps = sorted(p.relative_to(work / "plain") for p in (work / "plain").rglob("*.png"))
    differing = [str(p) for p in maps if (work / "ray" / p).read_bytes() != (work / "plain" / p).read_bytes()]
    missing = [str(p) for p in maps if not (work / "ray" / p).is_file()]
    verdict = "**identical**" if maps and not differing and not missing else f"DIFFERENT: {differing[:5]} missing: {missing[:5]}"
    lines = ["# Two Ray nodes on one machine", "",
             "Command: `.venv/bin/python benchmarks/ray_two_nodes.py` (`ray start --head --num-cpus 1` and `ray start --address HEAD "
             "--num-cpus 1`, then `m2unet segment --engine ray --address HEAD`; plain `segment` for comparison; " + " ".join(OPTIONS) + ").", "",
             f"- {images} DRIVE test/training photographs; {len(rows)} rows in results.parquet, status ok: {sum(per_node.values())}.",
             "- Images whose model ran on each node (the `node` column, host/Ray node id): "
             + ", ".join(f"`{node}` {count}" for node, count in sorted(per_node.items())) + f" ({len(per_node)} nodes).",
             f"- Maps ({len(maps)} PNG files) compared byte for byte with plain `segment`'s: {verdict}.",
             f"- Wall clock: Ray on the two 1-CPU nodes {ray_seconds:.1f} s (cluster already up), plain `segment` {plain_seconds:.1f} s.",
             "", f"Ray: `{ray_summary}`", "", f"Plain: `{plain_summary}`", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
