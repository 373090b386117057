"""Evaluating a model on a labelled split: the paper's protocol and the honest one, from pooled counts.

For every image, confusion counts are taken at 1001 thresholds (0, 0.001, …, 1) in two regions:

- ``fov``: pixels inside the field-of-view mask (the honest region);
- ``crop``: every pixel of the paper's crop, with the pixels the crop removed added as true negatives
  (the paper's "whole crop" protocol; they change accuracy, specificity and AUC, never F1);
- ``crop_only``: every pixel of the crop, nothing added (for comparison: the paper's published accuracy
  and AUC on DRIVE are closer to this one than to ``crop``).

Counts are pooled over the split by summing. Two operating points are scored:

- ``a_priori``: the threshold stored with the weights, given by the user, or chosen on the training split;
- ``best``: the threshold with the best pooled F1 on this very split (the paper's protocol: optimistic,
  because the threshold is tuned on the test images).
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from ..errors import M2UNetError
from ..system import cpu_model, peak_rss_mb
from . import metrics as M

REGIONS = {
    "fov": "inside the field-of-view mask",
    "crop": "whole crop, pixels removed by the crop counted as true negatives (the paper's way)",
    "crop_only": "every pixel of the crop and nothing else (no true negatives added)",
}
REGION_NAMES = {"fov": "FOV", "crop": "whole crop", "crop_only": "crop only"}
PROTOCOLS = {
    "a_priori": "threshold fixed before looking at this split",
    "best": "best pooled F1 over thresholds on this split (the paper's protocol; optimistic)",
}
# The training split whose best threshold is the honest a-priori choice, per evaluated split.
# metrics.json's record of --tta. Since this wording a diameter search scores whole FOVs on plain maps, central squares
# (photographs larger than the stored range) flip-averaged, and flips the view it keeps; "flips (mean of 4 views)":
# every diameter tried flip-averaged (benchmarks/loo_table.py reads the records of each).
TTA_RECORD = "flips (mean of 4 views of the view kept; a search scores whole FOVs plain, central squares flipped)"
TRAINING_SPLIT = {"test": "train", "test_01_10": "train_11_14", "train_11_14": "test_01_10"}


@dataclass
class ImageCounts:
    """Per-threshold counts of one image in both regions, and its second observer's scalar counts."""

    name: str
    fov: dict | None  # None: second observer only (no model)
    crop: dict | None
    crop_only: dict | None
    second_fov: dict | None = None
    second_crop: dict | None = None
    second_crop_only: dict | None = None
    run_fov_diameter: int | None = None  # FOV diameter (px) the model ran the image at; None: as it is


def image_counts(sample, probability: np.ndarray | None, bins: int = M.DEFAULT_BINS) -> ImageCounts:
    """Counts of one :class:`~m2unet.data.Sample` (with a label) for a probability map of the same size
    (``None``: only the second observer's counts)."""
    if sample.label is None:
        raise M2UNetError(f"{sample.image_path or sample.name}: no label (vessel annotation) to evaluate against")
    fov = crop = crop_only = None
    if probability is not None:
        fov = M.threshold_counts(probability, sample.label, sample.mask, bins=bins)
        crop_only = M.threshold_counts(probability, sample.label, bins=bins)
        crop = M.add_true_negatives(crop_only, sample.removed_pixels)
    second = {}
    if sample.second_label is not None:
        second["second_fov"] = M.binary_counts(sample.second_label, sample.label, sample.mask)
        second["second_crop_only"] = M.binary_counts(sample.second_label, sample.label)
        second["second_crop"] = M.add_true_negatives(second["second_crop_only"], sample.removed_pixels)
    return ImageCounts(sample.name, fov, crop, crop_only, **second)


def _stats(values: list[float]) -> dict:
    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0}


