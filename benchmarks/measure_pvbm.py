"""`m2unet.measure` side by side with PVBM (Fhima et al., the Python Vasculature BioMarker toolbox) on the
same masks: the DRIVE test set's first-observer labels inside the FOV masks.

PVBM is installed for this benchmark only, without its declared dependencies (its geometry and fractal
modules need only numpy, scipy and scikit-image): ``.venv/bin/pip install --no-deps pvbm``. PVBM needs the
optic disc centre and radius: both tools get ours (``m2unet.measure``'s estimate). PVBM's multifractal
D0 is run as its README runs it (25 rotations, the best chosen).

    PYTHONPATH=src .venv/bin/python benchmarks/measure_pvbm.py     # writes results/measure/pvbm.md
    PYTHONPATH=src .venv/bin/python benchmarks/measure_pvbm.py --ours-only   # recompute our columns, keep PVBM's (slow) ones
"""

from __future__ import annotations

import csv
import math
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from m2unet.data import load_dataset, read_binary, write_atomic
from m2unet.measure import measure
from m2unet.measure.batch import write_csv

OUT = Path(__file__).resolve().parents[1] / "results" / "measure"
ROWS = (  # (label, our column, PVBM column)
    ("fractal dimension D0", "D0", "pvbm_D0"),
    ("median tortuosity (arc / chord per segment)", "tortuosity_median", "pvbm_median_tortuosity"),
    ("tortuosity index Σ arc / Σ chord", "tortuosity_index", "pvbm_tortuosity_index"),
    ("centreline length, px", "centreline_length_px", "pvbm_overall_length"),
    ("end points", "end_points", "pvbm_end_points"),
    ("junctions (ours: bifurcations + crossings; PVBM: intersection points)", "junctions", "pvbm_intersection_points"),
    ("median branching angle, °", "branching_angle_median_deg", "pvbm_median_branching_angle"),
)


def ours(vessels: np.ndarray, fov: np.ndarray, name: str) -> dict:
    result = measure(vessels, fov, name=name)
    summary = result.summary
    lengths = np.array([row["length_px"] for row in result.segments])
    chords = np.array([row["chord_px"] for row in result.segments])
    angles = [row["angle_deg"] for row in result.junctions if row["kind"] == "bifurcation"]
    return {"image": name, "D0": summary["fractal_dimension"], "tortuosity_median": summary["tortuosity_median"],
            "tortuosity_index": lengths.sum() / chords.sum(), "centreline_length_px": summary["centreline_length_px"],
            "end_points": summary["end_points"], "junctions": summary["bifurcations"] + summary["crossings"],
            "branching_angle_median_deg": float(np.median(angles)) if angles else math.nan,
            "disc": (summary["disc_x_px"], summary["disc_y_px"], summary["disc_diameter_px"] / 2)}


def pvbm(vessels: np.ndarray, disc: tuple[float, float, float]) -> dict:
    from PVBM.FractalAnalysis import MultifractalVBMs
    from PVBM.GeometryAnalysis import GeometricalVBMs
    from skimage.morphology import skeletonize

    segmentation = vessels.astype(np.float64)
    skeleton = skeletonize(vessels).astype(np.float64)
    x, y, radius = disc
    area, ti, med_tor, length, median_angle, _start, end, inter = GeometricalVBMs().compute_geomVBMs(
        segmentation, skeleton, int(round(x)), int(round(y)), int(round(radius)))[0]
    d0, _d1, _d2, _sl = MultifractalVBMs(n_rotations=25, optimize=True, min_proba=0.0001, maxproba=0.9999).compute_multifractals(segmentation.copy())
    return {"pvbm_D0": float(d0), "pvbm_median_tortuosity": float(med_tor), "pvbm_tortuosity_index": float(ti),
            "pvbm_overall_length": float(length), "pvbm_end_points": float(end), "pvbm_intersection_points": float(inter),
            "pvbm_median_branching_angle": float(median_angle)}


def main() -> int:
    sys.setrecursionlimit(100000)  # PVBM walks the skeleton recursively
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.time()
    ours_only = "--ours-only" in sys.argv
    previous = {row["image"]: row for row in csv.DictReader(open(OUT / "pvbm_per_image.csv"))} if ours_only else {}
    rows, seconds_ours, seconds_pvbm = [], [], []
    for item in tqdm(load_dataset("drive", "test").items, desc="DRIVE 1st observer", unit="image", file=sys.stderr):
        vessels = read_binary(item.label)
        fov = read_binary(item.mask, vessels.shape)
        vessels &= fov
        start = time.perf_counter()
        row = ours(vessels, fov, item.name)
        seconds_ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        disc = row.pop("disc")
        if ours_only:
            row.update({key: float(value) for key, value in previous[item.name].items() if key.startswith("pvbm_")})
        else:
            row.update(pvbm(vessels, disc))
            seconds_pvbm.append(time.perf_counter() - start)
        rows.append(row)

    write_csv(OUT / "pvbm_per_image.csv", tuple(rows[0]), rows)
    lines = [
        "# `m2unet.measure` beside PVBM on the same masks", "",
        f"Command: `PYTHONPATH=src .venv/bin/python benchmarks/measure_pvbm.py` ({time.time() - started:.0f} s; PVBM {PVBM_VERSION}, "
        "installed with `pip install --no-deps pvbm`). Masks: the 20 DRIVE test first-observer labels inside the FOV masks; "
        "both tools get our optic disc estimate. Per image: [pvbm_per_image.csv](pvbm_per_image.csv).", "",
        "| measure | m2unet (mean ± sd) | PVBM (mean ± sd) | Pearson r | mean ratio PVBM / ours |", "|---|---|---|---|---|",
    ]
    for label, mine, theirs in ROWS:
        a = np.array([row[mine] for row in rows], dtype=float)
        b = np.array([row[theirs] for row in rows], dtype=float)
        keep = np.isfinite(a) & np.isfinite(b)
        r = float(np.corrcoef(a[keep], b[keep])[0, 1]) if keep.sum() > 2 and a[keep].std() > 0 and b[keep].std() > 0 else math.nan
        lines.append(f"| {label} | {np.nanmean(a):.3f} ± {np.nanstd(a):.3f} | {np.nanmean(b):.3f} ± {np.nanstd(b):.3f} | {r:.2f} | "
                     f"{np.nanmean(b[keep] / a[keep]):.3f} |")
    if seconds_pvbm:
        lines += ["", f"Time per image on this machine (median, shared with other jobs): m2unet.measure {np.median(seconds_ours):.2f} s, "
                  f"PVBM geometry + multifractal {np.median(seconds_pvbm):.1f} s.", ""]
        write_atomic(OUT / "pvbm_timing.md", lambda tmp: Path(tmp).write_text(lines[-2] + "\n"))
    else:
        lines += ["", (OUT / "pvbm_timing.md").read_text() if (OUT / "pvbm_timing.md").exists() else "", ""]
    write_atomic(OUT / "pvbm.md", lambda tmp: Path(tmp).write_text("\n".join(lines)))
    print("\n".join(lines))
    return 0


try:
    from importlib.metadata import version

    PVBM_VERSION = version("pvbm")
except Exception:  # not installed: main() fails on the import with its own message
    PVBM_VERSION = "?"

if __name__ == "__main__":
    sys.exit(main())
