"""The work behind each request, run in the server's worker threads: decode an upload, segment it, encode the maps.

Everything here is synchronous and CPU-bound; :mod:`m2unet.serve.app` runs it in a bounded thread pool so the
event loop stays free. Decoding goes through :mod:`m2unet.data.io` (the same one-line reasons as ``m2unet
segment``), the model through :mod:`m2unet.inference.pipeline` (one compiled model per model and backend).
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import io
import math
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputFileError, M2UNetError
from ..weights import PRETRAINED_NAMES

TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, both byte orders
SERVED_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # a --weights model's name, as a request names it
WEIGHTS_SUFFIXES = (".safetensors", ".pth", ".onnx", ".xml")  # what `m2unet segment --weights` runs
SUFFIX_OF_FORMAT = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "GIF": ".gif", "BMP": ".bmp", "WEBP": ".webp", "PPM": ".ppm", "TIFF": ".tif"}


class RequestError(M2UNetError):
    """A request the server refuses: an HTTP status and one line that says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def display_name(filename: str | None) -> str:
    """The client's file name, for messages and JSON only (it never becomes a path): last component, printable, ≤ 100 chars."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()[:100]
    return name or "upload"


def header_info(data: bytes) -> tuple[tuple[int, int] | None, str | None]:
    """((width, height), format) from the file header without decoding the pixels; (None, None) when unknown."""
    try:
        with Image.open(io.BytesIO(data)) as image:  # lazy: reads the header only
            return image.size, image.format
    except Image.DecompressionBombError:
        return (1 << 20, 1 << 20), None  # PIL's own guard (over 2 × MAX_IMAGE_PIXELS): too large whatever the limit
    except Exception:
        pass
    if data[:4] in TIFF_MAGIC:
        try:
            import tifffile

            with tifffile.TiffFile(io.BytesIO(data)) as tiff:
                page = tiff.pages[0]
                return (int(page.imagewidth), int(page.imagelength)), "TIFF"
        except Exception:
            pass
    return None, None


def _ram_folder() -> str | None:
    """A memory-backed folder for the moment of decoding (/dev/shm on Linux), else the system's temporary folder."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def check_pixels(size: tuple[int, int] | None, name: str, max_pixels: int) -> None:
    if size is not None and size[0] * size[1] > max_pixels:
        raise RequestError(413, f"{name}: {size[0]}×{size[1]} px is over the server's limit of {max_pixels / 1e6:g} megapixels")


def decode(data: bytes, name: str, max_pixels: int, reader=None) -> np.ndarray:
    """An uploaded file decoded by ``reader`` (default :func:`m2unet.data.io.read_image`) with the same one-line
    reasons as ``m2unet segment``, named by the client's file name.

    The size in the header is checked against ``max_pixels`` before any pixel is decoded (decompression bombs).
    The bytes sit in a private temporary file (in memory where /dev/shm exists) only while they are decoded, under a
    fixed name: no client-supplied name becomes a path.
    """
    from ..data.io import read_image

    size, image_format = header_info(data)
    check_pixels(size, name, max_pixels)
    suffix = ".tif" if data[:4] in TIFF_MAGIC else SUFFIX_OF_FORMAT.get(image_format or "", ".img")
    with tempfile.TemporaryDirectory(prefix="m2unet-serve-", dir=_ram_folder()) as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            array = (reader or read_image)(path)
        except InputFileError as error:
            raise RequestError(400, f"{name}: {error.problem}") from None
    check_pixels((array.shape[1], array.shape[0]), name, max_pixels)  # formats whose header we could not read
    return array


def png_base64(array: np.ndarray, compress_level: int = 3) -> str:
    return base64.b64encode(png_bytes(array, compress_level)).decode("ascii")