def summarise(per_image: list[ImageCounts], a_priori: float | None, bootstrap: int = 2000, seed: int = 0) -> dict:
    """All metrics of a split from its per-image counts (pure: no model, no files).

    Returns {"threshold", "pooled", "per_image", "bootstrap_f1", "second_observer", "curves"}; the model's
    entries are None when the counts hold only the second observer.
    """
    if not per_image:
        raise M2UNetError("no images were evaluated")
    with_model = per_image[0].fov is not None
    result: dict = {"threshold": {"a_priori": a_priori}, "pooled": {}, "per_image": {}, "bootstrap_f1": {}, "curves": {}}
    if not with_model:
        result = dict.fromkeys(result)
    for region in REGIONS if with_model else ():
        counts = [getattr(item, region) for item in per_image]
        pooled = M.sum_counts(counts)
        best, _ = M.best_threshold(pooled)
        result["threshold"][f"best_{region}"] = best
        operating = {"a_priori": a_priori, "best": best}
        result["pooled"][region] = {
            "roc_auc": M.roc_auc(pooled),
            "average_precision": M.average_precision(pooled),
            **{protocol: {"threshold": t, **M.summary(M.at_threshold(pooled, t))} for protocol, t in operating.items()},
        }
        result["per_image"][region] = {}
        for protocol, t in operating.items():
            rows = [M.summary(M.at_threshold(c, t)) for c in counts]
            result["per_image"][region][protocol] = {name: _stats([r[name] for r in rows]) for name in M.METRICS}
        result["per_image"][region]["roc_auc"] = _stats([M.roc_auc(c) for c in counts])
        result["bootstrap_f1"][region] = {
            "a_priori": M.bootstrap_f1(counts, a_priori, resamples=bootstrap, seed=seed),
            # the threshold is re-tuned inside every resample, as the protocol itself would do
            "best": M.bootstrap_f1(counts, None, resamples=bootstrap, seed=seed),
        }
        result["curves"][region] = {key: np.asarray(pooled[key]).tolist() for key in ("tp", "fp", "fn", "tn")}
    seconds = [item for item in per_image if item.second_fov is not None]
    result["second_observer"] = None
    if seconds and len(seconds) == len(per_image):
        observer: dict = {"pooled": {}, "per_image": {}, "bootstrap_f1": {}}
        for region in REGIONS:
            counts = [getattr(item, f"second_{region}") for item in per_image]
            observer["pooled"][region] = M.summary(M.sum_counts(counts))
            rows = [M.summary(c) for c in counts]
            observer["per_image"][region] = {name: _stats([r[name] for r in rows]) for name in M.METRICS}
            # a binary map is one operating point: counts at "threshold 0" of a 1-element curve
            as_curves = [{k: np.array([v]) for k, v in c.items() if k in ("tp", "fp", "fn")} for c in counts]
            observer["bootstrap_f1"][region] = M.bootstrap_f1(as_curves, 0.0, resamples=bootstrap, seed=seed)
        result["second_observer"] = observer
    return result


def per_image_rows(per_image: list[ImageCounts], threshold: dict) -> list[dict]:
    """One row per image × rater × region × operating point, with counts and every metric (per_image.csv).

    ``threshold``: the "threshold" entry of :func:`summarise` (a-priori, and the best one per region).
    """
    rows = []
    for item in per_image:
        for region in REGIONS:
            counts = getattr(item, region)
            auc = M.roc_auc(counts) if counts is not None else None
            for protocol, value in (("a_priori", threshold["a_priori"]), ("best", threshold[f"best_{region}"])) if counts is not None else ():
                rows.append({"image": item.name, "rater": "model", "region": region, "protocol": protocol, "threshold": value, "roc_auc": auc,
                             "run_fov_diameter": item.run_fov_diameter or "", **M.summary(M.at_threshold(counts, value))})
            second = getattr(item, f"second_{region}")
            if second is not None:
                rows.append({"image": item.name, "rater": "second_observer", "region": region, "protocol": "binary", "threshold": "", "roc_auc": "",
                             "run_fov_diameter": "", **M.summary(second)})
    return rows


CSV_FIELDS = ["image", "rater", "region", "protocol", "threshold", "tp", "fp", "fn", "tn", *M.METRICS, "roc_auc", "run_fov_diameter"]


def write_csv(path: Path, rows: list[dict]) -> None:
    from ..data.io import write_atomic

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})
    write_atomic(path, lambda tmp: Path(tmp).write_text(buffer.getvalue()))


def write_json(path: Path, data: dict) -> None:
    from ..data.io import write_atomic

    # indented for reading and diffs, but each long list (the 1001-point curves) on one line
    compact = {}

    def shrink(value):
        if isinstance(value, dict):
            return {k: shrink(v) for k, v in value.items()}
        if isinstance(value, list) and len(value) > 20:
            key = f"@@list{len(compact)}@@"
            compact[key] = json.dumps(value, separators=(",", ":"))
            return key
        return value

    text = json.dumps(shrink(data), indent=1, sort_keys=False)
    for key, dumped in compact.items():
        text = text.replace(f'"{key}"', dumped)
    write_atomic(path, lambda tmp: Path(tmp).write_text(text + "\n"))


