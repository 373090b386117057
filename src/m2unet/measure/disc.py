"""Optic disc centre and diameter estimated from the vessel map alone, and the zone B ring.

Centre: the large vessels converge on the disc. Every centreline pixel is weighted by the square of
its vessel radius (a vessel's cross-section: the thick arcades count, capillaries hardly), the weights
are blurred with a Gaussian of σ = 1/10 of the FOV diameter, and the disc centre is the maximum of that
map inside the FOV. Works on a copy downsampled so that the FOV spans about 256 px.

Diameter: not measured; it is the typical optic disc diameter, DISC_DIAMETER_UM = 1800 µm (Jonas et al.
1988: mean vertical disc diameter 1.88 mm, horizontal 1.77 mm), in pixels through the pixel size. When no
pixel size is known a 45° field of view is assumed (the commonest fundus camera angle; DRIVE and HRF are
45°, CHASE_DB1 is 30°: give --field-of-view 30 there), i.e. a disc diameter of 1800 / (45 × 288) = 0.139
of the FOV diameter.

Zone B: the ring from 0.5 to 1 disc diameter beyond the disc margin, i.e. between 1 and 1.5 disc
diameters from the centre (the standard ring of the ARIC / Knudtson CRAE-CRVE protocol).
How well this does on DRIVE, CHASE_DB1 and HRF: results/measure/optic_disc.md.
"""

from __future__ import annotations

import numpy as np

DISC_DIAMETER_UM = 1800.0
UM_PER_DEGREE = 288.0  # retinal distance per degree of visual angle (Gullstrand schematic eye, ~0.29 mm/°)
DEFAULT_FIELD_DEG = 45.0
BLUR_FRACTION = 0.1
WORK_SIZE = 256


def pixel_size_from_field(field_deg: float, fov_diameter_px: float) -> float:
    """Micrometres per pixel from the camera's field angle: field_deg × 288 µm/° spread over the FOV diameter."""
    return field_deg * UM_PER_DEGREE / fov_diameter_px


def disc_diameter_px(fov_diameter_px: float, pixel_size_um: float | None) -> float:
    """The assumed disc diameter in pixels (1800 µm; without a pixel size, 0.139 × the FOV diameter)."""
    size = pixel_size_um if pixel_size_um else pixel_size_from_field(DEFAULT_FIELD_DEG, fov_diameter_px)
    return DISC_DIAMETER_UM / size


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter(image, sigma, mode="constant")`` (zeros outside, truncated at 4 σ) as two
    1-D FFT convolutions: the same values to rounding, several times faster for the wide kernel used here
    (σ ≈ 27 px on a DRIVE map: 217 taps)."""
    from scipy.signal import fftconvolve

    radius = int(4 * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 / (sigma * sigma) * x * x)
    kernel /= kernel.sum()
    return fftconvolve(fftconvolve(image, kernel[None, :], mode="same"), kernel[:, None], mode="same")


def disc_centre(skeleton: np.ndarray, distance: np.ndarray, fov: np.ndarray, fov_diameter_px: float) -> tuple[float, float] | None:
    """(x, y) of the vessels' convergence (the disc centre estimate), or None without any centreline."""
    if not skeleton.any():
        return None
    step = max(1, int(round(fov_diameter_px / WORK_SIZE)))
    weight = np.where(skeleton, distance.astype(np.float64) ** 2, 0.0)
    h, w = weight.shape
    small = weight[: h // step * step, : w // step * step].reshape(h // step, step, w // step, step).sum(axis=(1, 3))
    if small.size == 0:
        return None
    blurred = blur(small, BLUR_FRACTION * fov_diameter_px / step)
    inside = fov[: h // step * step: step, : w // step * step: step]
    blurred[~inside[: blurred.shape[0], : blurred.shape[1]]] = -1.0
    row, col = np.unravel_index(int(np.argmax(blurred)), blurred.shape)
    return (col + 0.5) * step - 0.5, (row + 0.5) * step - 0.5


def zone_b(shape: tuple[int, int], centre: tuple[float, float], diameter: float) -> np.ndarray:
    """Bool mask of zone B: 1 to 1.5 disc diameters from the disc centre."""
    zone = np.zeros(shape, dtype=bool)
    reach = 1.5 * diameter
    top, bottom = max(0, int(centre[1] - reach)), min(shape[0], int(centre[1] + reach) + 2)
    left, right = max(0, int(centre[0] - reach)), min(shape[1], int(centre[0] + reach) + 2)
    rows, cols = np.ogrid[top:bottom, left:right]
    radius = np.hypot(cols - centre[0], rows - centre[1])
    zone[top:bottom, left:right] = (radius >= diameter) & (radius <= reach)
    return zone
