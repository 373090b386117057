"""Segmenting a collection: inputs → one result record per input. Plain ``m2unet segment`` and ``--engine ray``
(:mod:`.ray_engine`) both run these stages, so both write the same maps and the same ``OUT/results.parquet``.

Stages: :func:`load_stage` (decode, FOV mask) → :func:`model_stage` (the model: a cached
:class:`~m2unet.inference.pipeline.Segmenter`) → :func:`write_stage` (threshold, write the maps atomically,
measure, the record). :class:`ResultLog` keeps the records: each finished input is appended (and fsync-ed) to
``OUT/.m2unet-journal.jsonl`` as soon as its maps are on disk, so after a crash or ``kill -9`` the same command
skips what is done; at the end the table is written to ``OUT/results.parquet`` (atomically).

Output names (no input's outputs ever replace another's): a file given as an argument writes ``OUT/NAME_*.png``;
a file found in a folder keeps its sub-folder below that folder (``OUT/sub/NAME_*.png``); a manifest row keeps its
path below the manifest's folder. Inputs whose names still clash (compared case-insensitively) keep their suffix
(``scan.bmp`` and ``scan.webp`` → ``OUT/scan.bmp_*.png``, ``OUT/scan.webp_*.png``); inputs that still clash
mirror their folders below the deepest folder they share (``left/001.jpg`` and ``right/001.jpg`` →
``OUT/left/001_*.png``, ``OUT/right/001_*.png``). The same file given twice is segmented once. Across runs into one
folder: an input whose names an earlier run gave to another input's maps, still there, fails with a one-line
reason instead of replacing them; the earlier runs' rows stay in the table, before this run's.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..data.scale import SEARCH_FLIPS_VERSION, SEARCH_VERSION
from ..errors import M2UNetError
from .tiling import MAX_TILE

RESULTS_FILE = "results.parquet"
JOURNAL_FILE = ".m2unet-journal.jsonl"
OUTPUT_COLUMNS = ("probability", "vessels", "overlay")  # the record's columns naming an input's maps (relative to OUT)
MANIFEST_SUFFIXES = (".csv", ".parquet")
PREFETCH = 2  # images decoded ahead of the one being segmented
LARGE_PIXELS = 12_000_000  # above this (e.g. 7000×5000) images are decoded and written one at a time
# A temporary left by write_atomic when a process was killed: ".NAME_KIND.RANDOM.png".
STALE_TEMPORARY = re.compile(r"^\..+_(probability|vessels|overlay|segments|junctions)\.[A-Za-z0-9_]{8}\.(png|csv)$")
MEASUREMENTS_FILE = "measurements.csv"
STATUSES = ("ok", "failed", "skipped")
# Plain segment runs one model stream per this many cores (each with that many threads); results/engine/ has the
# measurement behind it.
STREAM_CORES = 2
# ...as many as fit in the memory this process may use: a `--model auto` stream compiles up to SHAPE_CACHE shapes of
# up to 2× the training diameter, and each added stream took 1.4-2.5 GB more, DRIVE's small photographs as much as HRF's
# (results/bench/stream_memory.md); a job given 8 cores and 8 GB would otherwise start 4 and be killed.
STREAM_MEMORY_MB = 2600


@dataclass(frozen=True)
class Job:
    """One input: the file, its output stem (relative to OUT, '/'-separated) and manifest columns."""

    path: str
    stem: str
    pixel_size_um: float | None = None
    extra: tuple = ()  # (column, value) pairs from a manifest, carried into the record


@dataclass(frozen=True)
class Options:
    """Everything that decides an input's outputs (``backend`` is a full backend name, e.g. ``openvino-bf16``)."""

    out: str
    backend: str
    model: str = "auto"
    weights: str | None = None
    calibration: str = "auto"
    threshold: float | None = None
    overlay: bool = False
    use_fov: bool = True
    mask: str | None = None
    max_tile: int = MAX_TILE
    tta: bool = False
    rescale: bool = True  # run at the model's FOV diameter and contrast floor (m2unet.data.scale, .contrast)
    search_diameter: bool = False  # ... the diameter searched per photograph (m2unet.data.scale.DiameterSearch)
    measure: bool = False
    threads: int | None = field(default=None, compare=False)  # model threads (None: the runtime's default)

    def fingerprint(self) -> str:
        """Short hash of the options that change outputs: a rerun resumes only with the same ones."""
        settings = {k: v for k, v in asdict(self).items() if k not in ("out", "threads")}
        if not settings["search_diameter"]:
            del settings["search_diameter"]  # added later: folders written without it resume as before
        else:
            settings["search_diameter"] = SEARCH_VERSION  # a folder of an earlier search does not resume
            if settings["tta"]:
                settings["tta"] = SEARCH_FLIPS_VERSION  # nor one flipped after a search as an earlier version flipped
        if settings["weights"]:
            settings["weights"] = os.path.abspath(settings["weights"])
        return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]

    def outputs(self, stem: str) -> dict[str, str]:
        """Output files of one input, relative to OUT (with --measure its segments and junctions CSV files too)."""
        kinds = tuple(kind for kind in OUTPUT_COLUMNS if kind != "overlay" or self.overlay)
        files = {kind: f"{stem}_{kind}.png" for kind in kinds}
        if self.measure:
            files.update(segments=f"{stem}_segments.csv", junctions=f"{stem}_junctions.csv")
        return files