def torch_predictor(model):
    """``image → probability`` with a PyTorch model, the whole image at once in fp32 (the reference way)."""
    from ..inference.predict import predict_probability

    return lambda image: predict_probability(model, image)


def backend_predictor(backend):
    """``image → probability`` with any runtime backend (:mod:`m2unet.inference.backends`), tiled as ``m2unet segment`` runs it."""
    from ..inference.tiling import predict_tiled

    return lambda image: predict_tiled(backend, image)


def run_model(predictor, dataset, desc: str, maps_dir: Path | None = None, save_npy: bool = False, keep: str | None = None, progress: bool = True,
              tta: bool = False):
    """Predict every image of ``dataset`` and count; returns (per-image counts, failures, kept sample+map).

    ``predictor``: ``image → probability`` (:func:`torch_predictor`, :func:`backend_predictor`), or None to score
    no model (the second observer only).
    ``tta``: the mean over the image and its three flips (:func:`m2unet.inference.tiling.flip_average`).
    ``keep``: the name of one image whose sample and probability map are returned (for Figure 5).
    Images that cannot be read are reported in ``failures`` and the others go on.
    """
    from tqdm import tqdm

    from ..data.io import save_png, write_atomic
    from ..inference.tiling import flip_average

    if tta and predictor is not None:  # a scaled predictor flips its scaled view, as segment does (ScaledPredictor.with_flips)
        predictor = predictor.with_flips() if hasattr(predictor, "with_flips") else partial(flip_average, predictor)

    per_image: list[ImageCounts] = []
    failures: list[str] = []
    kept = None
    bar = tqdm(range(len(dataset)), desc=desc, unit="image", disable=not progress, file=sys.stderr)
    for index in bar:
        try:
            sample = dataset[index]
            probability = None if predictor is None else predictor(sample.image)
            counts = image_counts(sample, probability)
            counts.run_fov_diameter = getattr(predictor, "ran_at", None)  # a scaled predictor's (m2unet.evaluation.predictor)
            per_image.append(counts)
        except M2UNetError as error:
            failures.append(str(error))
            tqdm.write(f"failed: {error}", file=sys.stderr)
            continue
        if maps_dir is not None and probability is not None:
            save_png(maps_dir / f"{sample.name}.png", probability)
            if save_npy:
                write_atomic(maps_dir / f"{sample.name}.npy", lambda tmp, p=probability: np.save(open(tmp, "wb"), p))
        if kept is None and probability is not None and (keep is None or keep == sample.name):
            kept = (sample, probability)
        bar.set_postfix(peak_rss=f"{peak_rss_mb():.0f}MiB")
    return per_image, failures, kept


def threshold_on_split(predictor, dataset_name: str, train_split: str, root=None, progress: bool = True, tta: bool = False) -> tuple[float, str]:
    """The best pooled F1 threshold (inside the FOV) on ``train_split``: the honest a-priori choice when the
    weights store none. Returns (threshold, a sentence saying how it was chosen)."""
    from ..data import load_dataset

    if Path(str(dataset_name)).is_dir() and not (Path(dataset_name) / train_split / "images").is_dir():
        raise M2UNetError(f"{dataset_name}: no {train_split}/images/ folder to choose a threshold on; pass --threshold")
    train = load_dataset(dataset_name, train_split, root=root)
    per_image, failures, _ = run_model(predictor, train, desc=f"threshold on {train_split}", progress=progress, tta=tta)
    if failures:
        raise M2UNetError(f"choosing the threshold on split {train_split!r}: {len(failures)} image(s) failed, first: {failures[0]}")
    threshold, f1 = M.best_threshold(M.sum_counts([item.fov for item in per_image]))
    return threshold, f"best pooled F1 inside the FOV on split '{train_split}' ({len(per_image)} images, F1 {f1:.4f})"