def png_bytes(array: np.ndarray, compress_level: int = 3) -> bytes:
    """PNG of a bool (1-bit), float in [0, 1] (8-bit gray) or uint8 array."""
    if array.dtype == np.bool_:
        image = Image.fromarray(array).convert("1")
    elif np.issubdtype(array.dtype, np.floating):
        image = Image.fromarray(np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8))
    else:
        image = Image.fromarray(np.ascontiguousarray(array))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def served_weights(values) -> dict[str, Path]:
    """name → file of each ``--weights [NAME=]FILE`` of ``m2unet serve`` (NAME: the file's stem when not given).

    A name must be new (not auto, a pretrained model or an earlier --weights) and plain, since requests send it."""
    served: dict[str, Path] = {}
    for value in values:
        name, given, file = value.partition("=")
        if not given or Path(value).is_file():  # a file whose own name holds '='
            name, file = Path(value).stem, value
        path = Path(file)
        if not path.is_file():
            raise M2UNetError(f"--weights {value}: no such file")
        if path.suffix not in WEIGHTS_SUFFIXES:
            raise M2UNetError(f"--weights {value}: not a model file (expected {', '.join(WEIGHTS_SUFFIXES)})")
        if not SERVED_NAME.fullmatch(name):
            raise M2UNetError(f"--weights {value}: {name!r} cannot name a model (letters, digits, '_', '-', '.'; give NAME=FILE)")
        if name in ("auto", *PRETRAINED_NAMES, *served):
            raise M2UNetError(f"--weights {value}: the name {name!r} is taken; give another as NAME=FILE")
        served[name] = path.resolve()
    return served


def served_description(path: Path) -> dict:
    """What ``GET /v1/models`` says of a --weights model: its stored threshold, its file and, for a file written by
    ``m2unet calibrate``, the camera it was fitted to (m2unet.evaluation.calibrate)."""
    from ..weights import read_metadata, threshold_of

    metadata = read_metadata(path)
    record = metadata.get("camera_calibration")
    calibration = None
    if isinstance(record, dict):
        calibration = {key: record.get(key) for key in ("photographs", "dataset", "f1_before", "f1_after")}
        calibration["run_fov_diameter"] = metadata.get("run_fov_diameter")  # what it runs at, as chosen
    return {"threshold": threshold_of(metadata), "file": path.name, "calibration": calibration}


class Models:
    """One compiled model per (weights, backend) for the whole server, shared by the worker threads.

    The models a request may name: ``auto`` (the universal model), the pretrained ones, and the weights files the
    server was started with (``served``: name → file, e.g. a model calibrated to the clinic's camera).
    ONNX Runtime sessions and PyTorch modules may run from several threads at once; an OpenVINO backend keeps one
    infer request per input shape, so its calls take turns (a lock per model). Decoding, the FOV estimate and PNG
    encoding always run in parallel.
    """

    def __init__(self, backend: str, served: dict[str, Path] | None = None):
        self.backend = backend
        self.served = dict(served or {})
        self._lock = threading.Lock()
        self._turns: dict[str, threading.Lock | None] = {}

    @property
    def choices(self) -> tuple[str, ...]:
        return ("auto", *PRETRAINED_NAMES, *self.served)

    def check(self, name: str) -> None:
        if name not in self.choices:
            raise RequestError(400, f"unknown model {name!r}; choose one of {', '.join(self.choices)}")

    def weights_of(self, name: str) -> Path | None:
        """The weights file a served name stands for (None for auto and the pretrained models)."""
        return self.served.get(name)

    def get(self, name: str):
        """(segmenter, lock or None) of the model ``name``, loaded and compiled on first use."""
        from ..inference.backend_spec import BackendSpec
        from ..inference.pipeline import get_segmenter
        from ..weights import calibration_for, resolve_weights

        path = self.weights_of(name) or resolve_weights(name)
        with self._lock:  # two first requests for one model compile it once
            segmenter = get_segmenter(path, self.backend, calibration=calibration_for(path))
            if name not in self._turns:
                self._turns[name] = threading.Lock() if BackendSpec.parse(self.backend).runtime == "openvino" else None
        return segmenter, self._turns[name]

    def loaded(self) -> list[str]:
        return sorted(self._turns)


@dataclass
class Segmentation:
    """What one photograph gives: the maps and the facts the JSON answer reports."""

    name: str
    model: str
    threshold: float
    image: np.ndarray
    mask: np.ndarray
    probability: np.ndarray
    timings: dict
    run_fov_diameter: int | None = None  # px the FOV was resized to for the model
    contrast_gain: float = 1.0  # how much the photograph was stretched to the model's contrast floor (m2unet.data.contrast)
    weights: Path | None = None  # the file the model was read from (its review limits: m2unet.inference.review)

    @property
    def vessels(self) -> np.ndarray:
        return self.probability >= self.threshold