# ---------------------------------------------------------------------------------------------- inputs


def header_pixels(path: str | Path) -> int:
    """Width × height from the file header without decoding (0 when unknown)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.width * image.height
    except Exception:
        return 0


def _folder_files(folder: Path, skipped: list[Path] | None) -> Iterator[Path]:
    """Image files under ``folder`` (recursive, sorted), broken symbolic links included (reported when read)."""
    from ..data.io import is_image_file

    for file in sorted(p for p in folder.rglob("*") if p.is_file() or (p.is_symlink() and not p.exists())):
        if is_image_file(file):
            yield file
        elif skipped is not None and not file.name.startswith("."):
            skipped.append(file)


def read_manifest(path: Path) -> list[tuple[Path, str, float | None, tuple]]:
    """(file, default stem, pixel_size_um, other columns) per row of a CSV / Parquet manifest with a ``path`` column.
    Relative paths are relative to the manifest's folder."""
    try:
        if path.suffix.lower() == ".csv":
            from pyarrow import csv

            table = csv.read_csv(path)
        else:
            import pyarrow.parquet as pq

            table = pq.read_table(path)
    except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
        raise M2UNetError(f"{path}: cannot read the manifest ({str(error).splitlines()[0][:120]})") from None
    if "path" not in table.column_names:
        raise M2UNetError(f"{path}: the manifest has no `path` column (columns: {', '.join(table.column_names) or 'none'})")
    rows = []
    for number, row in enumerate(table.to_pylist(), start=2 if path.suffix.lower() == ".csv" else 1):
        if not row["path"]:
            raise M2UNetError(f"{path}: row {number} has an empty `path`")
        file = path.parent / str(row["path"])
        size = row.get("pixel_size_um")
        try:
            size = None if size is None else float(size)
        except (TypeError, ValueError):
            raise M2UNetError(f"{path}: row {number}: pixel_size_um {size!r} is not a number") from None
        stem = Path(os.path.relpath(file, path.parent)).with_suffix("").as_posix()
        stem = stem if not stem.startswith("..") else file.stem
        extra = tuple((key, value) for key, value in row.items() if key not in ("path", "pixel_size_um"))
        rows.append((file, stem, size, extra))
    return rows


def collect_inputs(paths: Iterable[str], skipped: list[Path] | None = None) -> list[Job]:
    """One :class:`Job` per input, in order: files as given, the image files under folders (recursively, sorted),
    the rows of CSV / Parquet manifests. Output stems follow the rule in the module docstring.

    Files in folders without an image suffix (other than hidden ones) are appended to ``skipped``.
    """
    entries: list[tuple[Path, str, float | None, tuple]] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            entries += [(file, file.relative_to(path).with_suffix("").as_posix(), None, ()) for file in _folder_files(path, skipped)]
        elif path.suffix.lower() in MANIFEST_SUFFIXES and path.is_file():
            entries += read_manifest(path)
        else:
            entries.append((path, path.stem, None, ()))  # missing or unreadable files are reported per file later
    seen: set[str] = set()
    unique = []
    for entry in entries:
        key = os.path.abspath(entry[0])
        if key not in seen:
            seen.add(key)
            unique.append(entry)
    stems = unique_stems([(Path(os.path.abspath(e[0])), e[1]) for e in unique])
    return [Job(str(e[0]), stem, e[2], e[3]) for e, stem in zip(unique, stems, strict=True)]


