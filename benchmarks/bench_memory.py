"""Peak memory of `m2unet segment` on large images: an HRF photograph (3504×2336) and a 7000×5000 one.

The 7000×5000 JPEG is HRF 01_h resized (made in a temporary folder). Each run is one child process with
--overlay; its peak RSS (ru_maxrss from wait4) and wall time are recorded with the load average.

    .venv/bin/python benchmarks/bench_memory.py                         # writes results/bench/memory.md
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from child_process import measure_command, write_table
from PIL import Image

from m2unet.data import default_datasets_root
from m2unet.inference.backends import SHAPE_CACHE
from m2unet.system import cpu_model

OUT = Path(__file__).resolve().parents[1] / "results" / "bench"
# (model, precision): the default (`--model auto`: the universal model, diameter searched), int8 named, and the universal
# model at its stored diameter range (one pass, far fewer compiled shapes)
RUNS = (("auto", "auto"), ("auto", "int8"), ("universal", "auto"))


def measure(image: Path, model: str, precision: str, out: Path) -> dict:
    command = [sys.executable, "-m", "m2unet", "segment", str(image), "-o", str(out), "--overlay", "--model", model,
               "--backend", "openvino", "--precision", precision]
    return {"image": image.name, "size": "×".join(map(str, Image.open(image).size)), "model": model, "precision": precision,
            **measure_command(command)}


def main() -> int:
    hrf = default_datasets_root() / "HRF" / "images" / "01_h.jpg"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "hrf_01_h_7000x5000.jpg"
        Image.open(hrf).resize((7000, 5000), Image.BICUBIC).save(big, quality=92)
        for image in (hrf, big):
            for model, precision in RUNS:
                # each run writes into a folder of its own: segment skips a photograph whose outputs already exist,
                # and an earlier version of this script timed such skips for its second precision
                name = f"{image.stem}-{model}-{precision}"
                measure(image, model, precision, Path(tmp) / f"warm-{name}")  # first run exports / quantizes (cached)
                rows.append(measure(image, model, precision, Path(tmp) / f"out-{name}"))
                if not any("segmented 1/1" in line for line in rows[-1]["summary"]):
                    raise SystemExit(f"{name}: segment did not segment the photograph: {rows[-1]['summary']}")
                print(rows[-1], flush=True)
    lines = [
        "# Peak memory of `m2unet segment` on large images",
        "",
        "Command: `.venv/bin/python benchmarks/bench_memory.py` — one `m2unet segment IMAGE --overlay --model M --backend openvino "
        "--precision P` process per row (after a warm-up run that fills the export cache); peak RSS = ru_maxrss of that process.",
        "Wall time includes start-up (imports, model compile), JPEG decode, FOV mask, tiled inference and writing three PNGs.",
        "",
        f"On {cpu_model()}. `--model auto` keeps up to SHAPE_CACHE = {SHAPE_CACHE} compiled models, one per shape its diameter "
        "search runs (results/bench/shape_cache.md).",
        "",
        "| image | size | model | precision | peak RSS MB | wall s | load avg (1 min) before → after |",
        "|---|---|---|---|---:|---:|---|",
    ]
    for r in rows:
        lines.append(f"| {r['image']} | {r['size']} | {r['model']} | {r['precision']} | {r['peak_rss_mb']:.0f} | {r['wall_s']:.1f} | "
                     f"{r['loadavg_before'][0]:.2f} → {r['loadavg_after'][0]:.2f} |")
    lines.append("")
    write_table(OUT, "memory", lines, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