def segment_upload(data: bytes, name: str, models: Models, model: str, threshold: float | None, tta: bool, max_pixels: int,
                   search_diameter: bool = False) -> Segmentation:
    """Decode, estimate the FOV, choose the model (``auto``: the universal model) and segment one uploaded photograph
    (``search_diameter``: as ``segment --search-diameter``; the request decides it, m2unet.weights.auto_run)."""
    from ..data.fov import estimate_fov_mask
    from ..weights import AUTO_MODEL, threshold_of

    started = time.perf_counter()
    image = decode(data, name, max_pixels)
    decoded = time.perf_counter()
    mask = estimate_fov_mask(image)
    chosen = AUTO_MODEL if model == "auto" else model
    masked = time.perf_counter()
    segmenter, turn = models.get(chosen)  # loaded and compiled by the first request that needs it
    loaded = time.perf_counter()
    with turn or contextlib.nullcontext():
        segmented = segmenter.run(image, mask, tta=tta, search_diameter=search_diameter)  # one compiled model for all settings
    done = time.perf_counter()
    cut = threshold if threshold is not None else threshold_of(segmenter.metadata)
    timings = {"decode": decoded - started, "fov": masked - decoded, "model": loaded - masked, "segment": done - loaded}
    return Segmentation(name, chosen, float(cut), image, mask, segmented.probability, timings, segmented.run_fov_diameter,
                        segmented.contrast_gain, segmenter.weights)


def segmentation_json(result: Segmentation, backend: str, tta: bool, with_overlay: bool, search_diameter: bool = False) -> dict:
    """The JSON answer of ``POST /v1/segment``: facts, timings (ms) and the maps as base64 PNG."""
    from ..inference.pipeline import fov_width, overlay
    from ..inference.review import review_map

    started = time.perf_counter()
    vessels = result.vessels
    answer = {
        "image": result.name, "width": int(result.image.shape[1]), "height": int(result.image.shape[0]),
        "model": result.model, "backend": backend, "threshold": round(result.threshold, 6), "tta": tta, "search_diameter": search_diameter,
        "fov_width": fov_width(result.mask, result.image.shape[1]), "run_fov_diameter": result.run_fov_diameter,
        "contrast_gain": round(result.contrast_gain, 4),
        "vessel_fraction": round(float(vessels[result.mask].mean()) if result.mask.any() else 0.0, 6),
        "review": review_map(result.probability, result.weights, result.mask) if result.weights else None,
        "probability_png": png_base64(result.probability), "vessels_png": png_base64(vessels), "fov_png": png_base64(result.mask),
    }
    if with_overlay:
        answer["overlay_png"] = png_base64(overlay(result.image, vessels, result.mask), compress_level=1)
    timings = dict(result.timings, encode=time.perf_counter() - started)
    timings["total"] = sum(timings.values())
    answer["timings_ms"] = {key: round(value * 1000.0, 1) for key, value in timings.items()}
    return answer


def measure_function():
    """``m2unet.measure``'s ``measure(vessels, fov=None, pixel_size_um=None)`` when that stage is installed, else a
    one-line reason (str) why measurements are not available."""
    try:
        module = importlib.import_module("m2unet.measure")
    except ModuleNotFoundError as error:
        if (error.name or "").startswith("m2unet"):
            return "measurements are not available in this install (no m2unet.measure module)"
        return f"measurements need {error.name}, which is not installed (pip install {error.name})"
    function = getattr(module, "measure", None)
    return function if callable(function) else "measurements are not available in this install (m2unet.measure has no measure())"


def json_safe(value):
    """Numbers, lists and dicts as JSON can carry them: numpy scalars as Python numbers, NaN and ±inf as null."""
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_safe(item) for item in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


def measure_maps(vessels: np.ndarray, fov: np.ndarray | None, pixel_size_um: float | None, name: str = "upload") -> dict:
    """Per-image summary, segments and junctions of a binary vessel map (the measurement stage, when installed)."""
    import inspect

    function = measure_function()
    if isinstance(function, str):
        raise RequestError(501, function)
    started = time.perf_counter()
    named = {"name": name} if "name" in inspect.signature(function).parameters else {}  # its errors then name the upload
    result = function(vessels, fov=fov, pixel_size_um=pixel_size_um, **named)
    answer = {key: json_safe(getattr(result, key, None)) for key in ("summary", "segments", "junctions")}
    answer["timings_ms"] = {"measure": round((time.perf_counter() - started) * 1000.0, 1)}
    return answer
