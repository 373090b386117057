"""``segment --engine ray``: a small local Ray (2 CPUs, no dashboard) in a subprocess; the same maps as plain
``segment``; one bad file does not stop the job; ``kill -9`` part-way, rerun, and every input ends with one row and
complete outputs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from m2unet.cli import main
from m2unet.inference.batch import JOURNAL_FILE, RESULTS_FILE

pytest.importorskip("ray")
SRC = Path(__file__).resolve().parents[1] / "src"
BACKEND = ["--model", "drive", "--backend", "openvino", "--precision", "fp32"]


def _segment_command(inputs: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "m2unet", "segment", str(inputs), "-o", str(out), "--engine", "ray", *BACKEND]


def _environment() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))


@pytest.fixture(scope="module")
def collection(tmp_path_factory, datasets_root):
    """15 photographs (DRIVE test images at 2/3 size, two with clashing names, one whose name is not UTF-8), a corrupt
    file and a text file."""
    folder = tmp_path_factory.mktemp("collection")
    files = sorted((datasets_root / "DRIVE/test/images").glob("*.tif"))[:12]
    for index, file in enumerate(files):
        Image.open(file).convert("RGB").resize((376, 389)).save(folder / f"eye{index:02d}.{'png' if index % 2 else 'jpg'}", quality=92)
    Image.open(files[0]).convert("RGB").resize((376, 389)).save(folder / "eye00.png")  # clashes with eye00.jpg
    Image.open(files[1]).convert("RGB").resize((376, 389)).save(folder / "eye01.webp")  # clashes with eye01.png
    try:  # Latin-1 "café.png": a name in another encoding than UTF-8 (Linux file systems keep any bytes)
        Image.open(files[2]).convert("RGB").resize((376, 389)).save(os.fsdecode(os.fsencode(folder) + b"/caf\xe9.png"))
    except OSError:
        pytest.skip("this file system does not take a file name that is not UTF-8")
    (folder / "broken.jpg").write_bytes((folder / "eye00.jpg").read_bytes()[:2000])
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def plain(collection, tmp_path_factory, export_cache):
    out = tmp_path_factory.mktemp("plain")
    result = CliRunner().invoke(main, ["segment", str(collection), "-o", str(out), *BACKEND])
    assert result.exit_code == 1 and "broken.jpg: image file is truncated" in result.output, result.output
    return out


def _maps(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.png"))}


def test_ray_engine_killed_and_resumed_writes_what_plain_segment_writes(collection, plain, tmp_path, export_cache):
    out = tmp_path / "ray"
    env = _environment()
    process = subprocess.Popen(_segment_command(collection, out), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    journal = out / JOURNAL_FILE
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if journal.is_file() and journal.read_text().count("\n") >= 3:
            break
        time.sleep(0.1)
    if process.poll() is not None:
        output = process.stdout.read()
        if "could not start or join a local Ray" in output:  # Ray's own 30 s start-up limit, missed on an overloaded machine
            pytest.skip(f"Ray could not start here: {output.strip().splitlines()[-1]}")
        raise AssertionError(f"the run ended before it could be killed:\n{output}")
    os.kill(process.pid, signal.SIGKILL)  # kill -9 of the driver, part-way
    process.wait()
    assert journal.is_file(), "no image finished within 240 s of starting the Ray run"
    done_before = journal.read_text().count('"status": "ok"')
    assert not (out / RESULTS_FILE).exists() and 0 < done_before < 15

    rerun = subprocess.run(_segment_command(collection, out), env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 1 and "Traceback" not in rerun.stderr, rerun.stderr
    assert "broken.jpg: image file is truncated" in rerun.stderr and "already done by an earlier run" in rerun.stdout, rerun.stdout
    rows = pq.read_table(out / RESULTS_FILE).to_pylist()
    images = [row for row in rows if row["status"] != "skipped"]
    assert len(images) == 16 and len({row["path"] for row in rows}) == len(rows)  # one row per input
    assert sorted(row["status"] for row in images) == ["failed"] + ["ok"] * 15
    assert str(collection / "caf\\xe9.png") in {row["path"] for row in rows}  # the table holds UTF-8 text only
    assert sum(bool(row["resumed"]) for row in images) == done_before and all(row["node"] for row in images if row["status"] == "ok" and not row["resumed"])
    assert [row["path"] for row in rows if row["status"] == "skipped"] == [str(collection / "notes.txt")]
    assert not journal.exists() and not [p for p in out.rglob(".*") if p.is_file()]  # no temporaries left
    ray_maps, plain_maps = _maps(out), _maps(plain)
    assert len(plain_maps) == 30 and "eye00.png_vessels.png" in plain_maps and "eye00.jpg_vessels.png" in plain_maps
    assert ray_maps.keys() == plain_maps.keys()
    differing = [name for name in plain_maps if ray_maps[name] != plain_maps[name]]
    assert not differing, differing
    assert np.asarray(Image.open(out / "eye00.png_vessels.png")).any()


def test_actor_layout_follows_plain_segments_streams_and_fits_every_node():
    from m2unet.inference.ray_engine import actor_layout, batch_size, gpus_per_actor

    assert actor_layout([2.0], 0) == (1, 2)  # this machine: one actor with both cores, as plain segment runs one model
    assert actor_layout([1.0, 1.0], 0) == (2, 1)  # two 1-CPU nodes (benchmarks/ray_two_nodes.py): one actor on each
    assert actor_layout([0.0, 32.0, 32.0], 0) == (32, 2)  # a head that only schedules, two 32-core workers
    assert actor_layout([3.0], 0) == (1, 2) and actor_layout([2.0], 0, workers=2) == (2, 1)
    assert actor_layout([8.0, 8.0], 2, workers=None) == (2, 0)  # GPU backends: one actor per GPU, no CPU held
    assert gpus_per_actor(2, 2) == 1.0 and gpus_per_actor(2, 4) == 0.5 and gpus_per_actor(0, 3) == 0.0  # --workers 4 on 2 GPUs: two per GPU
    assert batch_size(200, 1) == 16 and batch_size(15, 1) == 4 and batch_size(3, 2) == 1


def test_a_node_holds_no_more_cpu_actors_than_fit_its_memory():
    from m2unet.inference.batch import STREAM_MEMORY_MB
    from m2unet.inference.ray_engine import actor_layout

    # two 32-core workers, one with room for 24 streams (CPUs cap it at 16), one for 3; the head's memory is not used
    assert actor_layout([0.0, 32.0, 32.0], 0, None, [1000.0, 24.5 * STREAM_MEMORY_MB, 3.5 * STREAM_MEMORY_MB]) == (19, 2)
    assert actor_layout([8.0], 0, None, [0.0]) == (4, 2)  # Ray reports no memory: no cap
    assert actor_layout([8.0], 0, None, [STREAM_MEMORY_MB / 2]) == (1, 2)  # none fits: still one
    assert actor_layout([8.0], 0, 6, [STREAM_MEMORY_MB]) == (6, 1)  # --workers is the user's choice
