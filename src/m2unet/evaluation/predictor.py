"""What ``m2unet evaluate`` runs: a weights file as ``image → probability`` on the asked backend, and its record."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def weights_info(path: Path, metadata: dict, label: str | None, backend: str = "torch") -> dict:
    """The record of the evaluated weights kept in metrics.json: file, SHA-256, model, source, backend, label, metadata."""
    import hashlib

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    source = metadata.get("source") or "m2unet"
    ran_with = "" if backend == "torch" else f", {backend}"
    return {
        "file": path.name,
        "path": str(path),
        "sha256": digest,
        "model": metadata.get("model", "m2unet"),
        "source": source,
        "backend": backend,
        "label": label or (f"{metadata.get('model', 'm2unet')} ({path.name}{ran_with})"),
        "metadata": {k: v for k, v in metadata.items() if k not in ("metrics",)},
    }


def model_predictor(path: Path, runtime: str | None, precision: str, device: str, rescale: bool = True, progress=None,
                    search_diameter: bool = False):
    """(image → probability, the weights' metadata, backend name) for evaluating ``path`` as asked.

    PyTorch fp32 on the CPU or the GPU keeps the reference path (whole images, as every committed result); any other
    backend or precision, and exported files, run through the backends and tiling of ``m2unet segment``. Either way the
    image runs at the model's FOV diameter and contrast floor as ``segment`` runs it (``rescale``; see
    :mod:`m2unet.data.scale` and :mod:`m2unet.data.contrast`); ``search_diameter`` searches each photograph's diameter as ``segment --search-diameter`` does.
    """
    predict, metadata, name = unscaled_predictor(path, runtime, precision, device, progress)
    from ..data.contrast import model_contrast_floor
    from ..data.scale import back_max_from, model_scale, scale_record

    scale = model_scale(metadata, search=search_diameter) if rescale else None
    floor = model_contrast_floor(metadata) if rescale else None
    return _scaled(predict, scale, floor, back_max_from(metadata)), {**metadata, "run_at_fov_diameter": scale_record(scale), "run_at_contrast_floor": floor}, name


class ScaledPredictor:
    """``image → probability`` of ``predict`` run at ``scale`` and ``contrast_floor`` on each image's estimated FOV (as
    ``segment`` does); :attr:`ran_at` is the FOV diameter the last image ran at (a search picks it per image);
    ``max_from``: the model's :func:`m2unet.data.scale.back_max_from`; ``final``: how the kept view runs
    (:func:`m2unet.data.scale.run_scaled`; :meth:`with_flips`)."""

    def __init__(self, predict, scale, contrast_floor, max_from: float, final=None):
        from ..data.scale import as_predicted

        self.predict, self.scale, self.contrast_floor, self.max_from = predict, scale, contrast_floor, max_from
        self.final = final or as_predicted
        self.ran_at: int | None = None

    def __call__(self, image: np.ndarray, fov: np.ndarray | None = None) -> np.ndarray:
        """``fov``: the image's FOV mask when the caller has estimated it already (one photograph run several ways)."""
        from ..data.contrast import run_as_trained
        from ..data.fov import estimate_fov_mask

        fov = estimate_fov_mask(image) if fov is None else fov
        probability, self.ran_at, _ = run_as_trained(self.predict, image, fov, self.scale, self.contrast_floor, self.max_from,
                                                     self.final)
        return probability

    def with_flips(self) -> ScaledPredictor:
        """The same with test-time flips of the scaled view it keeps, as ``segment --tta`` runs them: one FOV estimate
        and one diameter per image, searched on plain maps (:func:`m2unet.data.scale.run_scaled`)."""
        from ..inference.tiling import flip_average

        return ScaledPredictor(self.predict, self.scale, self.contrast_floor, self.max_from, flip_average)


def _scaled(predict, scale, contrast_floor, max_from: float):
    """A :class:`ScaledPredictor`, or ``predict`` itself when there is neither scale nor contrast floor."""
    return predict if scale is None and contrast_floor is None else ScaledPredictor(predict, scale, contrast_floor, max_from)


def unscaled_predictor(path: Path, runtime: str | None, precision: str, device: str, progress=None):
    """(image → probability at the image's own size, the weights' metadata, backend name): what :func:`model_predictor`
    scales."""
    from ..inference.backends import backend_name, create_backend, require_cuda
    from ..inference.pipeline import default_runtime
    from ..weights import EXPORTED_SUFFIXES, calibration_for, load_weights, read_metadata
    from .evaluate import backend_predictor, torch_predictor

    exported = path.suffix in EXPORTED_SUFFIXES
    runtime = runtime or (default_runtime(device, path) if exported else "torch")
    if device == "cuda":
        require_cuda()
    if runtime == "torch" and precision in ("auto", "fp32") and not exported:
        model, metadata = load_weights(path)
        return torch_predictor(model.to(device)), metadata, "torch" if device == "cpu" else "cuda"
    name = backend_name(runtime, precision, device, path)
    backend = create_backend(name, path, calibration=calibration_for(path), progress=progress)
    # our files carry their metadata (read without torch); load_weights knows the authors' .pth
    metadata = read_metadata(path) if exported or path.suffix == ".safetensors" else load_weights(path)[1]
    return backend_predictor(backend), metadata, name