def unique_stems(entries: list[tuple[Path, str]]) -> list[str]:
    """Output stems that never clash: ``entries`` are (absolute file, default stem); see the module docstring."""
    stems = [stem for _, stem in entries]
    suffixed, mirrored = [False] * len(stems), [False] * len(stems)
    for _ in range(4):
        groups: dict[str, list[int]] = {}
        for index, stem in enumerate(stems):
            groups.setdefault(stem.casefold(), []).append(index)
        clashes = [members for members in groups.values() if len(members) > 1]
        if not clashes:
            return stems
        for members in clashes:
            suffixes = {entries[i][0].suffix.casefold() for i in members}
            if len(suffixes) == len(members) and not all(suffixed[i] for i in members):
                for i in members:
                    suffixed[i] = True
            elif not all(mirrored[i] for i in members):
                for i in members:
                    mirrored[i] = True
            else:
                suffixed = [True if i in members else flag for i, flag in enumerate(suffixed)]
            for i in members:
                stems[i] = _stem(entries[i], members, entries, suffixed[i], mirrored[i])
    first, second = next(members for members in groups.values() if len(members) > 1)[:2]
    raise M2UNetError(f"{entries[first][0]} and {entries[second][0]} would write the same outputs ({stems[first]}_*.png); "
                      "rename one or segment them into different folders")


def _stem(entry, members, entries, suffixed: bool, mirrored: bool) -> str:
    file, stem = entry
    if mirrored:
        common = os.path.commonpath([str(entries[i][0].parent) for i in members])
        stem = Path(os.path.relpath(file, common)).with_suffix("").as_posix()
    return stem + file.suffix if suffixed else stem


# ---------------------------------------------------------------------------------------------- stages


def find_mask(mask_option: str | None, image_path: Path) -> Path | None:
    """The FOV mask file for an image: ``--mask FILE`` itself, or in ``--mask DIR`` a file named like the image
    (``NAME.*`` or ``NAME_mask.*``)."""
    if mask_option is None:
        return None
    where = Path(mask_option)
    if where.is_file():
        return where
    if where.is_dir():
        from ..data.io import is_image_file

        for candidate in sorted(where.iterdir()):
            if is_image_file(candidate) and candidate.stem in (image_path.stem, f"{image_path.stem}_mask"):
                return candidate
        raise M2UNetError(f"{image_path}: no mask named {image_path.stem}.* or {image_path.stem}_mask.* in {where}")
    raise M2UNetError(f"--mask {where}: no such file or folder")


def load_input(path: Path, mask_option: str | None, use_fov: bool):
    """Decode one image and its FOV mask (given, estimated, or none)."""
    from ..data.fov import estimate_fov_mask
    from ..data.io import read_binary, read_image

    image = read_image(path)
    mask_file = find_mask(mask_option, path)
    if mask_file is not None:
        mask = read_binary(mask_file, image.shape[:2])
    else:
        mask = estimate_fov_mask(image) if use_fov else None
    return image, mask


def load_stage(job: Job, options: Options):
    """(image, mask, seconds) of one input; raises :class:`M2UNetError` for a bad file."""
    started = time.perf_counter()
    image, mask = load_input(Path(job.path), options.mask, options.use_fov)
    return image, mask, time.perf_counter() - started


@dataclass
class ModelOutput:
    """What the model stage hands to the write stage for one input."""

    probability: np.ndarray
    model: str  # weights file name
    threshold: float
    seconds: float
    run_fov_diameter: int | None  # px the photograph's FOV ran at (m2unet.data.scale); None: as it is
    contrast_gain: float = 1.0  # how much it was stretched to the model's contrast floor (m2unet.data.contrast)
    review: str | None = None  # why to look at the map before using it (m2unet.inference.review); None: nothing unusual


