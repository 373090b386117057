"""Contrast restoration: bring a flat photograph's vessel contrast up to what a model was trained on.

Cameras, hazy media (cataract) and heavy compression give photographs whose vessels stand out far less than in
DRIVE, CHASE_DB1 or HRF, and a model loses vessels it would find at normal contrast (results/scale/camera_shift.md:
the universal model keeps F1 0.75 on DRIVE with 40 % of its contrast left; restored, 0.80). The measure here is the
*local* contrast of the green channel (where vessels stand out most): its standard deviation inside the FOV after
the slowly varying background (illumination, optic disc, vignetting) is taken away, all at a FOV of
:data:`MEASURE_DIAMETER` px so that the measure means the same at any resolution.

A model trained with scale normalisation records ``contrast_floor``, the median of this measure over its training
photographs (:func:`m2unet.training.contrast.contrast_metadata`); a photograph below it is stretched about its FOV's
mean colour until it reaches the floor (at most :data:`MAX_GAIN` times). Photographs at or above the floor run as
they are, so the stretch only ever brings a photograph into the range the model saw.
"""

from __future__ import annotations

import numpy as np

from .scale import WidthRule, as_predicted, run_scaled, scale_frame

MEASURE_DIAMETER = 512  # FOV diameter (px) the contrast is measured at
BACKGROUND_SIGMA = 16  # px at MEASURE_DIAMETER (3 % of the FOV): wider than any vessel, narrower than the illumination
EDGE = 6  # px at MEASURE_DIAMETER kept away from the FOV border, where the background estimate is one-sided
MAX_GAIN = 4.0  # a photograph is stretched at most this much: beyond, noise and JPEG blocks grow faster than vessels


def local_contrast(image: np.ndarray, mask: np.ndarray) -> float:
    """Standard deviation of the green channel minus its local background, inside the FOV ``mask``, at a
    :data:`MEASURE_DIAMETER`-px FOV (0 for an empty or tiny FOV)."""
    from scipy.ndimage import binary_erosion, gaussian_filter

    if not mask.any():
        return 0.0
    frame = scale_frame(mask, MEASURE_DIAMETER, tolerance=0.0)
    green = frame.to_model(image[..., 1])
    fov = frame.fov_to_model(mask)
    # the background is a Gaussian mean over FOV pixels only (normalised convolution): the black border stays out of it
    weight = gaussian_filter(fov.astype(np.float32), BACKGROUND_SIGMA)
    background = gaussian_filter(green * fov, BACKGROUND_SIGMA) / np.maximum(weight, 1e-3)
    inner = binary_erosion(fov, iterations=EDGE)
    return float((green - background)[inner].std()) if inner.any() else 0.0


def contrast_gain(image: np.ndarray, mask: np.ndarray, floor: float) -> float:
    """How much a photograph is stretched to bring its local contrast up to ``floor`` (1: not at all)."""
    measured = local_contrast(image, mask)
    if measured <= 0.0 or measured >= floor:
        return 1.0
    return float(min(floor / measured, MAX_GAIN))


def stretched(image: np.ndarray, mean_colour: np.ndarray, gain: float) -> np.ndarray:
    """``image`` (H×W×3, [0, 1]) stretched by ``gain`` about ``mean_colour``, clipped to [0, 1]: the black border stays
    black, since it lies below the mean."""
    if gain == 1.0:
        return image
    return np.clip(mean_colour + gain * (image - mean_colour), 0.0, 1.0).astype(np.float32, copy=False)


def fov_mean_colour(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The mean RGB inside ``mask``, as a product with the mask row by row (a boolean index would copy an HRF photograph:
    0.7 s), the row sums added in float64 so that millions of pixels lose no precision."""
    rows = np.matmul(mask.astype(np.float32)[:, None, :], image)[:, 0]  # (H, 3): each row's sum over its FOV pixels
    return (rows.sum(axis=0, dtype=np.float64) / max(int(mask.sum()), 1)).astype(np.float32)


def restoring(predict, image: np.ndarray, mask: np.ndarray | None, floor: float | None):
    """(``predict`` (H×W×3 view → probability) that first stretches each view as :func:`contrast_gain` says for the whole
    photograph ``image`` with FOV ``mask``, the gain); ``predict`` itself and 1 when no stretch is needed (``floor``
    None, no FOV, or a photograph at or above the floor). The gain and the mean colour come from the whole photograph,
    so every view (a scaled crop, a tile, a flip) is stretched alike."""
    if floor is None or mask is None or not mask.any():
        return predict, 1.0
    gain = contrast_gain(image, mask, floor)
    if gain == 1.0:
        return predict, 1.0
    mean_colour = fov_mean_colour(image, mask)
    return (lambda view: predict(stretched(view, mean_colour, gain))), gain


def run_as_trained(predict, image: np.ndarray, mask: np.ndarray | None, scale: tuple[int, int] | WidthRule | None,
                   floor: float | None, max_from: float | None = None, final=as_predicted) -> tuple[np.ndarray, int | None, float]:
    """(probability, FOV diameter it ran at, contrast gain) of ``predict`` run on ``image`` as a model was trained: its
    contrast restored up to ``floor`` (:func:`restoring`), then at its ``scale`` (:func:`m2unet.data.scale.run_scaled`).
    The one way ``segment``, ``evaluate`` and the benchmarks run a photograph; ``max_from``: the model's
    :func:`m2unet.data.scale.back_max_from`; ``final``: :func:`m2unet.data.scale.run_scaled`'s (test-time flips; the
    stretch is per pixel, so it commutes with them)."""
    restored, gain = restoring(predict, image, mask, floor)
    probability, diameter = run_scaled(restored, image, mask, scale, max_from, final)
    return probability, diameter, gain


def floor_of(contrasts: dict[str, list[float]]) -> float:
    """The contrast floor a model stores, from its training photographs' local contrasts per dataset: the lowest of the
    datasets' medians (a typical photograph of the flattest camera it learnt from; results/scale/contrast_floor.md)."""
    return min(float(np.median(values)) for values in contrasts.values())


def model_contrast_floor(metadata: dict) -> float | None:
    """The contrast floor a model's weights record (None: photographs run at their own contrast)."""
    floor = metadata.get("contrast_floor")
    return float(floor) if floor else None
