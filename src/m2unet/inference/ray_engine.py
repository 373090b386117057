"""``m2unet segment --engine ray``: the stages of :mod:`.batch` on Ray Data.

Dataset of inputs (one row, one block per input) → ``map`` read tasks (:func:`batch.load_stage`: decode, FOV mask)
→ ``map`` on an actor pool, one model per actor (:func:`batch.model_stage`: OpenVINO / ONNX Runtime with one
thread per actor on CPU workers, PyTorch with ``num_gpus=1`` per actor for ``--device cuda``), which then
thresholds and writes the maps in the same actor (:func:`batch.write_stage`: atomic PNG writes, the record; a
separate write task per image cost more in scheduling and in moving the probability map than the write itself). The driver streams the records back and
appends each to the journal of :class:`batch.ResultLog`, so a kill of the driver, a worker or a node loses at most
the images in flight; the same command resumes. The maps are the ones plain ``segment`` writes, byte for byte,
for the same backend (the same code runs on every worker).

Without ``address`` a local Ray is started on this machine (all its CPUs, no dashboard); with one (``auto``,
``HOST:6379`` or ``ray://HOST:10001``) the job runs on that cluster, whose workers need m2unet installed and the
input and output paths mounted at the same places (docs/engine.md).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import asdict

import numpy as np

from .backend_spec import BackendSpec
from .batch import INPUT_ERRORS, Job, Options, failure_message, json_default, load_stage, model_stage, record, write_stage

# A node with C CPUs runs C model actors (one thread each: on the 2-core machine of results/engine/ faster than
# C/2 actors of two threads, or one of C) and, beside them, up to C read tasks: decoding is light next to the model.
ACTOR_CPUS = 0.75
# A local Ray node must come up within Ray's own 30 s limit; on a heavily loaded machine it can miss it once.
START_ATTEMPTS = 2
IO_TASK_CPUS = 0.25


def _job(row: dict) -> Job:
    return Job(row["path"], row["stem"], row["pixel_size_um"], tuple(tuple(pair) for pair in json.loads(row["extra"])))


def _read(row: dict, options: dict) -> dict:
    """Read task: decode one image and estimate its FOV (an unreadable file: the row carries the reason)."""
    job, settings = _job(row), Options(**options)
    out = dict(row, image=b"", shape=[0, 0], mask=b"", error="", seconds=0.0)
    try:
        image, mask, seconds = load_stage(job, settings)
    except INPUT_ERRORS as error:
        return dict(out, error=failure_message(job.path, error))
    return dict(out, image=image.tobytes(), shape=list(image.shape[:2]), mask=b"" if mask is None else np.packbits(mask).tobytes(), seconds=seconds)


def _image(row: dict) -> np.ndarray | None:
    h, w = row["shape"]
    return np.frombuffer(row["image"], dtype=np.float32).reshape(h, w, 3) if row["image"] else None


def _mask(row: dict) -> np.ndarray | None:
    h, w = row["shape"]
    return np.unpackbits(np.frombuffer(row["mask"], dtype=np.uint8), count=h * w).reshape(h, w).astype(bool) if row["mask"] else None


class ModelActor:
    """One model per actor (per weights file with ``--model auto``), loaded on first use and kept; the actor also
    thresholds and writes the maps of each image it segments, so the probability map never crosses the object store."""

    def __init__(self, options: dict, measurer=None):
        import socket

        import ray

        self.options = Options(**options)
        self.measurer = measurer
        self.node = f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:8]}"

    def __call__(self, row: dict) -> dict:
        """Model, threshold, write: the record (as JSON: one column, whatever the measurements)."""
        job = _job(row)
        if row["error"]:
            return {"record": json.dumps(record(job, self.options, "failed", row["error"]))}
        image, mask = _image(row), _mask(row)
        try:
            probability, model, threshold, seconds = model_stage(image, mask, self.options)
        except INPUT_ERRORS as error:
            return {"record": json.dumps(record(job, self.options, "failed", failure_message(job.path, error)))}
        result = write_stage(job, self.options, image, mask, probability, model, threshold, row["seconds"] + seconds, self.measurer)
        result["node"] = self.node  # where the model ran (Ray node), for the record
        return {"record": json.dumps(result, default=json_default)}


def connect(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join the Ray cluster at ``address``, or start a local one (no dashboard) when none is given."""
    import ray

    from ..errors import M2UNetError

    if ray.is_initialized():
        return
    quiet = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False, "configure_logging": True}
    for attempt in range(START_ATTEMPTS):
        try:
            if address:
                ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
            else:  # "local": a new Ray of its own, even when `ray start` left a cluster on this machine (ray.init() would join it)
                ray.init(address="local", num_cpus=num_cpus, **quiet)
            return
        except Exception as error:  # Ray raises a bare Exception on a start-up timeout, ConnectionError for a wrong address
            reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
            if address or attempt + 1 == START_ATTEMPTS:
                where = f"the Ray cluster at {address}" if address else "a local Ray"
                raise M2UNetError(f"--engine ray: could not start or join {where} ({reason}); rerun it (finished images are kept), "
                                  "or use --engine local") from None
            ray.shutdown()


def cluster_slots(gpu: bool) -> int:
    """Model actors that fit the cluster: one per GPU for GPU backends, else one per CPU."""
    import ray

    resources = ray.cluster_resources()
    if gpu and not resources.get("GPU"):
        from ..errors import M2UNetError

        raise M2UNetError("--device cuda --engine ray: the Ray cluster has no GPU (ray.cluster_resources() lists none)")
    return max(1, int(resources.get("GPU" if gpu else "CPU", 1)))


def run_ray(jobs: list[Job], options: Options, address: str | None = None, workers: int | None = None, measurer=None) -> Iterator[dict]:
    """Records of ``jobs`` (in the order they finish) segmented on Ray Data; see the module docstring."""
    import ray
    import ray.data

    connect(address)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # segment shows one tqdm bar for the whole run
    context.execution_options.preserve_order = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    gpu = BackendSpec.parse(options.backend).device == "cuda"
    slots = cluster_slots(gpu)  # for GPU backends also the check that the cluster has one
    actors = workers or slots
    settings = asdict(Options(**dict(asdict(options), threads=None if gpu else (options.threads or 1))))
    items = [{"path": job.path, "stem": job.stem, "pixel_size_um": job.pixel_size_um, "extra": json.dumps(list(job.extra), default=json_default)} for job in jobs]
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    dataset = dataset.map(_read, fn_kwargs={"options": settings}, num_cpus=IO_TASK_CPUS)
    dataset = dataset.map(ModelActor, fn_constructor_kwargs={"options": settings, "measurer": measurer}, compute=ray.data.ActorPoolStrategy(size=actors),
                          num_cpus=0 if gpu else ACTOR_CPUS, num_gpus=1 if gpu else 0)
    for row in dataset.iter_rows():
        yield json.loads(row["record"])