def model_stage(image: np.ndarray, mask: np.ndarray | None, options: Options, progress=None, cache: dict | None = None) -> ModelOutput:
    """The model chosen for this image, run: loaded once per process (or once per ``cache`` dict: each stream of
    :func:`run_streams` keeps its own)."""
    from ..weights import calibration_for, resolve_weights, threshold_of
    from .pipeline import Segmenter, get_segmenter

    started = time.perf_counter()
    path = resolve_weights(options.model, options.weights)
    settings = dict(calibration=calibration_for(path, options.calibration), max_tile=options.max_tile, progress=progress, tta=options.tta,
                    rescale=options.rescale, search_diameter=options.search_diameter, **({"threads": options.threads} if options.threads else {}))
    if cache is None:
        segmenter = get_segmenter(path, options.backend, **settings)
    else:
        segmenter = cache.get(path) or cache.setdefault(path, Segmenter(path, options.backend, **settings))
    cut = options.threshold if options.threshold is not None else threshold_of(segmenter.metadata)
    run = segmenter.run(image, mask)
    review = review_of(image, mask, run.probability, path)
    return ModelOutput(run.probability, path.name, float(cut), time.perf_counter() - started, run.run_fov_diameter, run.contrast_gain, review)


def write_outputs(out: Path, outputs: dict[str, str], image, probability, vessels, mask) -> None:
    from ..data.io import save_png

    save_png(out / outputs["probability"], probability)
    save_png(out / outputs["vessels"], vessels)
    if "overlay" in outputs:
        from PIL import Image

        from ..data.io import write_atomic
        from .pipeline import overlay

        picture = Image.fromarray(overlay(image, vessels, mask))
        # A photograph compresses poorly; the fastest zlib level is 5–10× quicker for ~10 % more bytes.
        write_atomic(out / outputs["overlay"], lambda tmp: picture.save(tmp, format="PNG", compress_level=1))


def write_stage(job: Job, options: Options, image, mask, result: ModelOutput, seconds: float, measurer=None) -> dict:
    """Threshold, write the maps atomically and, with ``options.measure``, measure (``measurer``: the stage of
    :mod:`m2unet.measure.stage`): the input's record (status ok, or failed with the reason). ``seconds``: decoding's."""
    started = time.perf_counter()
    probability, model, threshold = result.probability, result.model, result.threshold
    outputs = options.outputs(job.stem)
    out = Path(options.out)
    try:
        vessels = probability >= threshold
        write_outputs(out, outputs, image, probability, vessels, mask)
        measured = {}
        if options.measure:
            files = {kind: out / outputs[kind] for kind in ("segments", "junctions")}
            measured = measurer(vessels, mask, job.stem, job.pixel_size_um, files)
    except (M2UNetError, OSError, ValueError, MemoryError) as error:
        stage = "measuring" if isinstance(error, M2UNetError) and "measuring" in str(error) else "writing outputs"
        return record(job, options, "failed", f"{job.path}: {stage} failed: {str(error).splitlines()[0][:150]}", model=model)
    seconds += result.seconds + time.perf_counter() - started
    row = record(job, options, "ok", outputs=outputs, model=model, threshold=threshold, seconds=seconds, size=probability.shape[::-1],
                 run_fov_diameter=result.run_fov_diameter, contrast_gain=result.contrast_gain, review=result.review)
    row.update((key, value) for key, value in measured.items() if key not in row)
    return row


def review_of(image: np.ndarray, mask: np.ndarray | None, probability: np.ndarray, weights: Path) -> str | None:
    """Why this map should be looked at before it is used, or None (:mod:`.review`); without a FOV mask
    (``--no-fov-mask``) its measures still count inside the estimated FOV, not over the black border."""
    from ..data.fov import estimate_fov_mask
    from .review import limits_for, review_map

    if limits_for(weights) is None:
        return None  # not reviewed: no FOV to estimate
    return review_map(probability, weights, estimate_fov_mask(image) if mask is None else mask)


def failure_message(path: str, error: BaseException) -> str:
    """The one line ``segment`` prints for an input that failed (the same text lands in its record)."""
    if isinstance(error, M2UNetError):
        return str(error)
    detail = str(error).splitlines()[0][:150] if str(error) else "no detail"
    return f"{path}: {type(error).__name__}: {detail}"


# Errors an input can cause; anything else is a bug and keeps its traceback.
INPUT_ERRORS = (M2UNetError, MemoryError, RuntimeError, ValueError, OSError)


