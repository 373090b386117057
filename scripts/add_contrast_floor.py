"""Give the weights of a several-dataset run trained before contrast restoration its ``contrast_floor``.

`m2unet train --dataset A,B[,C]` records the floor itself since contrast restoration came in
(m2unet.data.contrast, m2unet.training.contrast): the lowest of its training datasets' median local contrasts, measured
on the same training photographs (held-out images left out, as the run's own preset holds them out). Weights trained
earlier lack it, and run flat photographs at their own contrast. This writes a copy that carries it, to be evaluated
and shipped like any run's weights; the input file is never changed.

    .venv/bin/python scripts/add_contrast_floor.py RUN/best.safetensors --out RUN/best-contrast.safetensors
"""

from __future__ import annotations

import argparse
from pathlib import Path

from m2unet.training.contrast import contrast_metadata
from m2unet.training.presets import HOLDOUT
from m2unet.weights import load_weights, save_weights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data-root", type=Path, default=None, help="Folder holding DRIVE/, CHASE_DB1/, HRF/ (default ../shared/datasets)")
    args = parser.parse_args(argv)
    if args.out.resolve() == args.weights.resolve():
        raise SystemExit(f"{args.out}: the copy must not replace the input")
    model, metadata = load_weights(args.weights)
    datasets = metadata.get("datasets") or []
    if len(datasets) < 2:
        raise SystemExit(f"{args.weights}: not a several-dataset run (its metadata names datasets {datasets})")
    found = contrast_metadata(datasets, {d: HOLDOUT[d] for d in datasets}, root=args.data_root, progress=True)
    out = save_weights(model, args.out, {**metadata, **found})
    print(f"wrote {out}: contrast floor {found['contrast_floor']} ({found['contrast_floor_choice']['median_by_dataset']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
