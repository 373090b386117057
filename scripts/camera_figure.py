"""docs/camera_robustness.png: one photograph at three resolutions and degraded, the per-dataset model's map beside
the universal model's, each with its F1 against the manual label (inside the FOV, at the model's stored threshold).

The photograph is a CHASE_DB1 test image (Image_11L, bundled in examples/, label from ../shared/datasets). Variants:
as it is (FOV ≈ 920 px), shrunk to half (≈ 460 px, a DRIVE-like camera), enlarged 3.5× (≈ 3200 px, an HRF-like
camera), defocus blur (Gaussian σ = 2 px), low contrast (blended 60 % towards its mean) and JPEG at quality 15.
The per-dataset model is what `--model auto` picked before the universal model existed (by FOV width), run with
scale normalisation (shrink only); the universal model runs as its weights say (m2unet.data.scale.model_scale).

Usage: python scripts/camera_figure.py [--universal FILE]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import m2unet  # noqa: E402
from m2unet.data import load_dataset, write_atomic  # noqa: E402
from m2unet.data.scale import fov_diameter  # noqa: E402
from m2unet.evaluation.camera_shift import blurred, jpeg, low_contrast, resized_by, unchanged  # noqa: E402
from m2unet.evaluation.metrics import binary_counts, f1_score  # noqa: E402
from m2unet.inference.pipeline import fov_width  # noqa: E402
from m2unet.weights import closest_dataset_model, pretrained_path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def variants(image: np.ndarray, label: np.ndarray, mask: np.ndarray):
    """(title, image, label, FOV) for each variant of the photograph (m2unet.evaluation.camera_shift)."""
    changes = [("as it is (FOV ≈ 920 px)", unchanged), ("shrunk to half (FOV ≈ 460 px)", resized_by(0.5)),
               ("enlarged 3.5× (FOV ≈ 3200 px)", resized_by(3.5)), ("defocus blur (σ 2 px)", blurred(2.0 / fov_diameter(mask))),
               ("low contrast (60 % to the mean)", low_contrast(0.4)), ("JPEG quality 15", jpeg(15))]
    return [(title, *change(image, label, mask)) for title, change in changes]


def segment(image: np.ndarray, mask: np.ndarray, weights: Path) -> np.ndarray:
    """The binary vessel map at the weights' stored threshold, run as `m2unet segment` runs it (scaled)."""
    return m2unet.vessels(image, weights=weights, backend="openvino", precision="fp32", fov_mask=mask)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--universal", type=Path, default=None, help="universal weights [default: the shipped model]")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "camera_robustness.png")
    args = parser.parse_args()
    universal = args.universal or pretrained_path("universal")
    sample = next(s for s in load_dataset("chase_db1", "test") if s.name == "Image_11L")
    rows = variants(sample.image, sample.label, sample.mask)
    figure, axes = plt.subplots(len(rows), 3, figsize=(10.5, 3.4 * len(rows)))
    for row, (title, image, label, mask) in zip(axes, rows, strict=True):
        per_dataset = pretrained_path(closest_dataset_model(fov_width(mask, image.shape[1])))
        row[0].imshow(np.clip(image, 0, 1))
        row[0].set_title(title, fontsize=10)
        for axis, weights, name in ((row[1], per_dataset, f"per-dataset ({per_dataset.stem})"), (row[2], universal, "universal")):
            vessels = segment(image, mask, weights)
            counts = binary_counts(vessels, label, mask)
            axis.imshow(vessels, cmap="gray")
            axis.set_title(f"{name}: F1 {f1_score(counts['tp'], counts['fp'], counts['fn']):.3f}", fontsize=10)
        for axis in row:
            axis.axis("off")
    figure.suptitle("CHASE_DB1 Image_11L: camera changes, per-dataset vs universal model", fontsize=12)
    figure.tight_layout(rect=(0, 0, 1, 0.98))
    write_atomic(args.out, lambda tmp: figure.savefig(tmp, dpi=60, format="png"))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
