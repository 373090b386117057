"""How well does `m2unet.measure` find the optic disc? DRIVE (40 images), CHASE_DB1 (28) and HRF (45).

None of the three datasets has optic disc labels. Two checks:
1. An independent cue: the disc is the brightest large spot of the photograph. The photograph's channel
   mean is blurred with a Gaussian of σ = 1/4 of the disc diameter inside the FOV (shrunk by one disc
   radius so the bright FOV rim does not win), and its maximum is the "brightest spot". We report the
   distance of our estimate (from the first observer's vessel label, i.e. from vessels alone) to it, in disc
   diameters (DD). The brightest spot can itself be wrong (a bright lesion, a reflex), so:
2. A hand check: contact sheets of every photograph with our disc (yellow circle, one DD) and the
   brightest spot (cyan cross), results/measure/disc_<dataset>.jpg; the counts a person made looking at them
   are in results/measure/optic_disc.md.

    PYTHONPATH=src .venv/bin/python benchmarks/measure_disc.py [drive chase_db1 hrf]   # writes results/measure/disc_NAME.jpg / .csv
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage
from tqdm import tqdm

from m2unet.data import load_dataset, read_binary, read_image, write_atomic
from m2unet.measure import measure
from m2unet.measure.batch import write_csv

OUT = Path(__file__).resolve().parents[1] / "results" / "measure"
FIELD_DEG = {"drive": 45.0, "chase_db1": 30.0, "hrf": 45.0}
THUMB = 180


def brightest_spot(image: np.ndarray, fov: np.ndarray, diameter: float) -> tuple[float, float]:
    step = max(1, int(diameter / 20))
    grey = image[::step, ::step].mean(axis=2)
    inside = ndimage.binary_erosion(fov[::step, ::step], iterations=max(1, int(diameter / 2 / step)))
    blurred = ndimage.gaussian_filter(np.where(inside, grey, 0.0), diameter / 4 / step)
    weight = ndimage.gaussian_filter(inside.astype(float), diameter / 4 / step)
    score = np.where(inside, blurred / np.maximum(weight, 1e-6), -1.0)
    row, col = np.unravel_index(int(np.argmax(score)), score.shape)
    return col * step, row * step


def thumbnail(image: np.ndarray, ours: tuple[float, float, float], bright: tuple[float, float], label: str) -> Image.Image:
    h, w = image.shape[:2]
    scale = THUMB / max(h, w)
    picture = Image.fromarray(np.rint(image * 255).astype(np.uint8)).resize((max(1, round(w * scale)), max(1, round(h * scale))))
    pen = ImageDraw.Draw(picture)
    x, y, d = (v * scale for v in ours)
    pen.ellipse((x - d / 2, y - d / 2, x + d / 2, y + d / 2), outline=(255, 255, 0), width=2)
    bx, by = bright[0] * scale, bright[1] * scale
    pen.line((bx - 5, by, bx + 5, by), fill=(0, 255, 255), width=2)
    pen.line((bx, by - 5, bx, by + 5), fill=(0, 255, 255), width=2)
    pen.text((3, 3), label, fill=(255, 255, 255))
    return picture


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name in sys.argv[1:] or FIELD_DEG:
        rows = []
        field = FIELD_DEG[name]
        items = [item for split in ("train", "test") for item in load_dataset(name, split).items]
        thumbs = []
        for item in tqdm(items, desc=name, unit="image", file=sys.stderr):
            image = read_image(item.image)
            label = read_binary(item.label, image.shape[:2])
            fov = read_binary(item.mask, image.shape[:2]) if item.mask else np.ones(image.shape[:2], bool)
            summary = measure(label, fov, field_of_view_deg=field).summary
            ours = (summary["disc_x_px"], summary["disc_y_px"], summary["disc_diameter_px"])
            bright = brightest_spot(image, fov, ours[2])
            distance = math.hypot(ours[0] - bright[0], ours[1] - bright[1]) / ours[2]
            rows.append({"dataset": name, "image": item.name, "disc_x_px": ours[0], "disc_y_px": ours[1], "disc_diameter_px": ours[2],
                         "brightest_x_px": bright[0], "brightest_y_px": bright[1], "distance_dd": distance})
            thumbs.append(thumbnail(image, ours, bright, item.name))
        columns = 8
        tw, th = thumbs[0].size
        sheet = Image.new("RGB", (columns * tw, math.ceil(len(thumbs) / columns) * th))
        for index, thumb in enumerate(thumbs):
            sheet.paste(thumb, ((index % columns) * tw, (index // columns) * th))
        write_atomic(OUT / f"disc_{name}.jpg", lambda tmp, sheet=sheet: sheet.save(tmp, format="JPEG", quality=85))
        write_csv(OUT / f"disc_{name}.csv", tuple(rows[0]), rows)
        d = np.array([row["distance_dd"] for row in rows])
        print(f"{name}: {len(d)} images, distance to the brightest spot median {np.median(d):.2f} DD, "
              f"≤ 0.5 DD {np.count_nonzero(d <= 0.5)}, ≤ 1 DD {np.count_nonzero(d <= 1.0)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