def a_priori_threshold(predictor, metadata: dict, dataset_name: str, split: str, threshold: float | None = None, threshold_split: str | None = None,
                       root=None, tta: bool = False, progress: bool = True, notify=None) -> tuple[float, str]:
    """The threshold fixed before looking at ``split``, and a sentence saying where it came from.

    In this order: ``threshold`` as given; the one stored with the weights (``metadata``), unless ``threshold_split``
    asks for a choice; else the best pooled F1 inside the FOV on ``threshold_split`` or on the training split of
    ``split`` (:data:`TRAINING_SPLIT`), never on ``split`` itself. ``notify`` (a message → None) hears of that choice.
    """
    from ..weights import threshold_of

    if threshold is not None:
        if not 0.0 <= threshold <= 1.0:
            raise M2UNetError(f"--threshold {threshold}: must be between 0 and 1")
        return threshold, "given with --threshold"
    if metadata.get("threshold") is not None and not threshold_split:
        return threshold_of(metadata), "stored with the weights"
    train_split = threshold_split or TRAINING_SPLIT.get(split)
    if train_split is None:
        raise M2UNetError(f"the weights store no threshold and split {split!r} has no known training split; pass --threshold or --threshold-split")
    if train_split == split:
        raise M2UNetError(f"--threshold-split {train_split}: the a-priori threshold must come from other images than the evaluated split")
    if notify is not None:
        notify(f"the weights store no threshold: choosing it on split '{train_split}' (the honest a-priori protocol)")
    return threshold_on_split(predictor, dataset_name, train_split, root=root, progress=progress, tta=tta)


def default_model(dataset_name: str) -> str:
    """The pretrained model evaluated when none is named: the dataset's own (``drive`` for a folder of one's own)."""
    from ..data.datasets import DATASETS, dataset_key

    key = dataset_key(dataset_name)
    return key if key in DATASETS else "drive"


def _torch_threads() -> int | None:
    """torch's CPU threads, for the record; None where torch is not installed (an exported model on a small device)."""
    try:
        import torch
    except ImportError:
        return None
    return torch.get_num_threads()


def evaluate(
    predictor,
    dataset,
    out_dir: Path,
    a_priori: float,
    threshold_source: str,
    weights_info: dict,
    save_maps: bool = True,
    save_npy: bool = False,
    figure_image: str | None = None,
    bootstrap: int = 2000,
    progress: bool = True,
    command: str | None = None,
    tta: bool = False,
) -> dict:
    """Run ``predictor`` (see :func:`run_model`) over ``dataset``, write metrics.json, per_image.csv, figures (and maps); return the metrics."""
    from ..weights import git_commit
    from .figures import figure5, pr_figure

    out_dir = Path(out_dir)
    start = time.perf_counter()
    per_image, failures, kept = run_model(
        predictor, dataset, desc=f"{dataset.name} {dataset.split}", maps_dir=out_dir / "probability" if save_maps else None,
        save_npy=save_npy, keep=figure_image, progress=progress, tta=tta,
    )
    if figure_image is not None and kept is None:
        failures.append(f"--figure-image {figure_image}: no such image in {dataset.name} {dataset.split}")
    seconds = time.perf_counter() - start
    result = {
        "dataset": dataset.name,
        "split": dataset.split,
        "images": len(per_image),
        "failed": failures,
        "weights": weights_info,
        "threshold_source": threshold_source,
        "test_time_augmentation": TTA_RECORD if tta else None,
        "regions": REGIONS,
        "protocols": PROTOCOLS,
        **summarise(per_image, a_priori, bootstrap=bootstrap),
        "runtime": {
            "seconds": round(seconds, 2),
            "seconds_per_image": round(seconds / max(len(per_image), 1), 3),
            "peak_rss_mib": round(peak_rss_mb(), 1),
            "torch_threads": _torch_threads(),
            "cpu": cpu_model(),
        },
        "command": command,
        "git_commit": git_commit(),
    }
    write_json(out_dir / "metrics.json", result)
    rows = per_image_rows(per_image, result["threshold"] or {})
    write_csv(out_dir / "per_image.csv", rows)
    if not result["pooled"] and not result["second_observer"]:
        return result  # caller reports that there was nothing to score
    pr_figure([run_label(result)], [result], out_dir / "pr_curve.png", title=f"{dataset.name} {dataset.split}: precision–recall (whole crop, pooled)")
    if kept is not None:
        sample, probability = kept
        figure5(sample, probability, a_priori, out_dir / "figure5.png", title=f"{dataset.name} {sample.name}")
    return result


def run_label(result: dict) -> str:
    weights = result.get("weights") or {}
    return weights.get("label") or weights.get("file") or "model"


