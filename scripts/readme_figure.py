"""Make docs/sample_result.png: the bundled sample next to its vessel map, as `make demo` produces it.

Usage: python scripts/readme_figure.py [--model chase_db1]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import m2unet  # noqa: E402
from m2unet.data import read_image  # noqa: E402
from m2unet.weights import pretrained_path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="chase_db1")
    parser.add_argument("--out", default=str(REPO / "docs" / "sample_result.png"))
    args = parser.parse_args()
    sample = REPO / "examples" / "chase_db1_Image_11L.jpg"
    image = read_image(sample)
    weights = pretrained_path(args.model)
    probability = m2unet.segment(sample, model=args.model, backend="torch")  # as `m2unet segment` does, FOV masked
    figure, axes = plt.subplots(1, 2, figsize=(10, 5))
    axes[0].imshow(image)
    axes[0].set_title("examples/chase_db1_Image_11L.jpg")
    axes[1].imshow(probability, cmap="gray", vmin=0, vmax=1)
    axes[1].set_title(f"vessel probability ({weights.name})")
    for axis in axes:
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
