"""results/scale/camera_shift.md: F1 of each model on test photographs changed as another camera would change them.

For each dataset's test split (the first --images photographs), each fixed camera change of
m2unet.evaluation.camera_shift (another resolution, defocus, low contrast, JPEG, and all at once), each model runs as
`m2unet segment` runs it (FOV estimated from the changed photograph, scaled as its weights say, OpenVINO fp32) and its
map at the weights' stored threshold is scored against the changed manual label inside the changed FOV: F1 pooled
over the photographs. Models: the per-dataset model closest in scale (the former `--model auto`), the shipped
`universal` with and without contrast restoration (m2unet.data.contrast), and any --weights NAME=FILE; with --auto,
`universal` and each --weights model also as `--model auto` runs it (diameter searched, then flipped) and searched only. The photographs are test photographs of the datasets the universal model
was trained on; only the changes are new to it, so this measures robustness to camera changes, not to new eyes.

    .venv/bin/python benchmarks/camera_shift.py [--images 4] [--auto] [--weights NAME=FILE ...] [--weights-only]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import m2unet
from m2unet.data import estimate_fov_mask, load_dataset, write_atomic
from m2unet.evaluation.camera_shift import CAMERA_CHANGES
from m2unet.evaluation.metrics import binary_counts, f1_score
from m2unet.inference.pipeline import fov_width
from m2unet.system import cpu_model
from m2unet.weights import closest_dataset_model, pretrained_path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "results" / "scale"
DATASETS = ("drive", "chase_db1", "hrf")
CLOSEST = "closest per-dataset"
UNRESTORED = "universal, contrast kept"  # the shipped universal model without contrast restoration (m2unet.data.contrast)
SEARCHED = "auto"  # with --auto: the shipped universal model as `--model auto` runs it: diameter searched, kept view flipped
SEARCH_ONLY = "auto --no-tta"  # the same without the flips: what the search alone does
# with --auto, each searched column's name suffix and how it runs (m2unet.vessels's search_diameter and tta)
AUTO_WAYS = {SEARCH_ONLY: {"search_diameter": True, "tta": False}, SEARCHED: {"search_diameter": True, "tta": True}}


def shown(weights: Path | None) -> str:
    """A model's file as the table names it: relative to the repository when inside it."""
    if weights is None:
        return "drive / chase_db1 / hrf by FOV width"
    resolved = weights.resolve()
    return str(resolved.relative_to(REPO)) if resolved.is_relative_to(REPO) else str(weights)


def vessels(image: np.ndarray, weights: Path, restore_contrast: bool = True, **ways) -> np.ndarray:
    """The binary map `m2unet segment` writes for this photograph (its FOV estimated, scaled as the weights say; with
    ``restore_contrast`` False, a flat photograph keeps its contrast; ``ways``: one of :data:`AUTO_WAYS`)."""
    return m2unet.vessels(image, weights=weights, backend="openvino", precision="fp32", restore_contrast=restore_contrast,
                          **ways)


def counts_of(models: dict[str, Path | None], dataset: str, images: int, ways: dict[str, dict]) -> dict[str, dict[str, np.ndarray]]:
    """{change: {model: summed [tp, fp, fn]}} over the first ``images`` test photographs of ``dataset``; the models
    named in ``ways`` run that way (searched, flipped)."""
    totals = {change: {model: np.zeros(3, dtype=np.int64) for model in models} for change in CAMERA_CHANGES}
    for index, sample in enumerate(load_dataset(dataset, "test")):
        if index == images:
            break
        for change_name, change in CAMERA_CHANGES.items():
            image, label, mask = change(sample.image, sample.label, sample.mask)
            for model, weights in models.items():
                chosen = weights or pretrained_path(closest_dataset_model(fov_width(estimate_fov_mask(image), image.shape[1])))
                c = binary_counts(vessels(image, chosen, restore_contrast=model != UNRESTORED, **ways.get(model, {})), label, mask)
                totals[change_name][model] += (c["tp"], c["fp"], c["fn"])
        print(f"{dataset} {sample.name}: {len(CAMERA_CHANGES)} changes × {len(models)} models", flush=True)
    return totals


