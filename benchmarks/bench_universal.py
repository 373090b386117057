"""Latency of a whole photograph through `m2unet.segment` with the universal model against the per-dataset model.

The universal model runs a photograph at the FOV diameter its weights say (m2unet.data.scale.model_scale: a range of
diameters, or a first pass at the probe diameter and a second where its vessels have the trained width), so an HRF
photograph (3504×2336, FOV ≈ 3260 px) is shrunk before the network and the probability resized back; the HRF model
runs it at full resolution in tiles. Timed in one process after a warm-up call (compiled models cached), median of
--repeats, with FOV estimation, scaling (both passes of a width rule) and tiling included (decoding the file is not:
the image is already in memory). The table names the diameter each photograph ran at; the last columns run the
universal model with its diameter searched per photograph (`segment --search-diameter`, m2unet.data.scale.DiameterSearch),
then with flips of the diameter kept on top, which is what `--model auto` runs (m2unet.weights.auto_run).

    .venv/bin/python benchmarks/bench_universal.py --universal FILE     # writes results/scale/latency.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from m2unet.data import estimate_fov_mask, read_image, write_atomic
from m2unet.data.scale import fov_diameter
from m2unet.inference.backends import backend_name, named_backend
from m2unet.inference.pipeline import default_runtime, get_segmenter
from m2unet.weights import calibration_for, pretrained_path

REPO = Path(__file__).resolve().parents[1]
PHOTOS = {"DRIVE 565×584": ("DRIVE/test/images/01_test.tif", "drive"), "CHASE_DB1 999×960": ("CHASE_DB1/Image_11L.jpg", "chase_db1"),
          "HRF 3504×2336": ("HRF/images/06_h.jpg", "hrf")}


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def median_seconds(image, weights: Path, repeats: int, search_diameter: bool = False, tta: bool = False) -> tuple[float, int | None]:
    """(median seconds, FOV diameter the photograph ran at) of what `m2unet.segment` does with its defaults (and
    ``search_diameter``, ``tta``)."""
    name = named_backend(default_runtime("cpu", weights), "auto", "cpu", weights)
    segmenter = get_segmenter(weights, name, calibration=calibration_for(weights), search_diameter=search_diameter, tta=tta)  # as m2unet.segment builds it
    diameter = segmenter.run(image, estimate_fov_mask(image))[1]  # warm-up: export, compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        segmenter.run(image, estimate_fov_mask(image))
        times.append(time.perf_counter() - start)
    return statistics.median(times), diameter


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--universal", type=Path, default=None, help="universal weights [default: the shipped model]")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--datasets-root", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "scale" / "latency.md")
    args = parser.parse_args()
    universal = args.universal or pretrained_path("universal")
    load = os.getloadavg()[0]
    rows = []
    for label, (relative, own) in PHOTOS.items():
        image = read_image(args.datasets_root / relative)
        own_s, _ = median_seconds(image, pretrained_path(own), args.repeats)
        universal_s, ran_at = median_seconds(image, universal, args.repeats)
        searched_s, searched_at = median_seconds(image, universal, args.repeats, search_diameter=True)
        auto_s, _ = median_seconds(image, universal, args.repeats, search_diameter=True, tta=True)
        fov = fov_diameter(estimate_fov_mask(image))
        rows.append(f"| {label} | `{own}` {1000 * own_s:.0f} ms | {1000 * universal_s:.0f} ms (FOV {fov} → {ran_at or fov} px) | "
                    f"{own_s / universal_s:.2f}× | {1000 * searched_s:.0f} ms (→ {searched_at} px; {searched_s / universal_s:.1f}× the universal's time) | "
                    f"{1000 * auto_s:.0f} ms ({auto_s / searched_s:.1f}× the search alone, {auto_s / universal_s:.1f}× the universal) |")
        print(rows[-1], flush=True)
    backend = backend_name(default_runtime(), "auto")
    lines = [f"# Latency of one photograph: per-dataset model vs universal ({cpu_name()}, {os.cpu_count()} cores)", "",
             f"Command: `python benchmarks/bench_universal.py{' --universal ' + str(args.universal) if args.universal else ''}`; `m2unet.segment` "
             f"in one process with its default backend ({backend}), median of {args.repeats} after a warm-up; FOV estimate, scaling, "
             f"tiling and the map back included, file decoding not. 1-min load average at the start: {load:.1f} "
             f"(at the end: {os.getloadavg()[0]:.1f}).", "",
             "| photograph | per-dataset model | universal | speed-up | universal, `--search-diameter` | `--model auto`: searched, then flips (`--tta`) |",
             "|---|---:|---:|---:|---:|---:|", *rows]
    write_atomic(args.out, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
