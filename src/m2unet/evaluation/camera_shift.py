"""Fixed camera changes of a labelled photograph, to measure how a model's map holds on cameras we do not have.

Another camera changes a fundus photograph in a few ways: its resolution (so the vessels' width in pixels), focus,
contrast and compression. Each change here takes the photograph with its manual label and FOV mask and returns the
three changed alike (the label and mask resized with the photograph), so F1 is measured against the manual label on
the changed photograph. Unlike the random training augmentations (:mod:`m2unet.training.augment`) they are fixed and
named, so a table (``benchmarks/camera_shift.py``) or a figure (``scripts/camera_figure.py``) reruns bit for bit.
Sizes are relative to the FOV diameter, so one change means the same on DRIVE (FOV ≈ 540 px) and on HRF (≈ 3260 px).
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image

from ..data.scale import fov_box, fov_diameter, resize_image, resize_plane

Photo = tuple[np.ndarray, np.ndarray, np.ndarray]  # (image H×W×3 float in [0, 1], label bool H×W, FOV mask bool H×W)
Change = Callable[[np.ndarray, np.ndarray, np.ndarray], Photo]


def as_8bit(image: np.ndarray) -> np.ndarray:
    """A float image in [0, 1] as uint8, as a camera's file stores it."""
    return np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)


def resized_by(factor: float) -> Change:
    """The photograph, label and FOV resized by ``factor`` (a camera of another resolution)."""

    def change(image: np.ndarray, label: np.ndarray, mask: np.ndarray) -> Photo:
        size = (max(16, round(image.shape[0] * factor)), max(16, round(image.shape[1] * factor)))
        if size == image.shape[:2]:
            return image, label, mask
        return (resize_image(image, size), resize_plane(label.astype(np.float32), size) >= 0.5,
                resize_plane(mask.astype(np.float32), size) >= 0.5)

    return change


def resized_to(diameter: int) -> Change:
    """The photograph resized so that its FOV is ``diameter`` px across."""

    def change(image: np.ndarray, label: np.ndarray, mask: np.ndarray) -> Photo:
        return resized_by(diameter / max(fov_diameter(mask), 1))(image, label, mask)

    return change


def blurred(sigma: float) -> Change:
    """Defocus: a Gaussian blur of ``sigma`` × the FOV diameter (0.002 is 2 px on a 1000-px FOV)."""

    def change(image: np.ndarray, label: np.ndarray, mask: np.ndarray) -> Photo:
        from scipy.ndimage import gaussian_filter

        pixels = sigma * fov_diameter(mask)
        return np.stack([gaussian_filter(image[..., c], pixels) for c in range(3)], axis=2), label, mask

    return change


def low_contrast(keep: float) -> Change:
    """Inside the FOV, each pixel moved towards the FOV's mean colour so that ``keep`` of its contrast is left."""

    def change(image: np.ndarray, label: np.ndarray, mask: np.ndarray) -> Photo:
        mean = image[mask].mean(axis=0) if mask.any() else image.mean(axis=(0, 1))
        return np.where(mask[..., None], mean + keep * (image - mean), image).astype(np.float32), label, mask

    return change


def jpeg(quality: int) -> Change:
    """The photograph saved as 8-bit JPEG at ``quality`` (1–95) and read back."""

    def change(image: np.ndarray, label: np.ndarray, mask: np.ndarray) -> Photo:
        buffer = io.BytesIO()
        Image.fromarray(as_8bit(image)).save(buffer, format="JPEG", quality=quality)
        return np.asarray(Image.open(buffer), dtype=np.float32) / 255.0, label, mask

    return change


def noisy(sigma: float) -> Change:
    """Sensor noise: Gaussian noise of standard deviation ``sigma`` (in [0, 1] units) on every pixel, border included,
    stored as 8 bits (fixed seed, so a table reruns bit for bit)."""

    def change(image: np.ndarray, label: np.ndarray, mask: np.ndarray) -> Photo:
        noise = np.random.default_rng(0).normal(0.0, sigma, image.shape)
        return as_8bit(image + noise).astype(np.float32) / 255.0, label, mask

    return change


def exposed(factor: float) -> Change:
    """Under- (``factor`` < 1) or over-exposure (> 1, clipped at white), stored as 8 bits."""

    def change(image: np.ndarray, label: np.ndarray, mask: np.ndarray) -> Photo:
        return as_8bit(image * factor).astype(np.float32) / 255.0, label, mask

    return change


def cropped(fraction: float) -> Change:
    """A square of ``fraction`` × the FOV diameter around the FOV's centre: a camera whose field fills the frame, so the
    photograph has no black border and its FOV, as estimated, is the whole frame (of another size than the eye's)."""

    def change(image: np.ndarray, label: np.ndarray, mask: np.ndarray) -> Photo:
        top, left, height, width = fov_box(mask)
        half = max(8, round(fraction * max(height, width) / 2))
        row, col = top + height // 2, left + width // 2
        rows = slice(max(0, row - half), min(image.shape[0], row + half))
        cols = slice(max(0, col - half), min(image.shape[1], col + half))
        return image[rows, cols], label[rows, cols], mask[rows, cols]

    return change