def record(job: Job, options: Options, status: str, error: str | None = None, *, outputs: dict | None = None, model: str | None = None,
           threshold: float | None = None, seconds: float | None = None, size=(None, None), run_fov_diameter: int | None = None,
           contrast_gain: float | None = None, review: str | None = None) -> dict:
    """One row of results.parquet (output paths are relative to OUT)."""
    outputs = outputs or {}
    row = {"path": job.path, "stem": job.stem, "status": status, "error": error,
           "probability": outputs.get("probability"), "vessels": outputs.get("vessels"), "overlay": outputs.get("overlay"),
           "model": model, "backend": options.backend, "threshold": threshold, "seconds": seconds,
           "width": None if size[0] is None else int(size[0]), "height": None if size[1] is None else int(size[1]), "run_fov_diameter": run_fov_diameter,
           "contrast_gain": None if contrast_gain is None else round(float(contrast_gain), 4), "review": review,
           "pixel_size_um": job.pixel_size_um, "settings": options.fingerprint(), "resumed": False, "node": None}
    # manifest cells as the journal will give them back (dates as text), so earlier and new rows agree in type
    row.update((key, json.loads(json.dumps(value, default=json_default))) for key, value in job.extra if key not in row)
    return row


# ---------------------------------------------------------------------------------------------- one process


