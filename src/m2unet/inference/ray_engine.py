"""``m2unet segment --engine ray``: plain ``segment``'s pipeline on Ray Data.

Dataset of input paths (a few bytes per row) → ``map_batches`` on an actor pool, one model per actor: each batch
of paths runs :func:`batch.run_local` inside the actor (decode and FOV in one background thread, the model —
OpenVINO / ONNX Runtime on CPU workers, PyTorch with ``num_gpus=1`` for ``--device cuda`` — and the atomic PNG
writes in another thread, overlapped as in plain ``segment``), and only the records come back. Images and maps
never cross Ray's object store: an earlier design decoded in read tasks and shipped the float image to the model
actors, and on 2 cores the copies and per-row scheduling made it 0.4–0.6× plain ``segment``
(results/engine/bench.md). The driver appends each batch's records to the journal of :class:`batch.ResultLog`,
so a kill of the driver, a worker or a node loses at most the batches in flight; the same command resumes. The
maps are the ones plain ``segment`` writes, byte for byte, for the same backend (the same code runs on every
worker).

Without ``address`` a local Ray is started on this machine (all its CPUs, no dashboard); with one (``auto``,
``HOST:6379`` or ``ray://HOST:10001``) the job runs on that cluster, whose workers need m2unet installed and the
input and output paths mounted at the same places (docs/engine.md).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import asdict

from .backend_spec import BackendSpec
from .batch import STREAM_CORES, STREAM_MEMORY_MB, Job, Options, json_default, run_local

# A local Ray node must come up within Ray's own 30 s limit; on a heavily loaded machine it can miss it once.
START_ATTEMPTS = 2
# Images per batch at most: a batch's records reach the journal together, and a kill loses the batches in flight.
BATCH_IMAGES = 16
BATCHES_PER_ACTOR = 4  # at least this many batches per actor (when there are images enough), so actors share the work evenly


def _item(job: Job) -> dict:
    """A dataset row for ``job``: names as bytes, as a file name need not be UTF-8 text (Arrow strings must be)."""
    return {"path": os.fsencode(job.path), "stem": os.fsencode(job.stem), "pixel_size_um": job.pixel_size_um,
            "extra": json.dumps(list(job.extra), default=json_default)}


def _job(row: dict) -> Job:
    return Job(os.fsdecode(row["path"]), os.fsdecode(row["stem"]), row["pixel_size_um"], tuple(tuple(pair) for pair in json.loads(row["extra"])))


class ModelActor:
    """One model per actor (per weights file with ``--model auto``), loaded on first use and kept; each batch of
    paths is decoded, segmented and written here, as plain ``segment`` does (:func:`batch.run_local`)."""

    def __init__(self, options: dict, measurer=None):
        import socket

        import ray

        self.options = Options(**options)
        self.measurer = measurer
        self.node = f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:8]}"

    def __call__(self, batch):
        """Records of a batch of inputs (a pyarrow table of paths in; records out, as JSON: one column, whatever
        the measurements)."""
        import pyarrow as pa

        records = []
        for row in run_local([_job(item) for item in batch.to_pylist()], self.options, None, self.measurer):
            if row["status"] == "ok":
                row["node"] = self.node  # where the model ran (Ray node), for the record
            records.append(json.dumps(row, default=json_default))
        return pa.table({"record": pa.array(records, pa.string())})


def connect(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join the Ray cluster at ``address``, or start a local one (no dashboard) when none is given."""
    import ray

    from ..errors import M2UNetError

    if ray.is_initialized():
        return
    # Ray starts its workers at nice 15; the local Ray's actors do this command's work, so they run at plain
    # segment's priority (at 15, on a machine shared with other jobs, they got a fraction of the cores).
    quiet = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False, "configure_logging": True}
    for attempt in range(START_ATTEMPTS):
        try:
            if address:
                ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
            else:  # "local": a new Ray of its own, even when `ray start` left a cluster on this machine (ray.init() would join it)
                ray.init(address="local", num_cpus=num_cpus, _system_config={"worker_niceness": 0}, **quiet)
            return
        except Exception as error:  # Ray raises a bare Exception on a start-up timeout, ConnectionError for a wrong address
            reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
            if address or attempt + 1 == START_ATTEMPTS:
                where = f"the Ray cluster at {address}" if address else "a local Ray"
                # `ray start` (Ray 2.60) turns on token authentication; a client that does not send the token is refused
                hint = "; a cluster started with `ray start` needs RAY_AUTH_MODE=token here" if address and not os.environ.get("RAY_AUTH_MODE") else ""
                raise M2UNetError(f"--engine ray: could not start or join {where} ({reason}{hint}); rerun it (finished images are kept), "
                                  "or use --engine local") from None
            ray.shutdown()


