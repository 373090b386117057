"""results/scale/file_layouts.md: `m2unet segment --model auto` on files laid out as other datasets' and cameras' are.

Other collections differ from ours not only in the photograph but in the file: STARE's PPMs cut the disc at the top
and bottom, Messidor's TIFFs and EyePACS's large JPEGs put it in a wide frame (EyePACS with text in the border), SLO
and some archives store one gray channel at 16 bits, and some cameras cut a notch into the disc. For the first
--images test photographs of each dataset, each layout below is made with m2unet.evaluation.camera_shift (label and
FOV changed alike) and written as that kind of file; the command line then runs on the folder exactly as a user runs
it, and each binary map it writes (``*_vessels.png``) is scored against the changed manual label inside the changed
FOV. The photographs are test photographs of the datasets the universal model was trained on; only the layout and
file are new.

    .venv/bin/python benchmarks/file_layouts.py [--images 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from m2unet.data import load_dataset, write_atomic
from m2unet.evaluation.camera_shift import Change, as_8bit, captioned, chained, framed, notched, resized_to, unchanged
from m2unet.evaluation.metrics import binary_counts, f1_score
from m2unet.system import cpu_model

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "results" / "scale" / "file_layouts.md"
DATASETS = ("drive", "chase_db1", "hrf")


def _rgb(suffix: str, **options) -> Callable[[np.ndarray, Path], Path]:
    def write(image: np.ndarray, stem: Path) -> Path:
        path = stem.with_suffix(suffix)
        Image.fromarray(as_8bit(image)).save(path, **options)
        return path

    return write


def _gray16(image: np.ndarray, stem: Path) -> Path:
    path = stem.with_suffix(".png")
    Image.fromarray(np.rint(np.clip(image[..., 1], 0, 1) * 65535).astype(np.uint16)).save(path)  # the green channel
    return path


def _rgba(image: np.ndarray, stem: Path) -> Path:
    path = stem.with_suffix(".png")
    Image.fromarray(np.dstack([as_8bit(image), np.full(image.shape[:2], 255, np.uint8)])).save(path)
    return path


# name: (change, writer). Frames are in FOV diameters: STARE 700×605 around a ~650-px disc, Messidor 2240×1488
# around ~1400 px, EyePACS 4752×3168 around ~2950 px.
LAYOUTS: dict[str, tuple[Change, Callable[[np.ndarray, Path], Path]]] = {
    "as it is: RGB PNG": (unchanged, _rgb(".png")),
    "STARE-like: PPM, FOV 650 px cut at top and bottom (700×605)": (chained(resized_to(650), framed(605 / 650, 700 / 650)), _rgb(".ppm")),
    "Messidor-like: TIFF, FOV 1400 px in 2240×1488": (chained(resized_to(1400), framed(1488 / 1400, 2240 / 1400)), _rgb(".tif")),
    "EyePACS-like: JPEG 75, FOV 2950 px in 4752×3168, text in the border": (
        chained(resized_to(2950), framed(3168 / 2950, 4752 / 2950), captioned()), _rgb(".jpg", quality=75)),
    "one gray channel (green), 16-bit PNG": (unchanged, _gray16),
    "RGBA PNG, FOV 1100 px with a notch in the disc": (chained(resized_to(1100), notched(0.08)), _rgba),
}


def write_inputs(folder: Path, images: int) -> dict[str, tuple[str, str, np.ndarray, np.ndarray]]:
    """Every layout of the first ``images`` test photographs of each dataset, as files in ``folder``.
    Returns {file stem: (layout, dataset, label, mask)}."""
    made = {}
    for dataset in DATASETS:
        for index, sample in enumerate(load_dataset(dataset, "test")):
            if index == images:
                break
            for number, (layout, (change, write)) in enumerate(LAYOUTS.items()):
                image, label, mask = change(sample.image, sample.label, sample.mask)
                stem = f"{dataset}-{sample.name}-layout{number}"
                write(image, folder / stem)
                made[stem] = (layout, dataset, label, mask)
        print(f"{dataset}: {images} photograph(s) × {len(LAYOUTS)} layouts written", flush=True)
    return made


def run_cli(inputs: Path, out: Path) -> float:
    """``m2unet segment INPUTS -o OUT --model auto`` as a user runs it; its wall time."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "m2unet", "segment", str(inputs), "-o", str(out), "--model", "auto"])
    if done.returncode != 0:
        raise SystemExit(f"m2unet segment exited with {done.returncode}")
    return time.perf_counter() - start


def score(made: dict, out: Path) -> tuple[dict, dict]:
    """({layout: {dataset: [tp, fp, fn]}}, {layout: {dataset: [run FOV diameters]}}) from the written maps."""
    table = pd.read_parquet(out / "results.parquet").set_index("stem")
    counts = {layout: {d: np.zeros(3, dtype=np.int64) for d in DATASETS} for layout in LAYOUTS}
    diameters = {layout: {d: [] for d in DATASETS} for layout in LAYOUTS}
    for stem, (layout, dataset, label, mask) in made.items():
        binary = np.asarray(Image.open(out / f"{stem}_vessels.png")) > 0
        c = binary_counts(binary, label, mask)
        counts[layout][dataset] += (c["tp"], c["fp"], c["fn"])
        diameters[layout][dataset].append(int(table.loc[stem, "run_fov_diameter"]))
    return counts, diameters


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2, help="test photographs per dataset")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        inputs, out = Path(scratch) / "in", Path(scratch) / "out"
        inputs.mkdir()
        made = write_inputs(inputs, args.images)
        seconds = run_cli(inputs, out)
        counts, diameters = score(made, out)
    lines = [
        "# `m2unet segment` on files laid out as other datasets' are", "",
        f"Generated by `python benchmarks/file_layouts.py --images {args.images}` ({cpu_model()}; the command line took "
        f"{seconds:.0f} s for {len(made)} files). F1 inside the changed FOV of the binary maps that `m2unet segment "
        f"--model auto` wrote (the `universal` model at its stored threshold), pooled over the first {args.images} test "
        "photographs of each dataset, each changed as the row says (m2unet.evaluation.camera_shift; label and FOV changed "
        "alike) and saved in that format. In brackets: the FOV diameters (px) the photographs ran at.", "",
        "| layout and file | " + " | ".join(DATASETS) + " |", "|---|" + "---:|" * len(DATASETS),
    ]
    for layout in LAYOUTS:
        cells = [f"{f1_score(*counts[layout][d]):.4f} ({', '.join(map(str, diameters[layout][d]))})" for d in DATASETS]
        lines.append(f"| {layout} | " + " | ".join(cells) + " |")
    write_atomic(args.out, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
