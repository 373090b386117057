"""Do our vessel maps give a human's numbers? `m2unet.measure` on the DRIVE and CHASE_DB1 test sets.

For every test image, the measures of three binary maps inside the dataset's FOV mask: the shipped
model's map (``m2unet.vessels(path, model=...)``: at the threshold stored with the weights, as
``m2unet segment`` and ``m2unet evaluate`` use it), the first observer's label and the second observer's.
Each measure is compared model vs first observer beside second observer vs first: Pearson r, ICC(A,1)
(two-way, absolute agreement, single rater; McGraw & Wong 1996), mean absolute difference and mean
relative difference (|a − b| / b). Full, uncropped images; DRIVE at 45°, CHASE_DB1 at 30° field of view
(--field-of-view, for the µm columns and the disc diameter).

    PYTHONPATH=src .venv/bin/python benchmarks/measure_agreement.py
    # writes results/measure/agreement.md and results/measure/agreement_per_image.csv
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from m2unet import vessels
from m2unet.data import load_dataset, read_binary, write_atomic
from m2unet.measure import measure
from m2unet.measure.batch import write_csv

OUT = Path(__file__).resolve().parents[1] / "results" / "measure"
DATASETS = {"drive": ("DRIVE", 45.0), "chase_db1": ("CHASE_DB1", 30.0)}
MEASURES = ("vessel_density", "length_density_per_px", "fractal_dimension", "segments", "end_points", "bifurcations", "crossings",
            "tortuosity_median", "tortuosity_length_weighted", "curvature_deg_per_100px", "width_median_px", "width_p90_px",
            "zone_b_vessel_density", "zone_b_tortuosity_median", "zone_b_width_median_px")
RATERS = ("model", "first", "second")


def icc_a1(a: np.ndarray, b: np.ndarray) -> float:
    """ICC(A,1): two-way random effects, absolute agreement, single rater, for two raters."""
    y = np.stack([a, b], axis=1)
    n, k = y.shape
    grand = y.mean()
    ssr = k * ((y.mean(axis=1) - grand) ** 2).sum()
    ssc = n * ((y.mean(axis=0) - grand) ** 2).sum()
    sse = ((y - grand) ** 2).sum() - ssr - ssc
    msr, msc, mse = ssr / (n - 1), ssc / (k - 1), sse / ((n - 1) * (k - 1))
    denominator = msr + (k - 1) * mse + k * (msc - mse) / n
    return float((msr - mse) / denominator) if denominator > 0 else math.nan


def agreement(a: np.ndarray, b: np.ndarray) -> dict:
    """Pearson r, ICC(A,1), mean |a − b|, mean |a − b| / |b| of two raters' values (finite pairs only)."""
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if len(a) < 3:
        return {"r": math.nan, "icc": math.nan, "mad": math.nan, "mrd": math.nan, "mean_a": math.nan, "mean_b": math.nan}
    r = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else math.nan
    relative = np.abs(a - b) / np.where(b != 0, np.abs(b), np.nan)
    return {"r": r, "icc": icc_a1(a, b), "mad": float(np.abs(a - b).mean()), "mrd": float(np.nanmean(relative)),
            "mean_a": float(a.mean()), "mean_b": float(b.mean())}


def measure_dataset(name: str) -> list[dict]:
    label, field_deg = DATASETS[name]
    rows = []
    for item in tqdm(load_dataset(name, "test").items, desc=label, unit="image", file=sys.stderr):
        first = read_binary(item.label)
        fov = read_binary(item.mask, first.shape) if item.mask else np.ones(first.shape, bool)
        maps = {"model": vessels(item.image, model=name, fov_mask=fov), "first": first,
                "second": read_binary(item.second_label, first.shape)}
        for rater, vessel_map in maps.items():
            summary = measure(vessel_map, fov, field_of_view_deg=field_deg, name=item.name).summary
            rows.append({"dataset": label, "rater": rater, **summary})
    return rows


def disc_distance(rows: list[dict], rater: str) -> np.ndarray:
    """Per image: distance of the rater's disc centre from the first observer's, in disc diameters."""
    by = {(row["image"], row["rater"]): row for row in rows}
    out = []
    for image in sorted({row["image"] for row in rows}):
        a, b = by[(image, rater)], by[(image, "first")]
        out.append(math.hypot(a["disc_x_px"] - b["disc_x_px"], a["disc_y_px"] - b["disc_y_px"]) / b["disc_diameter_px"])
    return np.asarray(out)


def fmt(value: float, digits: int = 3) -> str:
    return "–" if not math.isfinite(value) else f"{value:.{digits}f}"


def table(rows: list[dict], label: str) -> list[str]:
    lines = [f"### {label} test set ({len(rows) // 3} images)", "",
             "| measure | mean 1st obs. | mean model | mean 2nd obs. | r model–1st | r 2nd–1st | ICC model–1st | ICC 2nd–1st | "
             "mean abs. diff. model / 2nd | mean rel. diff. model / 2nd |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for measure_name in MEASURES:
        values = {r: np.array([row[measure_name] for row in rows if row["rater"] == r], dtype=float) for r in RATERS}
        model, second = agreement(values["model"], values["first"]), agreement(values["second"], values["first"])
        digits = 4 if "density" in measure_name else 3
        lines.append(f"| `{measure_name}` | {fmt(model['mean_b'], digits)} | {fmt(model['mean_a'], digits)} | {fmt(second['mean_a'], digits)} | "
                     f"{fmt(model['r'], 2)} | {fmt(second['r'], 2)} | {fmt(model['icc'], 2)} | {fmt(second['icc'], 2)} | "
                     f"{fmt(model['mad'], digits)} / {fmt(second['mad'], digits)} | {100 * model['mrd']:.1f} % / {100 * second['mrd']:.1f} % |")
    for rater in ("model", "second"):
        distance = disc_distance(rows, rater)
        lines.append("")
        lines.append(f"Disc centre from the {'model' if rater == 'model' else '2nd observer'}'s map vs from the 1st observer's: median "
                     f"{np.median(distance):.2f} disc diameters, within 0.5 DD in {np.count_nonzero(distance <= 0.5)}/{len(distance)} images.")
    return lines + [""]


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.time()
    all_rows, sections = [], []
    for name in DATASETS:
        rows = measure_dataset(name)
        all_rows += rows
        sections += table(rows, DATASETS[name][0])
    write_csv(OUT / "agreement_per_image.csv", ("dataset", "rater", *[c for c in all_rows[0] if c not in ("dataset", "rater")]), all_rows)
    header = [
        "# Vessel measures: the shipped model's maps vs the human observers", "",
        "Command: `PYTHONPATH=src .venv/bin/python benchmarks/measure_agreement.py` "
        f"({time.time() - started:.0f} s). Per image: [agreement_per_image.csv](agreement_per_image.csv).", "",
        "Each test image is measured three times with `m2unet.measure` inside the dataset's FOV mask: on the shipped model's map "
        "(threshold stored with the weights), on the first observer's label and on the second observer's. Columns: means over images, "
        "then model vs 1st observer beside 2nd observer vs 1st: Pearson r, ICC(A,1) (absolute agreement), mean absolute and mean "
        "relative difference. Where the model's column is as good as the second observer's, our maps give a human's numbers.", "",
    ]
    write_atomic(OUT / "agreement.md", lambda tmp: Path(tmp).write_text("\n".join(header + sections)))
    print("\n".join(sections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