def table(f1: dict, models: list[str]) -> list[str]:
    lines = ["| camera change | test set | " + " | ".join(f"`{m}`" for m in models) + " |", "|---|---|" + "---:|" * len(models)]
    for change in CAMERA_CHANGES:
        for dataset in DATASETS:
            best = max(f1[change][dataset][m] for m in models)
            cells = [f"**{v:.4f}**" if v == best else f"{v:.4f}" for v in (f1[change][dataset][m] for m in models)]
            lines.append(f"| {change} | {dataset} | " + " | ".join(cells) + " |")
    means = {m: np.mean([f1[c][d][m] for c in CAMERA_CHANGES if c != "as it is" for d in DATASETS]) for m in models}
    lines.append("| mean over the changed photographs | all | " + " | ".join(f"{means[m]:.4f}" for m in models) + " |")
    return lines


def shipped_columns(models: dict, auto: bool) -> str:
    """The sentences that say what the columns of the shipped models hold: only those the table has (`--weights-only`
    leaves them out)."""
    said = []
    if CLOSEST in models:
        said.append("The closest per-dataset model is chosen per photograph by its FOV width (the former `--model auto`)")
    if UNRESTORED in models:
        said.append(f"`{UNRESTORED}` is the shipped universal model with contrast restoration turned off")
    if SEARCHED in models:
        said.append(f"`{SEARCHED}` is the shipped universal model as `--model auto` runs it, each photograph's FOV diameter "
                    f"searched and the kept view's flips averaged; `{SEARCH_ONLY}` the search alone")
    if auto and any(name.endswith(f", {SEARCHED}") for name in models):
        said.append(f"`NAME, {SEARCHED}` is the --weights model NAME as `--model auto` would run it were it the shipped "
                    f"universal model (searched, then flipped), `NAME, {SEARCH_ONLY}` searched only")
    return "; ".join(said) + "." if said else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4, help="test photographs per dataset")
    parser.add_argument("--weights", action="append", default=[], metavar="NAME=FILE", help="another model to compare")
    parser.add_argument("--out", type=Path, default=OUT / "camera_shift.md")
    parser.add_argument("--auto", action="store_true",
                        help="also the universal model, and each --weights model, as --model auto runs it (searched, then "
                             "flipped) and searched only")
    parser.add_argument("--weights-only", action="store_true",
                        help="only the --weights models: a candidate measured beside a committed table of the shipped ones")
    args = parser.parse_args()
    if args.weights_only and not args.weights:
        parser.error("--weights-only needs at least one --weights NAME=FILE")
    models: dict[str, Path | None] = {} if args.weights_only else {
        CLOSEST: None, "universal": pretrained_path("universal"), UNRESTORED: pretrained_path("universal")}
    ways = {}
    if args.auto and not args.weights_only:
        models |= {way: pretrained_path("universal") for way in AUTO_WAYS}
        ways |= AUTO_WAYS
    for item in args.weights:
        name, _, file = item.partition("=")
        models[name] = Path(file)
        if args.auto:  # the same file as `--model auto` would run it were it the shipped universal model
            models |= {f"{name}, {way}": Path(file) for way in AUTO_WAYS}
            ways |= {f"{name}, {way}": run for way, run in AUTO_WAYS.items()}
    start = time.perf_counter()
    per_dataset = {d: counts_of(models, d, args.images, ways) for d in DATASETS}
    f1 = {c: {d: {m: float(f1_score(*per_dataset[d][c][m])) for m in models} for d in DATASETS} for c in CAMERA_CHANGES}
    names = list(models)
    lines = [
        "# F1 under camera changes: per-dataset model against universal", "",
        f"Generated by `python benchmarks/camera_shift.py --images {args.images}" + (" --auto" if args.auto else "")
        + (" --weights-only" if args.weights_only else "")
        + "".join(f" --weights {w}" for w in args.weights) + (f" --out {args.out}" if args.out.resolve() != OUT / "camera_shift.md" else "") + f"` ({time.perf_counter() - start:.0f} s, {cpu_model()}). "
        f"F1 inside the FOV at each model's stored threshold, pooled over the first {args.images} test photographs of each "
        "dataset, each changed as m2unet.evaluation.camera_shift says (label and FOV changed alike) and run as "
        "`m2unet segment` runs it. Best per row in bold. " + shipped_columns(models, args.auto), "",
        *table(f1, names), "",
        "Models: " + "; ".join(f"`{n}` = {shown(w)}" for n, w in models.items()) + ".",
    ]
    write_atomic(args.out, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))
    write_atomic(args.out.with_suffix(".json"), lambda tmp: Path(tmp).write_text(json.dumps(f1, indent=1, ensure_ascii=False)))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
