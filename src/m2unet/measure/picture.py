"""One picture per image, to check the measures at a glance: the vessel map (or photograph) dimmed, the
centreline coloured by segment width (or tortuosity), bifurcations as circles, crossings as squares, the
estimated optic disc and the zone B ring."""

from __future__ import annotations

import numpy as np

from .core import Measurements

COLOUR_RANGES = {"width": ("width_median_px", "width, px"), "tortuosity": ("tortuosity", "tortuosity")}


def _background(result: Measurements, photograph: np.ndarray | None) -> np.ndarray:
    if photograph is not None:
        base = np.rint(np.clip(photograph, 0.0, 1.0) * 110).astype(np.uint8)
    else:
        base = np.zeros((*result.vessels.shape, 3), dtype=np.uint8)
        base[result.vessels] = 70
    base[~result.fov] //= 2
    return base


def _scale_values(values: np.ndarray, by: str) -> tuple[np.ndarray, float, float]:
    finite = values[np.isfinite(values)]
    if by == "tortuosity":
        low, high = 1.0, max(1.1, float(np.percentile(finite, 95)) if finite.size else 1.1)
    else:
        low, high = (float(np.percentile(finite, 2)), float(np.percentile(finite, 98))) if finite.size else (0.0, 1.0)
        high = max(high, low + 1.0)
    return np.clip((np.nan_to_num(values, nan=low) - low) / (high - low), 0.0, 1.0), low, high


def draw(result: Measurements, photograph: np.ndarray | None = None, colour_by: str = "width") -> np.ndarray:
    """uint8 RGB picture (H×W×3) of a :class:`Measurements` (see the module docstring)."""
    from matplotlib import colormaps
    from PIL import Image, ImageDraw

    picture = Image.fromarray(_background(result, photograph))
    pen = ImageDraw.Draw(picture)
    h, w = result.vessels.shape
    thick = max(1, round(max(h, w) / 900))
    column, label = COLOUR_RANGES[colour_by]
    scaled, low, high = _scale_values(np.array([row[column] for row in result.segments], dtype=float), colour_by)
    cmap = colormaps["plasma"]
    for row, value in zip(result.segments, scaled, strict=True):
        colour = tuple(int(255 * c) for c in cmap(0.1 + 0.9 * value)[:3])
        points = result.line.smooth[row["path"]]
        pen.line([(float(x), float(y)) for y, x in points], fill=colour, width=thick)
    size = 3 * thick + 2
    for row in result.junctions:
        x, y = row["x"], row["y"]
        box = (x - size, y - size, x + size, y + size)
        if row["kind"] == "bifurcation":
            pen.ellipse(box, outline=(0, 230, 255), width=thick)
        else:
            pen.rectangle(box, outline=(255, 255, 255), width=thick)
    summary = result.summary
    if np.isfinite(summary["disc_x_px"]):
        cx, cy, d = summary["disc_x_px"], summary["disc_y_px"], summary["disc_diameter_px"]
        for radius, colour in ((d / 2, (255, 255, 0)), (d, (0, 255, 120)), (1.5 * d, (0, 255, 120))):
            pen.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), outline=colour, width=thick)
    _legend(pen, cmap, label, low, high, thick)
    return np.asarray(picture)


def _legend(pen, cmap, label: str, low: float, high: float, thick: int) -> None:
    """A colour bar with its range, and the key to the marks, in the top-left corner."""
    x0, y0, length = 8 * thick, 8 * thick, 120 * thick
    for i in range(length):
        colour = tuple(int(255 * c) for c in cmap(0.1 + 0.9 * i / (length - 1))[:3])
        pen.line([(x0 + i, y0), (x0 + i, y0 + 8 * thick)], fill=colour)
    pen.text((x0, y0 + 10 * thick), f"{label}: {low:.1f} - {high:.1f}", fill=(255, 255, 255))
    pen.text((x0, y0 + 22 * thick), "o bifurcation  [] crossing", fill=(0, 230, 255))
    pen.text((x0, y0 + 34 * thick), "yellow: disc  green: zone B", fill=(255, 255, 0))
