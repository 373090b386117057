"""Segmenting a collection, start to end: list the inputs, keep what an earlier run finished, run the rest on an
engine (this process: :mod:`.batch`; Ray Data: :mod:`.ray_engine`), write the table. ``m2unet segment`` runs this."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path

from ..errors import M2UNetError
from .batch import (
    MEASUREMENTS_FILE,
    STREAM_CORES,
    STREAM_MEMORY_MB,
    Job,
    Options,
    ResultLog,
    collect_inputs,
    record,
    run_local,
    run_streams,
    skipped_rows,
)


def default_streams(cores: int | None = None, memory_mb: float | None = None, say=None) -> int:
    """Model streams of plain ``segment`` when not asked: one per STREAM_CORES of the ``cores`` this process may use,
    and no more than fit STREAM_MEMORY_MB each in ``memory_mb`` (the memory it may still take; unknown: no cap).
    ``say``: told in a line when memory, not cores, set the number."""
    from ..system import usable_cores, usable_memory_mb

    by_cores = max(1, (cores or usable_cores()) // STREAM_CORES)
    memory_mb = usable_memory_mb() if memory_mb is None else memory_mb
    if memory_mb is None or memory_mb >= by_cores * STREAM_MEMORY_MB:
        return by_cores
    streams = max(1, int(memory_mb // STREAM_MEMORY_MB))
    if say:
        say(f"segment: {streams} model stream(s), not {by_cores}: each takes up to {STREAM_MEMORY_MB / 1024:.1f} GB and "
            f"{memory_mb / 1024:.1f} GB is available (--workers sets them)")
    return streams


def local_stream(jobs: list[Job], options: Options, streams: int | None, progress=None, measurer=None) -> Iterator[dict]:
    """Plain segment's records: one model with every core (streams 1), or ``streams`` models sharing the cores."""
    from tqdm import tqdm

    from ..system import usable_cores

    streams = streams or default_streams(say=lambda line: tqdm.write(line, file=sys.stderr))
    if streams == 1:
        return run_local(jobs, options, progress, measurer)
    threads = options.threads or max(1, usable_cores() // streams)
    return run_streams(jobs, Options(**dict(asdict(options), threads=threads)), streams, progress, measurer)


def run_collection(inputs: Iterable[str], options: Options, engine: str = "local", address: str | None = None,
                   workers: int | None = None, measurer=None) -> tuple[list[dict], float]:
    """Segment every input into ``options.out`` with ``engine`` (``local``: this process; ``ray``: Ray Data),
    resuming an earlier run of the same command; the records of every input (and skipped file), and the seconds taken.
    ``workers``: model actors (ray) or model streams (local); ``measurer``: the stage of :mod:`m2unet.measure.stage`,
    needed with ``options.measure``. Progress (tqdm) and each failure go to stderr as they happen."""
    from tqdm import tqdm

    if options.measure and measurer is None:
        raise M2UNetError("--measure needs the measure stage (m2unet.measure.stage.STAGE)")
    skipped: list[Path] = []
    jobs = collect_inputs(inputs, skipped)
    for file in skipped:
        tqdm.write(f"skipped: {file}: not an image file (suffix {file.suffix or 'none'})", file=sys.stderr)
    if not jobs:
        raise M2UNetError("no image files found in the given inputs")
    log = ResultLog(options.out, options)
    log.remove_stale_temporaries()
    todo = []
    for job in jobs:
        earlier = log.completed(job)
        if earlier is not None:
            log.add(earlier)
        elif (owner := log.owner_of_outputs(job)) is not None:  # never write over another input's maps (a second batch with the same file names)
            log.add(record(job, options, "failed", f"{job.path}: {Path(options.out) / job.stem}_* hold the maps of {owner} from an "
                                                   "earlier run into this folder; give another --out, or move those files away"))
        else:
            todo.append(job)
    started = time.perf_counter()
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="segment", unit="image", disable=len(jobs) < 2, file=sys.stderr)
    if engine == "ray":
        from .ray_engine import run_ray

        stream = run_ray(todo, options, address=address, workers=workers, measurer=measurer) if todo else iter(())
    else:
        stream = local_stream(todo, options, workers, progress=tqdm.write, measurer=measurer)
    for row in stream:
        log.add(row)
        if row["status"] == "failed" and len(jobs) > 1:  # while the bar runs; the summary lists every failure again
            tqdm.write(f"failed: {row['error']}", file=sys.stderr)
        bar.update(1)
    bar.close()
    elapsed = time.perf_counter() - started
    extra = skipped_rows(skipped, options)
    if log.finish(jobs, extra) is None:
        tqdm.write(f"note: {Path(options.out) / 'results.parquet'} not written (pip install pyarrow); "
                   f"{Path(options.out) / '.m2unet-journal.jsonl'} holds the records", file=sys.stderr)
    records = [log.records[os.path.abspath(job.path)] for job in jobs]
    if options.measure:  # with the earlier runs' measured rows too, as results.parquet keeps them
        measurer.write_table(Path(options.out) / MEASUREMENTS_FILE, log.rows or records)
    return records + extra, elapsed
