"""From an image (array or file) to a vessel probability map: model choice, backend, FOV mask, tiling.

``m2unet.segment(...)`` (the Python API) and ``m2unet segment`` (the CLI) both run through here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import M2UNetError
from ..weights import auto_run, calibration_for, resolve_weights
from .tiling import MAX_TILE, MULTIPLE, TILE_OVERLAP, flip_average, predict_tiled


def fov_width(mask: np.ndarray | None, image_width: int) -> int:
    """Columns spanned by the FOV mask (``image_width`` without a mask or with an empty one)."""
    if mask is None:
        return image_width
    columns = np.flatnonzero(mask.any(axis=0))
    return int(columns[-1] - columns[0] + 1) if columns.size else image_width


def default_runtime(device: str = "cpu", weights: str | os.PathLike | None = None) -> str:
    """The runtime when none is asked for: torch on a GPU; openvino for an OpenVINO IR file (.xml); else openvino
    when installed (the fastest on CPU), else onnxruntime, else torch."""
    import importlib.util

    if device == "cuda":
        return "torch"
    if weights is not None and Path(weights).suffix == ".xml":
        return "openvino"

    for runtime in ("openvino", "onnxruntime"):
        if importlib.util.find_spec(runtime) is not None:
            return runtime
    return "torch"


def as_rgb_float(image: np.ndarray) -> np.ndarray:
    """An image array (H×W gray, H×W×3 RGB or H×W×4 RGBA; uint8, uint16 or float) as float32 H×W×3 in [0, 1]."""
    from ..data.io import _to_unit_float

    array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise M2UNetError(f"image array of shape {array.shape}: expected H×W, H×W×3 or H×W×4")
    channels = array.shape[2]
    array = np.repeat(array[..., :1], 3, axis=2) if channels <= 2 else array[..., :3]
    if min(array.shape[:2]) < MULTIPLE:
        raise M2UNetError(f"image of {array.shape[1]}×{array.shape[0]} px is too small (need at least {MULTIPLE}×{MULTIPLE})")
    return np.ascontiguousarray(_to_unit_float(array, "<array>"))


class Segmented(NamedTuple):
    """One photograph through a :class:`Segmenter`."""

    probability: np.ndarray  # H×W, 0 outside the mask
    run_fov_diameter: int | None  # px its FOV ran at (m2unet.data.scale); None: as it is
    contrast_gain: float  # how much it was stretched to the model's contrast floor (m2unet.data.contrast); 1: not at all


class Segmenter:
    """A loaded model on one backend: ``segmenter(image, mask)`` → probability H×W (0 outside the mask)."""

    def __init__(self, weights: str | os.PathLike, backend: str, calibration: str = "drive", hint: str = "LATENCY",
                 max_tile: int = MAX_TILE, overlap: int = TILE_OVERLAP, progress=None, tta: bool = False, rescale: bool = True,
                 threads: int | None = None, restore_contrast: bool = True, search_diameter: bool = False, compiled=None):
        from ..data.contrast import model_contrast_floor
        from ..data.scale import back_max_from, model_scale
        from ..weights import read_metadata
        from .backends import create_backend

        self.weights = Path(weights)
        self.metadata = read_metadata(self.weights)  # once per model, not per image (the a-priori threshold)
        # compiled: a backend already built for these weights (get_segmenter shares one between settings)
        self.backend = compiled or create_backend(backend, self.weights, calibration=calibration, hint=hint, progress=progress, threads=threads)
        self.max_tile, self.overlap, self.tta = max_tile, overlap, tta
        # the FOV diameter and the contrast the model works at (m2unet.data.scale, .contrast); None: as the photograph is
        self.rescale = rescale
        self.scale = model_scale(self.metadata, search=search_diameter) if rescale else None
        self.contrast_floor = model_contrast_floor(self.metadata) if rescale and restore_contrast else None
        self.max_from = back_max_from(self.metadata)  # how far enlarged a photograph's map comes back by the maximum

    def __call__(self, image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        return self.run(image, mask)[0]

    def run(self, image: np.ndarray, mask: np.ndarray | None = None, tta: bool | None = None,
            search_diameter: bool | None = None) -> Segmented:
        """The probability, with the FOV diameter the photograph ran at and the contrast gain it ran with.

        ``tta`` and ``search_diameter`` override the segmenter's own settings for this call (the service shares one
        compiled model between requests with and without them); the flips are of the scaled, restored view the
        photograph is kept at, so the FOV, the contrast and the diameter (searched on plain maps) are measured once."""
        from ..data.contrast import run_as_trained
        from ..data.fov import estimate_fov_mask
        from ..data.scale import as_predicted, model_scale

        flips = self.tta if tta is None else tta
        scale = self.scale if search_diameter is None or not self.rescale else model_scale(self.metadata, search=search_diameter)

        def predict(view: np.ndarray) -> np.ndarray:
            return predict_tiled(self.backend, view, self.max_tile, self.overlap)

        # without a mask (--no-fov-mask) the scale and the contrast still need the FOV: estimated, used for them only
        needs_fov = scale is not None or self.contrast_floor is not None
        frame_mask = mask if mask is not None or not needs_fov else estimate_fov_mask(image)
        probability, diameter, gain = run_as_trained(predict, image, frame_mask, scale, self.contrast_floor, self.max_from,
                                                     flip_average if flips else as_predicted)
        if mask is not None:
            probability[~mask] = 0.0
        return Segmented(probability, diameter, gain)


_SEGMENTERS: dict[tuple, Segmenter] = {}
_COMPILED: dict[tuple, object] = {}
# what a compiled model depends on; the other options (tiling, TTA, scaling, contrast) only change how it is run
_COMPILE_OPTIONS = ("calibration", "hint", "threads")


def get_segmenter(weights: str | os.PathLike, backend: str, **options) -> Segmenter:
    """A cached :class:`Segmenter` per (weights, backend, options): repeated calls reuse compiled models, and
    segmenters that differ only in how they run the model (TTA, scaling, contrast, tiles) share one compiled model."""
    from .backends import create_backend

    path = str(Path(weights).resolve())
    key = (path, backend, tuple(sorted(options.items())))
    if key not in _SEGMENTERS:
        compile_options = {name: options[name] for name in _COMPILE_OPTIONS if name in options}
        compiled_key = (path, backend, tuple(sorted(compile_options.items())))
        if compiled_key not in _COMPILED:
            _COMPILED[compiled_key] = create_backend(backend, weights, progress=options.get("progress"), **compile_options)
        _SEGMENTERS[key] = Segmenter(weights, backend, compiled=_COMPILED[compiled_key], **options)
    return _SEGMENTERS[key]


def segment(image, model: str = "auto", *, weights: str | os.PathLike | None = None, backend: str | None = None,
            precision: str = "auto", device: str = "cpu", fov_mask: bool | np.ndarray = True, max_tile: int = MAX_TILE,
            overlap: int = TILE_OVERLAP, tta: bool | None = None, rescale: bool = True, restore_contrast: bool = True,
            search_diameter: bool | None = None) -> np.ndarray:
    """Vessel probability map (float32 H×W in [0, 1]) of a fundus photograph.

    Args:
        image: a file path (any format :func:`m2unet.data.read_image` reads) or an array H×W[×3|×4]
            (uint8, uint16 or float in [0, 1]).
        model: ``auto`` (the default, as in ``m2unet segment``: the ``universal`` model, :data:`m2unet.weights.AUTO_MODEL`),
            ``universal``, ``drive``, ``chase_db1`` or ``hrf``.
        weights: a weights file instead of a pretrained model.
        backend: ``torch``, ``onnxruntime`` or ``openvino`` (default: the fastest installed; torch with
            ``device="cuda"``), or a full backend name such as ``openvino-int8`` or ``cuda-fp16`` (see
            :mod:`m2unet.inference.backends`).
        precision: ``auto``, ``fp32``, ``fp16`` (GPU), ``bf16`` or ``int8`` (CPU) (ignored when ``backend`` is a full name).
        device: ``cpu`` or ``cuda`` (PyTorch on the GPU).
        fov_mask: True (estimate it from the image, probability 0 outside), False (no mask) or a bool H×W array.
        tta: average over the view the photograph runs at and its three flips (:func:`m2unet.inference.tiling.flip_average`;
            :data:`m2unet.inference.tiling.TTA_TIME`). Default (None): with ``model="auto"`` only
            (:func:`m2unet.weights.auto_run`).
        rescale: run the photograph at the FOV diameter the model works at (:func:`m2unet.data.scale.model_scale`) and,
            when it is flatter than the model's training photographs, with its contrast restored
            (:mod:`m2unet.data.contrast`); False runs it as it is.
        restore_contrast: False keeps a flat photograph's contrast while still scaling it (for comparisons).
        search_diameter: instead of clamping the FOV diameter into the universal model's stored range, try diameters
            across it (and above it, up to the photograph's own) and keep the map that is most self-consistent
            (:class:`m2unet.data.scale.DiameterSearch`; :data:`m2unet.weights.SEARCH_TIME`): for cameras whose vessels are wider or
            narrower than their FOV diameter suggests. Default (None): with ``model="auto"`` only
            (:func:`m2unet.weights.auto_run`).
    """
    rgb, mask = _photograph_and_mask(image, fov_mask)
    segmenter = _cached_segmenter(model, weights, backend, precision, device, max_tile=max_tile, overlap=overlap, tta=tta,
                                  rescale=rescale, restore_contrast=restore_contrast, search_diameter=search_diameter)
    return segmenter(rgb, mask)


def vessels(image, model: str = "auto", *, weights: str | os.PathLike | None = None, threshold: float | None = None,
            fov_mask: bool | np.ndarray = True, backend: str | None = None, precision: str = "auto", device: str = "cpu",
            **run_options) -> np.ndarray:
    """Binary vessel map (bool H×W) of a fundus photograph: :func:`segment`'s probability at the model's a-priori
    threshold (the one stored with its weights, as ``m2unet segment`` writes ``*_vessels.png``) or at ``threshold``.
    The other arguments are :func:`segment`'s."""
    probability, cut = segment_and_threshold(image, model, weights=weights, threshold=threshold, fov_mask=fov_mask,
                                             backend=backend, precision=precision, device=device, **run_options)
    return probability >= cut


def segment_and_threshold(image, model: str = "auto", *, weights: str | os.PathLike | None = None, threshold: float | None = None,
                          fov_mask: bool | np.ndarray = True, backend: str | None = None, precision: str = "auto",
                          device: str = "cpu", **run_options) -> tuple[np.ndarray, float]:
    """:func:`segment`'s probability and the threshold :func:`vessels` cuts it at (``threshold``, else the model's
    stored one), for callers that need both (``m2unet measure`` reviews the probability)."""
    from ..weights import threshold_of

    rgb, mask = _photograph_and_mask(image, fov_mask)
    segmenter = _cached_segmenter(model, weights, backend, precision, device, **run_options)
    cut = threshold if threshold is not None else threshold_of(segmenter.metadata)  # metadata read once per model
    return segmenter(rgb, mask), float(cut)


def _photograph_and_mask(image, fov_mask: bool | np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The photograph as float RGB and its FOV mask (given, estimated, or None) for :func:`segment`."""
    from ..data.fov import estimate_fov_mask
    from ..data.io import read_image

    rgb = read_image(image) if isinstance(image, (str, os.PathLike)) else as_rgb_float(image)
    if not isinstance(fov_mask, np.ndarray):
        return rgb, estimate_fov_mask(rgb) if fov_mask else None
    mask = np.asarray(fov_mask, dtype=bool)
    if mask.shape != rgb.shape[:2]:
        raise M2UNetError(f"FOV mask {mask.shape} does not match the image {rgb.shape[:2]}")
    return rgb, mask


def _cached_segmenter(model: str, weights, backend: str | None, precision: str, device: str, **run_options) -> Segmenter:
    """The cached :class:`Segmenter` for :func:`segment`'s model and backend arguments; ``run_options`` are its
    tiling, TTA, scaling and contrast settings (:class:`Segmenter`'s defaults where absent)."""
    from .backends import named_backend

    path = resolve_weights(model, weights)
    name = named_backend(backend or default_runtime(device, weights), precision, device, weights)
    run_options.update(auto_run(model, weights, run_options.get("search_diameter"), run_options.get("tta"))._asdict())  # auto: searched, flipped
    return get_segmenter(path, name, calibration=calibration_for(path), **run_options)


def overlay(image: np.ndarray, vessels: np.ndarray, mask: np.ndarray | None = None, rows: int = 512) -> np.ndarray:
    """uint8 RGB picture: the photograph with vessels in green, dimmed outside the FOV mask.

    Built in bands of ``rows`` rows so a 7000×5000 image needs no full-size float temporary.
    """
    picture = np.empty(image.shape, dtype=np.uint8)
    green = np.array([0, 170, 0], dtype=np.uint8)
    for top in range(0, image.shape[0], rows):
        band = slice(top, top + rows)
        part = np.rint(np.clip(image[band], 0.0, 1.0) * 255.0).astype(np.uint8)
        if mask is not None:
            part[~mask[band]] //= 3
        on = vessels[band]
        part[on] = part[on] // 3 + green
        picture[band] = part
    return picture
