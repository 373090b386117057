"""Seconds per training step and images/s of M2U-Net on this machine: fp32 vs channels_last vs bf16 autocast.

Usage:  .venv/bin/python benchmarks/train_speed.py [--steps 5] [--warmup 2] [--threads N] [--cases drive,chase_db1] [--append]
        [--out results/train_speed]

One training step = augmentation (kornia, batched) + forward + loss + backward + AdamW step, on random
data of the paper's sizes: DRIVE 544×544 batch 4, CHASE_DB1 960×960 batch 2. The load average is
recorded with every row because other processes may share the cores. Writes OUT.json and OUT.md;
with --append, rows of earlier runs with another thread count or case are kept.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from m2unet.models import create_model  # noqa: E402
from m2unet.training.augment import Augmenter  # noqa: E402
from m2unet.training.engine import hardware_description  # noqa: E402
from m2unet.training.losses import BCEJaccardLoss  # noqa: E402

CASES = {"drive": (544, 4), "chase_db1": (960, 2)}
MODES = {"fp32 contiguous": (False, False), "fp32 channels_last": (True, False), "bf16 autocast contiguous": (False, True), "bf16 autocast channels_last": (True, True)}


def measure(size: int, batch: int, channels_last: bool, bf16: bool, steps: int, warmup: int) -> dict:
    torch.manual_seed(0)
    model = create_model("m2unet")
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    criterion = BCEJaccardLoss("global")
    augment = Augmenter()
    data = torch.rand(batch, 5, size, size)
    data[:, 3:] = (data[:, 3:] > 0.8).float()
    step_times, augment_times = [], []
    load_before = os.getloadavg()[0]
    for i in range(warmup + steps):
        start = time.perf_counter()
        batch_data = augment(data)
        mid = time.perf_counter()
        images = batch_data[:, :3].contiguous(memory_format=torch.channels_last) if channels_last else batch_data[:, :3]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(images)
        loss = criterion(logits, batch_data[:, 3:4])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        end = time.perf_counter()
        if i >= warmup:
            step_times.append(end - start)
            augment_times.append(mid - start)
    step = sorted(step_times)[len(step_times) // 2]
    return {"seconds_per_step": round(step, 3), "augment_seconds_per_step": round(sorted(augment_times)[len(augment_times) // 2], 3),
            "images_per_second": round(batch / step, 2), "load_average_before": round(load_before, 2), "load_average_after": round(os.getloadavg()[0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", default="results/train_speed")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated: drive, chase_db1")
    parser.add_argument("--append", action="store_true", help="keep the rows of OUT.json that this run does not repeat")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    rows = []
    if args.append and out.with_suffix(".json").is_file():
        rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    for dataset in args.cases.split(","):
        size, batch = CASES[dataset]
        for mode, (channels_last, bf16) in MODES.items():
            result = measure(size, batch, channels_last, bf16, args.steps, args.warmup)
            row = {"dataset": dataset, "size": size, "batch": batch, "mode": mode, "threads": torch.get_num_threads(), **result}
            rows = [r for r in rows if (r["dataset"], r["mode"], r.get("threads")) != (dataset, mode, row["threads"])]
            if dataset == "drive":  # 20 training images → 5 steps per epoch
                row["est_minutes_300_epochs"] = round(result["seconds_per_step"] * 5 * 300 / 60, 1)
            elif dataset == "chase_db1":  # 8 training images → 4 steps per epoch
                row["est_minutes_300_epochs"] = round(result["seconds_per_step"] * 4 * 300 / 60, 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
    meta = {"hardware": hardware_description(torch.device("cpu")), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "python": platform.python_version(), "steps": args.steps, "warmup": args.warmup, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "cores": os.cpu_count(),
            "command": "python benchmarks/train_speed.py " + " ".join(sys.argv[1:])}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = [f"# Training speed ({meta['hardware']}, torch {meta['torch']}, {meta['date']})", "",
             f"Command: `{meta['command']}` — median of {args.steps} steps after {args.warmup} warm-up steps; a step is augmentation + forward + loss + backward + AdamW.",
             "Estimated 300-epoch time counts training steps only (DRIVE 5 steps/epoch, CHASE_DB1 4), not validation.", "",
             "| dataset | input | batch | threads | mode | s/step | of which augmentation | images/s | est. 300 epochs (min) | load avg before → after |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["dataset"] != "drive", r.get("threads") or 0, list(MODES).index(r["mode"]))):
        lines.append(f"| {r['dataset']} | {r['size']}² | {r['batch']} | {r.get('threads', '?')} | {r['mode']} | {r['seconds_per_step']:.3f} | {r['augment_seconds_per_step']:.3f} | "
                     f"{r['images_per_second']:.2f} | {r['est_minutes_300_epochs']} | {r['load_average_before']} → {r['load_average_after']} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