def run_local(jobs: list[Job], options: Options, progress=None, measurer=None) -> Iterator[dict]:
    """Records of ``jobs`` (in order), segmented in this process: decoding and PNG writing in background threads
    overlap with the model. At most PREFETCH images are decoded ahead and one waits to be written; around an image
    over LARGE_PIXELS nothing runs ahead (one big image in memory at a time)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode") as reader, ThreadPoolExecutor(max_workers=1, thread_name_prefix="write") as writer:
        pending: dict = {}
        next_read = 0
        writing = None

        def read_ahead(last):
            nonlocal next_read
            while next_read <= min(last, len(jobs) - 1):
                pending[next_read] = reader.submit(load_stage, jobs[next_read], options)
                next_read += 1

        for index, job in enumerate(jobs):
            read_ahead(index)
            future = pending.pop(index)
            try:
                image, mask, seconds = future.result()
                large = image.shape[0] * image.shape[1] > LARGE_PIXELS
                if not large and index + 1 < len(jobs) and header_pixels(jobs[index + 1].path) <= LARGE_PIXELS:
                    read_ahead(index + PREFETCH)
                result = model_stage(image, mask, options, progress)
                if writing is not None:
                    yield writing.result()
                writing = writer.submit(write_stage, job, options, image, mask, result, seconds, measurer)
                del image, result, mask
                if large:
                    yield writing.result()
                    writing = None
            except INPUT_ERRORS as error:
                yield record(job, options, "failed", failure_message(job.path, error))
        if writing is not None:
            yield writing.result()


def process(job: Job, options: Options, cache: dict, progress=None, measurer=None) -> dict:
    """All stages of one input in the calling thread: its record."""
    try:
        image, mask, seconds = load_stage(job, options)
        result = model_stage(image, mask, options, progress, cache)
    except INPUT_ERRORS as error:
        return record(job, options, "failed", failure_message(job.path, error))
    return write_stage(job, options, image, mask, result, seconds, measurer)


def run_streams(jobs: list[Job], options: Options, streams: int, progress=None, measurer=None) -> Iterator[dict]:
    """Records of ``jobs`` (in order) from ``streams`` threads, each with its own compiled model of
    ``options.threads`` threads (OpenVINO and ONNX Runtime release the GIL): several images in flight, so the
    cores stay busy while one stream decodes or writes; results/engine/ measures when this pays."""
    import threading

    local = threading.local()

    def work(job: Job) -> dict:
        if not hasattr(local, "cache"):
            local.cache = {}
        return process(job, options, local.cache, progress, measurer)

    with ThreadPoolExecutor(max_workers=streams, thread_name_prefix="stream") as pool:
        window: list = []
        for job in jobs:
            window.append(pool.submit(work, job))
            if len(window) > streams:
                yield window.pop(0).result()
        for future in window:
            yield future.result()


# ---------------------------------------------------------------------------------------------- the table


class ResultLog:
    """The records of one output folder: earlier runs' (results.parquet and the journal of an interrupted run),
    and this run's, appended to the journal one by one and written to results.parquet by :meth:`finish`."""

    def __init__(self, out: str | os.PathLike, options: Options):
        self.out = Path(out)
        self.options = options
        self.previous = self._load()
        self.records: dict[str, dict] = {}
        self.rows: list[dict] = []  # the table's rows, once finish wrote it
        self._by_stem: dict[str, list[tuple[str, dict]]] | None = None  # earlier ok rows by stem_key (owner_of_outputs)
        self._journal = None

    def _load(self) -> dict[str, dict]:
        records: dict[str, dict] = {}
        table = self.out / RESULTS_FILE
        if table.is_file():
            import pyarrow.parquet as pq

            try:
                for row in pq.read_table(table).to_pylist():
                    records[os.path.abspath(row["path"])] = row
            except (OSError, ValueError) as error:
                raise M2UNetError(f"{table}: cannot read the results of the earlier run ({str(error).splitlines()[0][:100]}); "
                                  "move it away to start afresh") from None
        journal = self.out / JOURNAL_FILE
        if journal.is_file():
            for line in journal.read_text(errors="replace").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the last line of a killed run may be cut short
                records[os.path.abspath(row["path"])] = row
        return records

    def completed(self, job: Job) -> dict | None:
        """The earlier record of ``job`` when it can be kept: ok, same options, and every output file present."""
        key = os.path.abspath(job.path)
        row = self.previous.get(key) or self.previous.get(table_text(key))  # results.parquet holds table_text(path)
        if not row or row.get("status") != "ok" or row.get("settings") != self.options.fingerprint() or row.get("stem") not in (job.stem, table_text(job.stem)):
            return None
        files = self.options.outputs(job.stem).values()
        if not all((self.out / name).is_file() and (self.out / name).stat().st_size > 0 for name in files):
            return None
        return dict(row, resumed=True, path=job.path, stem=job.stem)  # the names as this run has them (see table_text)

    def owner_of_outputs(self, job: Job) -> str | None:
        """The other input whose maps, segmented into OUT by an earlier run, ``job``'s output names would replace (None:
        no such input). Names are compared case-insensitively, as :func:`unique_stems` compares them."""
        if self._by_stem is None:  # indexed once: a cohort's second batch checks each of its inputs against the first's
            self._by_stem = {}
            for path, row in self.previous.items():
                if row.get("status") == "ok":
                    self._by_stem.setdefault(stem_key(row.get("stem", "")), []).append((table_text(path), row))
        key = table_text(os.path.abspath(job.path))  # as the table holds it
        for path, row in self._by_stem.get(stem_key(job.stem), ()):
            files = [row.get(kind) for kind in OUTPUT_COLUMNS if row.get(kind)]
            if path != key and any((self.out / name).is_file() for name in files):
                return str(row["path"])
        return None

    def earlier_rows(self, rows: list[dict]) -> list[dict]:
        """The earlier runs' rows that this run's ``rows`` leave standing: those of other inputs, whose outputs stay in
        OUT (a second batch into the same folder adds to the table instead of replacing it), less any whose output
        names this run has written (their maps had been moved away, see :meth:`owner_of_outputs`)."""
        paths = {table_text(os.path.abspath(row["path"])) for row in rows}  # compared as the table holds them
        written = {stem_key(row["stem"]) for row in rows if row["status"] == "ok"}
        return [row for path, row in self.previous.items() if table_text(path) not in paths and stem_key(row.get("stem", "")) not in written]

    def remove_stale_temporaries(self) -> int:
        """Delete the temporaries of atomic writes that a killed run left behind; how many."""
        removed = 0
        if self.out.is_dir():
            for folder, _, names in os.walk(self.out):
                for name in names:
                    if STALE_TEMPORARY.match(name):
                        os.unlink(os.path.join(folder, name))
                        removed += 1
        return removed

    def add(self, row: dict) -> None:
        """Record one input (after its outputs are on disk): appended to the journal and flushed to the disk."""
        self.records[os.path.abspath(row["path"])] = row
        if row.get("resumed"):
            return
        if self._journal is None:
            self.out.mkdir(parents=True, exist_ok=True)
            path = self.out / JOURNAL_FILE
            self._journal = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in finish)
            if path.stat().st_size and not path.read_bytes().endswith(b"\n"):
                self._journal.write("\n")  # end the line a killed run left unfinished
        self._journal.write(json.dumps(row, default=json_default) + "\n")
        self._journal.flush()
        os.fsync(self._journal.fileno())

    def finish(self, jobs: list[Job], extra_rows: list[dict] = ()) -> Path | None:
        """Write OUT/results.parquet (one row per job, in input order, then ``extra_rows``) atomically; drop the journal.
        Without pyarrow (a small device) no table is written (None) and the journal stays: it holds every record."""
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            if self._journal is not None:
                self._journal.close()
                self._journal = None
            return None

        from ..data.io import write_atomic

        rows = [self.records[os.path.abspath(job.path)] for job in jobs if os.path.abspath(job.path) in self.records]
        rows += list(extra_rows)
        rows = self.earlier_rows(rows) + rows
        self.rows = rows
        columns: dict[str, None] = {}
        for row in rows:
            columns.update(dict.fromkeys(row))
        table = pa.Table.from_pylist(uniform_columns([{key: table_text(row.get(key)) for key in columns} for row in rows], columns))
        self.out.mkdir(parents=True, exist_ok=True)
        path = write_atomic(self.out / RESULTS_FILE, lambda tmp: pq.write_table(table, tmp))
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        (self.out / JOURNAL_FILE).unlink(missing_ok=True)
        return path


