"""results/scale/width_fixed_point/: an exploratory alternative to the stored width rule (issue #16), not what `segment` does.

A model trained at one vessel width (`m2unet train --vessel-width 6`) stores a one-step WidthRule: probe at 1024 px,
then run at 1024 * m / w. This tries the rule's self-consistent form instead. m = geometric mean (per dataset, then
over datasets) of the map width of each held-out image at its dataset's training diameter; a photograph runs where
its own map is m px wide, found by iterating D <- D * m / w(D) from 1024 (ITERS passes, 3 here), then once more at D.
Each pass is the stored rule's own probe (WidthRule.probe_map; a resize within 5 % is skipped, the width then
measured at the photograph's own diameter). Prints the held-out widths, where the rule puts each held-out image against its training diameter, each test image's
diameter and the pass trail, and the pooled F1 inside the FOV at the stored threshold on the test split.

    python benchmarks/width_fixed_point.py RUNS/loo-drive-w6 drive 3 > results/scale/width_fixed_point/loo-drive-w6_on_drive.log
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from m2unet.data import load_dataset
from m2unet.data.fov import estimate_fov_mask
from m2unet.data.scale import WidthRule, predict_scaled
from m2unet.evaluation import metrics as M
from m2unet.evaluation.predictor import model_predictor
from m2unet.training.run_diameter import held_out_samples
from m2unet.weights import read_metadata


def main() -> None:
    run, test = Path(sys.argv[1]), sys.argv[2]
    iters = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    weights = run / "best.safetensors"
    predict, _, _ = model_predictor(weights, None, "fp32", "cpu", rescale=False)
    meta = read_metadata(weights)
    thr = float(meta["threshold"])
    diam = meta["run_vessel_width_choice"]["dataset_fov_diameters"]
    holdout = json.loads((run / "config.json").read_text())["config"]["holdout"]

    def at(image, mask, d):
        """(map width, FOV diameter it was measured at): the stored rule's own probe pass, probing at d."""
        width, measured_at, _, _ = WidthRule(int(d), 1.0, (512, 2560), thr).probe_map(predict, image, mask)
        return width, measured_at

    per: dict[str, list[float]] = {}
    for ds, s in held_out_samples(holdout):
        wd, _ = at(s.image, estimate_fov_mask(s.image), diam[ds])
        per.setdefault(ds, []).append(wd)
    m = float(np.exp(np.mean([np.mean(np.log(v)) for v in per.values()])))
    print("held-out map widths at training diameters", {k: [round(x, 2) for x in v] for k, v in per.items()}, "m", round(m, 3), flush=True)

    def fixed(image, mask):
        d, trail = 1024.0, []
        for _ in range(iters):
            wd, measured_at = at(image, mask, d)
            trail.append((round(measured_at), round(wd, 2)))
            d = float(np.clip(measured_at * m / max(wd, 0.5), 512, 2560))
        return d, trail

    for ds, s in held_out_samples(holdout):  # sanity: where does the rule put the held-out images?
        d, trail = fixed(s.image, estimate_fov_mask(s.image))
        print("held-out", ds, s.name, "target", diam[ds], "rule", round(d), trail, flush=True)
    counts, diameters = [], []
    started = time.time()
    for s in load_dataset(test, "test"):
        mask = estimate_fov_mask(s.image)
        d, trail = fixed(s.image, mask)
        counts.append(M.threshold_counts(predict_scaled(predict, s.image, mask, (int(d), int(d))), s.label, s.mask))
        diameters.append(round(d))
        print(s.name, round(d), trail, flush=True)
    f1 = M.f1_at(M.sum_counts(counts), thr)
    print("TEST", test, "F1 at stored", round(f1, 4), "diameters median", np.median(diameters), min(diameters), max(diameters),
          round(time.time() - started), "s")


if __name__ == "__main__":
    main()