def framed(height: float, width: float) -> Change:
    """The FOV centred in a black frame of ``height`` × ``width`` FOV diameters, cut where the frame is smaller (a
    camera whose sensor crops the disc at the top and bottom, as STARE's and Messidor's do)."""

    def change(image: np.ndarray, label: np.ndarray, mask: np.ndarray) -> Photo:
        top, left, box_height, box_width = fov_box(mask)
        diameter = fov_diameter(mask)
        rows, cols = max(16, round(height * diameter)), max(16, round(width * diameter))
        first_row, first_col = top + box_height // 2 - rows // 2, left + box_width // 2 - cols // 2
        changed = []
        for plane in (image, label, mask):
            canvas = np.zeros((rows, cols) + plane.shape[2:], plane.dtype)
            source = np.s_[max(first_row, 0):min(first_row + rows, plane.shape[0]), max(first_col, 0):min(first_col + cols, plane.shape[1])]
            target = np.s_[source[0].start - first_row:source[0].stop - first_row, source[1].start - first_col:source[1].stop - first_col]
            canvas[target] = plane[source]
            changed.append(canvas)
        return changed[0], changed[1], changed[2]

    return change


def notched(size: float) -> Change:
    """A black tab of ``size`` × the FOV diameter cut into the FOV's right edge at mid-height (the notch some cameras
    print into the disc to mark its orientation); the label and mask lose it too."""

    def change(image: np.ndarray, label: np.ndarray, mask: np.ndarray) -> Photo:
        top, left, box_height, box_width = fov_box(mask)
        half = max(1, round(size * fov_diameter(mask) / 2))
        middle, right = top + box_height // 2, left + box_width
        tab = np.s_[max(0, middle - half):middle + half, max(0, right - 2 * half):right]
        image, label, mask = image.copy(), label.copy(), mask.copy()
        image[tab], label[tab], mask[tab] = 0, False, False
        return image, label, mask

    return change


def captioned(*lines: str) -> Change:
    """White text in the frame's top-left corner (patient, date, eye), as screening cameras print into the black
    border; the default three short lines stay clear of a disc that leaves the frame's corners black."""

    def change(image: np.ndarray, label: np.ndarray, mask: np.ndarray) -> Photo:
        from PIL import ImageDraw, ImageFont

        picture = Image.fromarray(as_8bit(image))
        draw = ImageDraw.Draw(picture)
        step = max(10, image.shape[0] // 60)  # text about as tall, relative to the frame, as cameras print it
        font = ImageFont.load_default(size=step)
        for index, line in enumerate(lines or ("ID 000000", "2026-12-02", "OD 45 deg")):
            draw.text((step, round(step * 1.3 * (1 + index))), line, fill=(255, 255, 255), font=font)
        return np.asarray(picture, dtype=np.float32) / 255.0, label, mask

    return change


def chained(*changes: Change) -> Change:
    """The changes applied one after another."""

    def change(image: np.ndarray, label: np.ndarray, mask: np.ndarray) -> Photo:
        for step in changes:
            image, label, mask = step(image, label, mask)
        return image, label, mask

    return change


def unchanged(image: np.ndarray, label: np.ndarray, mask: np.ndarray) -> Photo:
    return image, label, mask


# What benchmarks/camera_shift.py measures. "screening-like" is the combination the issue names for high-resolution
# screening photographs: another resolution, low contrast and strong JPEG compression at once.
CAMERA_CHANGES: dict[str, Change] = {
    "as it is": unchanged,
    "FOV 600 px": resized_to(600),
    "FOV 2400 px": resized_to(2400),
    "defocus blur (σ 0.2 % of the FOV)": blurred(0.002),
    "low contrast (40 % left)": low_contrast(0.4),
    "JPEG quality 20": jpeg(20),
    "no border: the FOV's central 70 %": cropped(0.7),
    "screening-like: FOV 1600 px, 60 % contrast, JPEG 30": chained(resized_to(1600), low_contrast(0.6), jpeg(30)),
}

# Photographs a screening programme would call poor or ungradable, beyond what CAMERA_CHANGES asks a model to hold:
# what benchmarks/review_flags.py uses, beside CAMERA_CHANGES, to see which maps m2unet.inference.review flags.
POOR_PHOTOGRAPHS: dict[str, Change] = {
    "out of focus (σ 0.5 % of the FOV)": blurred(0.005),
    "far out of focus (σ 1 %)": blurred(0.01),
    "JPEG quality 5": jpeg(5),
    "sensor noise (σ 0.08)": noisy(0.08),
    "under-exposed (× 0.25)": exposed(0.25),
    "over-exposed (× 2.5)": exposed(2.5),
    "15 % contrast left": low_contrast(0.15),
}