def load_run(path: str | Path) -> dict:
    """The metrics.json of an evaluation output (the folder or the file itself); ``pooled`` and ``curves``
    are None for a second-observer-only evaluation."""
    path = Path(path)
    file = path / "metrics.json" if path.is_dir() else path
    if not file.is_file():
        raise M2UNetError(f"{path}: no metrics.json (expected an `m2unet evaluate` output folder)")
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as error:
        raise M2UNetError(f"{file}: not a readable metrics.json ({type(error).__name__})") from None
    if not isinstance(data, dict) or "pooled" not in data or "curves" not in data or not (data["pooled"] or data.get("second_observer")):
        raise M2UNetError(f"{file}: not an `m2unet evaluate` metrics.json (no 'pooled'/'curves')")
    data["_path"] = str(file.parent)
    return data


def table_rows(result: dict) -> list[dict]:
    """Rows for the printed table: the model at both operating points and the second observer, both regions."""
    rows = []
    for protocol, label in (("a_priori", "a-priori"), ("best", "best on split (optimistic)")) if result["pooled"] else ():
        for region in REGIONS:
            pooled = result["pooled"][region]
            values = pooled[protocol]
            rows.append({"rater": label, "region": REGION_NAMES[region], "threshold": values["threshold"], **{k: values[k] for k in M.METRICS}, "auc": pooled["roc_auc"]})
    observer = result.get("second_observer")
    if observer:
        for region in REGIONS:
            values = observer["pooled"][region]
            rows.append({"rater": "second observer", "region": REGION_NAMES[region], "threshold": None, **{k: values[k] for k in M.METRICS}, "auc": None})
    return rows


def format_table(result: dict) -> str:
    def number(value):
        return "   –  " if value is None else f"{value:.4f}"

    lines = [
        f"{result['dataset']} {result['split']}: {result['images']} images, weights {run_label(result)}",
        f"a-priori threshold {result['threshold']['a_priori']:.3f}: {result['threshold_source']}" if result["pooled"] else "second observer only (no model)",
        f"{'':<27} {'region':<10} {'thresh':>6} {'F1':>6} {'Acc':>6} {'AUC':>6} {'Se':>6} {'Sp':>6} {'Jacc':>6} {'MCC':>6}",
    ]
    for row in table_rows(result):
        lines.append(
            f"{row['rater']:<27} {row['region']:<10} {number(row['threshold'])[:6]:>6} {number(row['f1'])} {number(row['accuracy'])} "
            f"{number(row['auc'])} {number(row['sensitivity'])} {number(row['specificity'])} {number(row['jaccard'])} {number(row['mcc'])}"
        )
    for region, label in REGION_NAMES.items() if result["pooled"] else ():
        per = result["per_image"][region]
        boot = result["bootstrap_f1"][region]
        lines.append(
            f"F1 per image ({label}): a-priori {per['a_priori']['f1']['mean']:.4f} ± {per['a_priori']['f1']['std']:.4f}, "
            f"best {per['best']['f1']['mean']:.4f} ± {per['best']['f1']['std']:.4f}; pooled F1 95% bootstrap interval over images: "
            f"a-priori [{boot['a_priori']['low']:.4f}, {boot['a_priori']['high']:.4f}], best [{boot['best']['low']:.4f}, {boot['best']['high']:.4f}]"
        )
    observer = result.get("second_observer")
    if observer:
        for region in ("fov", "crop"):
            per, boot = observer["per_image"][region]["f1"], observer["bootstrap_f1"][region]
            lines.append(f"second observer F1 per image ({REGION_NAMES[region]}): {per['mean']:.4f} ± {per['std']:.4f}; pooled F1 95% bootstrap interval [{boot['low']:.4f}, {boot['high']:.4f}]")
    return "\n".join(lines)


def recorded_command(page: Path, heading: str) -> str | None:
    """The command a page written by ``compare`` or ``report`` records: the first indented line after ``heading``."""
    lines = Path(page).read_text(errors="replace").splitlines()
    after = lines[lines.index(heading) + 1:] if heading in lines else []
    return next((line.strip() for line in after if line.startswith("    ")), None)


def write_text(path: Path, text: str) -> None:
    from ..data.io import write_atomic

    write_atomic(Path(path), lambda tmp: Path(tmp).write_text(text))
