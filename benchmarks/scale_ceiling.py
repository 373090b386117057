"""How much vessel detail survives a field of view of D pixels: the ceiling that scale normalisation puts on F1.

Each test label is scaled as a photograph would be (:class:`m2unet.data.scale.ScaleFrame`: FOV box, resize so that
the FOV diameter is D, antialiased), resized back, thresholded at 0.5 and scored against the original label inside
the FOV (pooled F1). A perfect model working at D could not score more. Also prints each dataset's FOV diameters.

    .venv/bin/python benchmarks/scale_ceiling.py        # writes results/scale/ceiling.md
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from m2unet.data import load_dataset, write_atomic
from m2unet.data.scale import fov_diameter, scale_frame

OUT = Path(__file__).resolve().parents[1] / "results" / "scale" / "ceiling.md"
DIAMETERS = (384, 512, 640, 768, 1024, 1280, 1536)


def ceiling_f1(samples, diameter: int) -> float:
    tp = fp = fn = 0
    for sample in samples:
        frame = scale_frame(sample.mask, diameter, tolerance=0.0)
        back = frame.to_image(frame.to_model(sample.label.astype(np.float32))) >= 0.5
        label, inside = sample.label, sample.mask
        tp += np.count_nonzero(back & label & inside)
        fp += np.count_nonzero(back & ~label & inside)
        fn += np.count_nonzero(~back & label & inside)
    return 2 * tp / max(1, 2 * tp + fp + fn)


def main() -> int:
    started = time.time()
    lines = ["# F1 ceiling of scale normalisation: test labels scaled to a FOV diameter D and back", "",
             "Command: `python benchmarks/scale_ceiling.py`. Pooled F1 inside the FOV of each test label against itself after",
             "`ScaleFrame` (crop to the FOV box, antialiased bilinear resize to FOV diameter D, bilinear back, ≥ 0.5).",
             "An upper bound for any model that works at D; the second human observer scores 0.79 (DRIVE) / 0.77 (CHASE_DB1).", ""]
    header = "| dataset | FOV diameter (median, px) | " + " | ".join(f"D = {d}" for d in DIAMETERS) + " |"
    lines += [header, "|---|---:|" + "---:|" * len(DIAMETERS)]
    for name in ("drive", "chase_db1", "hrf"):
        samples = list(load_dataset(name, "test"))
        diameters = [fov_diameter(s.mask) for s in samples]
        scores = [ceiling_f1(samples, d) for d in DIAMETERS]
        lines.append(f"| {name} | {int(np.median(diameters))} | " + " | ".join(f"{f:.3f}" for f in scores) + " |")
        print(lines[-1], flush=True)
    lines += ["", f"({time.time() - started:.0f} s)"]
    write_atomic(OUT, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