def actor_layout(node_cpus: list[float], gpus: float, workers: int | None = None, node_memory_mb: list[float] | None = None) -> tuple[int, int]:
    """(model actors, CPUs per actor) for a cluster whose nodes have ``node_cpus`` CPUs (and ``gpus`` GPUs in all).

    GPU backends: one actor per GPU (its reads and writes on the CPUs of its node), or ``workers`` actors sharing
    the GPUs (:func:`gpus_per_actor`). CPU backends: as plain
    ``segment`` runs one model stream per STREAM_CORES cores, an actor holds STREAM_CORES CPUs (fewer on smaller
    nodes, so it fits on every node) and runs its model with as many threads, and a node holds no more actors than
    fit STREAM_MEMORY_MB each in its ``node_memory_mb`` (Ray's memory resource; unknown: no cap); ``workers`` actors
    share the CPUs."""
    if gpus:
        return workers or max(1, int(gpus)), 0
    memory = node_memory_mb or [0.0] * len(node_cpus)
    nodes = [(int(c), m) for c, m in zip(node_cpus, memory, strict=True) if c >= 1] or [(1, 0.0)]
    if workers:
        return workers, max(1, min(min(c for c, _ in nodes), sum(c for c, _ in nodes) // workers))
    per_actor = max(1, min(STREAM_CORES, min(c for c, _ in nodes)))
    return max(1, sum(actors_on_node(c, m, per_actor) for c, m in nodes)), per_actor


def actors_on_node(cpus: int, memory_mb: float, per_actor: int) -> int:
    """CPU actors a node holds: ``per_actor`` CPUs and STREAM_MEMORY_MB each (``memory_mb`` 0: unknown, no cap)."""
    return cpus // per_actor if not memory_mb else min(cpus // per_actor, int(memory_mb // STREAM_MEMORY_MB))


def gpus_per_actor(gpus: float, actors: int) -> float:
    """The GPU share each of ``actors`` model actors asks Ray for: a whole one, or a part when there are more actors."""
    return min(1.0, gpus / actors) if gpus else 0.0


def cluster_layout(gpu: bool, workers: int | None) -> tuple[int, int, float, int | None]:
    """:func:`actor_layout` of the connected cluster (actors, CPUs, GPU share and memory in bytes each actor asks
    Ray for); for GPU backends also the check that it has a GPU."""
    import ray

    nodes = [node for node in ray.nodes() if node.get("Alive")]
    gpus = sum(node["Resources"].get("GPU", 0) for node in nodes)
    if gpu and not gpus:
        from ..errors import M2UNetError

        raise M2UNetError("--device cuda --engine ray: the Ray cluster has no GPU (ray.nodes() lists none)")
    memory = [node["Resources"].get("memory", 0) / 2**20 for node in nodes]
    cpus_of_nodes = [node["Resources"].get("CPU", 0) for node in nodes]
    actors, cpus = actor_layout(cpus_of_nodes, gpus if gpu else 0, workers, memory)
    # Ray then places each actor where its memory is free too: only when every CPU node reports its memory and one has
    # room (an actor counted on a node that cannot give the memory would wait forever)
    sizes = [m for c, m in zip(cpus_of_nodes, memory, strict=True) if c >= 1]
    fits = not gpu and not workers and all(sizes) and any(m >= STREAM_MEMORY_MB for m in sizes)
    return actors, cpus, gpus_per_actor(gpus if gpu else 0, actors), STREAM_MEMORY_MB * 2**20 if fits else None


def batch_size(images: int, actors: int) -> int:
    """Images per batch: BATCH_IMAGES at most, and small enough for BATCHES_PER_ACTOR batches per actor."""
    return max(1, min(BATCH_IMAGES, math.ceil(images / (actors * BATCHES_PER_ACTOR))))


def run_ray(jobs: list[Job], options: Options, address: str | None = None, workers: int | None = None, measurer=None) -> Iterator[dict]:
    """Records of ``jobs`` (a batch at a time, in the order batches finish) segmented on Ray Data; see the module docstring."""
    import ray.data

    connect(address)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # segment shows one tqdm bar for the whole run
    context.execution_options.preserve_order = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    gpu = BackendSpec.parse(options.backend).device == "cuda"
    actors, cpus, gpus, memory = cluster_layout(gpu, workers)
    settings = asdict(Options(**dict(asdict(options), threads=None if gpu else (options.threads or cpus))))
    size = batch_size(len(jobs), actors)
    items = [_item(job) for job in jobs]
    dataset = ray.data.from_items(items, override_num_blocks=math.ceil(len(items) / size))
    dataset = dataset.map_batches(ModelActor, fn_constructor_kwargs={"options": settings, "measurer": measurer}, batch_size=size, batch_format="pyarrow",
                                  compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=cpus, num_gpus=gpus, memory=memory, zero_copy_batch=True)
    for row in dataset.iter_rows():
        yield json.loads(row["record"])