def stem_key(stem) -> str:
    """An output stem as names are compared across runs: as the table holds it, case-insensitively (:func:`unique_stems`)."""
    return table_text(str(stem or "")).casefold()


def uniform_columns(rows: list[dict], columns) -> list[dict]:
    """``rows`` with each column of mixed kinds of values (a manifest's ``subject`` given as numbers in one batch and as
    text in another) made text, so that one Parquet column holds them; numbers with numbers and empty cells stay."""
    for column in columns:
        kinds = {type(row[column]) for row in rows if row[column] is not None}
        if len(kinds) > 1 and not kinds <= {int, float}:
            for row in rows:
                if row[column] is not None:
                    row[column] = str(row[column])
    return rows


def table_text(value):
    """``value``, with a text that is not UTF-8 made so: a file name in another encoding (bytes Python keeps as
    surrogates, e.g. Latin-1 ``café.jpg``) is written with ``\\xe9`` escapes, as Parquet holds only UTF-8 text."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return value


def json_default(value):
    """JSON for what a record may hold besides plain values: numpy scalars, and manifest cells such as dates (as text)."""
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def skipped_rows(files: list[Path], options: Options) -> list[dict]:
    """Records for the non-image files found in folders (status skipped)."""
    return [record(Job(str(file), ""), options, "skipped", f"{file}: not an image file (suffix {file.suffix or 'none'})") for file in files]


def summary_line(records: list[dict], elapsed: float, out: Path) -> str:
    """The closing line of ``segment``: counts, speed, backend and models."""
    done = [r for r in records if r["status"] == "ok" and not r.get("resumed")]
    resumed = sum(1 for r in records if r.get("resumed"))
    total = sum(1 for r in records if r["status"] != "skipped")
    models: dict[str, int] = {}
    for row in done:
        models[row["model"]] = models.get(row["model"], 0) + 1
    skipped = sum(1 for r in records if r["status"] == "skipped")
    notes = (f"; {resumed} already done by an earlier run" if resumed else "") + (f"; {skipped} non-image file(s) skipped" if skipped else "")
    if not done and not resumed:
        return f"segmented 0/{total} image(s){notes}: nothing written"
    speed = f" in {elapsed:.1f} s ({len(done) / elapsed:.2f} images/s)" if done and elapsed > 0 else ""
    weights = ", ".join(f"{name} ×{count}" for name, count in models.items())
    flagged = sum(1 for r in done if r.get("review"))
    review = f"; {flagged} map(s) to look at before use (column review)" if flagged else ""
    return (f"segmented {len(done) + resumed}/{total} image(s){notes}{speed} with {records[0]['backend']}"
            + (f", weights {weights}" if weights else "") + f", into {out}/ (table: {out / RESULTS_FILE}){review}")
