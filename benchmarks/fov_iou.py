"""IoU of the automatic FOV mask (m2unet.data.fov.estimate_fov_mask) against the datasets' own masks.

Every image of DRIVE (40, official masks), CHASE_DB1 (28, third-party masks: CHASE has no official ones)
and HRF (45, official masks), on the full uncropped image. Also prints each dataset's FOV width (columns
spanned by its masks), the numbers behind the per-dataset model rule (m2unet.weights.closest_dataset_model).

    .venv/bin/python benchmarks/fov_iou.py            # writes results/fov_iou.md
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from m2unet.data import estimate_fov_mask, load_dataset, read_binary, read_image, write_atomic
from m2unet.inference.pipeline import fov_width
from m2unet.weights import closest_dataset_model

OUT = Path(__file__).resolve().parents[1] / "results" / "fov_iou.md"


def main() -> int:
    rows, per_image = [], []
    started = time.time()
    for name in ("drive", "chase_db1", "hrf"):
        items = [item for split in ("train", "test") for item in load_dataset(name, split).items]
        ious, widths, seconds = [], [], []
        for item in items:
            if item.mask is None:
                print(f"{name} {item.name}: no reference mask, skipped", file=sys.stderr)
                continue
            image = read_image(item.image)
            reference = read_binary(item.mask, image.shape[:2])
            start = time.perf_counter()
            estimate = estimate_fov_mask(image)
            seconds.append(time.perf_counter() - start)
            iou = np.count_nonzero(estimate & reference) / max(1, np.count_nonzero(estimate | reference))
            ious.append(iou)
            widths.append(fov_width(reference, image.shape[1]))
            per_image.append((name, item.name, iou))
            print(f"{name:>9} {item.name:<14} IoU {iou:.4f}", flush=True)
        ious = np.array(ious)
        worst = min((p for p in per_image if p[0] == name), key=lambda p: p[2])
        rows.append((name, len(ious), ious.mean(), np.median(ious), ious.min(), worst[1], int(np.median(widths)), closest_dataset_model(int(np.median(widths))), 1000 * np.median(seconds)))
    lines = [
        "# Automatic FOV mask vs the datasets' masks",
        "",
        "Command: `.venv/bin/python benchmarks/fov_iou.py` (every image of each dataset, full uncropped size;",
        "CHASE_DB1 against the third-party masks in `CHASE_DB1_fov_mask_unofficial`, it has no official ones).",
        "Method: `m2unet.data.fov.estimate_fov_mask` (max over RGB, box blur, Otsu-based threshold, convex fill).",
        "",
        "| dataset | images | mean IoU | median IoU | min IoU | worst image | FOV width (median, px) | closest per-dataset model | ms per image |",
        "|---|---:|---:|---:|---:|---|---:|---|---:|",
    ]
    for name, count, mean, median, low, worst, width, auto, ms in rows:
        lines.append(f"| {name} | {count} | {mean:.4f} | {median:.4f} | {low:.4f} | {worst} | {width} | {auto} | {ms:.0f} |")
    lines += ["", f"Took {time.time() - started:.0f} s.", ""]
    write_atomic(OUT, lambda tmp: Path(tmp).write_text("\n".join(lines)))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
