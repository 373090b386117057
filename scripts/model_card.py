"""Write results/model_card.md: the shipped models beside the paper and the authors' checkpoints.

Every number is read from committed `m2unet evaluate` outputs (metrics.json) and the shipped weights'
metadata; the paper's from m2unet.paper. Rerun after any new evaluation:
  python scripts/model_card.py
"""

from __future__ import annotations

import json
from pathlib import Path

from m2unet.data.contrast import model_contrast_floor
from m2unet.data.datasets import DATASETS
from m2unet.data.scale import WidthRule, model_scale
from m2unet.paper import RESULTS
from m2unet.weights import PRETRAINED_DIR, read_metadata

REPO = Path(__file__).resolve().parents[1]
OURS = REPO / "results" / "ours"
AUTHORS = REPO / "results" / "authors"
AUTHORS_RUNS = {"drive": "drive", "chase_db1": "chase_db1_01_10", "hrf": "hrf"}


def load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def fmt(value, digits=4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def row(label: str, metrics: dict | None, note: str = "") -> str:
    if metrics is None:
        return f"| {label} | – | – | – | – | – | {note or 'not run'} |"
    fov, crop = metrics["pooled"]["fov"], metrics["pooled"]["crop"]
    return (
        f"| {label} | {fmt(fov['a_priori']['f1'])} (t={fov['a_priori']['threshold']:.3f}) | {fmt(fov['best']['f1'])} | "
        f"{fmt(crop['best']['f1'])} | {fmt(metrics['pooled']['crop_only']['a_priori']['accuracy'])} | "
        f"{fmt(metrics['pooled']['crop_only']['roc_auc'])} | {note} |"
    )


# the universal models shipped before, newest first: (folder under results/ours, what it was)
FORMER_UNIVERSAL = (
    ("universal-zoom15", "zooms up to 1.5×, threshold chosen on held-out training images; replaced by poolz20cc's recipe (zooms up to 2×, DRIVE's labels pooled, threshold chosen under camera changes), better on every held-out dataset, 0.002–0.007 below in domain"),
    ("universal-ema300", "zooms up to 1.2× in training; replaced by zoom15's recipe (zooms up to 1.5×), better on every held-out dataset"),
    ("universal-cam2", "harsher blur and JPEG, 150 epochs; replaced by the 300-epoch run with a weight average"),
    ("universal", "the preset's camera ranges, 150 epochs; replaced by the run with harsher blur and JPEG"),
)


def universal_rows() -> list[tuple[str, str, str]]:
    """(folder under results/ours, row label, note) of the shipped universal model (as it runs, with TTA, with its
    diameter searched, searched and flipped), of the ones shipped before it and of runs measured and not shipped.

    The shipped model's folder is where its own metadata says it was evaluated (scripts/ship_pretrained.py).
    """
    path = PRETRAINED_DIR / "universal.safetensors"
    evaluations = (read_metadata(path).get("test_evaluations") or {}) if path.is_file() else {}
    shipped = Path(next(iter(evaluations.values()))).parent.parent.name if evaluations else "universal"
    rows = [(shipped, "ours: `universal` (all three datasets in one model)", "one model for any camera"),
            (f"{shipped}-tta", "ours: `universal` + flip TTA", "4× the inference time; `--tta`"),
            (f"{shipped}-search", "ours: `universal`, diameter searched (`--model auto --no-tta`)", "`--search-diameter`"),
            (f"{shipped}-search-tta", "ours: `universal`, searched, then the kept view's flips (`--model auto`)",
             "`--search-diameter --tta`; its time: results/scale/latency.md")]
    rows += [(folder, f"ours: former `universal` ({folder})", note) for folder, note in FORMER_UNIVERSAL if folder != shipped]
    listed = {folder for folder, _, _ in rows}
    others = sorted(p.name for p in OURS.glob("universal-*") if p.is_dir() and p.name not in listed
                    and not p.name.endswith(("-tta", "-search"))) if OURS.is_dir() else []
    return rows + [(name, f"ours: {name} (trained on all three, not shipped)", "see results/train/" + name) for name in others]


def train_options(config: dict) -> dict[str, str]:
    """{recipe setting: the `m2unet train` option that sets it} for the settings of a run's config that the command has
    an option of (its click parameters named as the config's keys; the datasets and augmentations are named apart)."""
    from m2unet.cli import main as cli

    return {p.name: p.opts[0] for p in cli.commands["train"].params if p.name in config and p.name != "dataset"}


def option(flag: str, value) -> str:
    """One `m2unet train` option as typed: an on/off flag alone (its config value True), a number in its shortest form."""
    if isinstance(value, bool):
        return f" {flag}" if value else ""
    return f" {flag} {value:g}" if isinstance(value, float) else f" {flag} {value}"


def training_command(metadata: dict) -> str:
    """The `m2unet train` command of the shipped universal model: its datasets, each recipe setting and each augmentation
    setting its run (results/train/<run>/config.json, committed) changed from the preset's."""
    from m2unet.training.augment import AugmentConfig
    from m2unet.training.presets import preset_for

    datasets = ",".join(metadata["datasets"])
    record = REPO / "results" / "train" / Path(metadata.get("trained_from", "")).parent.name / "config.json"
    config = ((load(record) or {}) if metadata.get("trained_from") else {}).get("config", {})
    preset = preset_for(datasets)
    augment_preset = {**vars(AugmentConfig()), **preset.get("augment", {})}
    options = "".join(option(flag, config[key]) for key, flag in train_options(config).items() if config[key] != preset.get(key))
    augment = {k: v for k, v in config.get("augment", {}).items() if k in augment_preset and v != augment_preset[k]}
    return f"m2unet train --dataset {datasets}" + options + "".join(f" --augment {k}={v:g}" for k, v in augment.items())


def how_it_was_scaled(metadata: dict) -> str:
    """How the universal model's training scaled its datasets and how it runs a photograph (m2unet.data.scale.model_scale,
    m2unet.data.contrast)."""
    return scale_words(metadata) + contrast_words(metadata)


def contrast_words(metadata: dict) -> str:
    floor = model_contrast_floor(metadata)
    if floor is None:
        return ""
    return (f"; a photograph flatter than local contrast {floor:.4f} (the median of its flattest training dataset) is stretched up to it "
            "first (m2unet.data.contrast, results/scale/contrast_floor.md)")


def scale_words(metadata: dict) -> str:
    scale = model_scale(metadata)
    if isinstance(scale, WidthRule):
        diameters = metadata["run_vessel_width_choice"]["dataset_fov_diameters"]
        at = ", ".join(f"{name} {diameter}" for name, diameter in diameters.items())
        return (f"each dataset at the FOV diameter where its labels' vessels are {metadata['vessel_width']} px wide on average ({at} px), "
                f"`--vessel-width {metadata['vessel_width']}`; datasets in balance, camera-variation augmentations; docs/training.md); "
                f"it runs a photograph first with its FOV at {scale.probe} px, then where its map's vessels are {scale.map_width:.2f} px "
                f"wide ({scale.limits[0]}–{scale.limits[1]} px), calibrated on the held-out training images")
    low, high = scale
    return (f"every image at a FOV diameter of {metadata.get('fov_diameter')} px, datasets in balance, camera-variation augmentations; "
            f"docs/training.md); it runs a photograph whose FOV is d px across at clamp(d, {low}, {high}) px, chosen on the held-out "
            "training images (results/scale/run_diameter.md)")


def main() -> None:
    lines = [
        "# Model card: the shipped M2U-Net models",
        "",
        "Generated by `python scripts/model_card.py` from the committed `m2unet evaluate` outputs under",
        "`results/ours/` and `results/authors/`. Columns: F1 pooled over the test split **inside the FOV** at the",
        "a-priori threshold (stored with the weights: chosen on validation data for ours, on the training split for",
        "the authors' checkpoints) and at the best threshold on the test split itself; F1 over the **whole crop** at",
        "the best threshold (the paper's protocol, optimistic); accuracy and ROC AUC over the crop (a-priori",
        "threshold for accuracy).",
        "",
    ]
    for dataset, spec in DATASETS.items():
        label = spec.label
        meta = read_metadata(PRETRAINED_DIR / f"{dataset}.safetensors") if (PRETRAINED_DIR / f"{dataset}.safetensors").is_file() else None
        lines += [f"## {label}", ""]
        if meta:
            hours = meta.get("training_seconds", 0) / 3600
            on_gpu = "NVIDIA" in str(meta.get("hardware"))
            where = ("" if on_gpu else "; wall time on a 2-core machine shared with other jobs, see results/train_speed.md for the speed of a quiet one")
            lines += [
                f"Shipped: `src/m2unet/pretrained/{dataset}.safetensors` — trained with `m2unet train` (preset {dataset}, "
                f"Jaccard `{meta.get('jaccard')}`, {meta.get('epochs')} epochs, batch {meta.get('batch_size')}, "
                f"precision {meta.get('precision')}), best validation Dice {meta.get('val_dice'):.4f} at epoch "
                f"{meta.get('best_epoch')}, a-priori threshold {meta.get('threshold'):.3f}; {hours * 60:.0f} min of training in all, on "
                f"{meta.get('hardware')} (commit {meta.get('git_commit')}{where}).",
                "",
            ]
        else:
            lines += ["Not shipped yet: no model of ours trained on this dataset (see the issue tracker).", ""]
        lines += [
            "| model | F1 FOV a-priori | F1 FOV best | F1 crop best (paper's) | accuracy | ROC AUC | note |",
            "|---|---|---|---|---|---|---|",
        ]
        for run in sorted(OURS.glob(f"{dataset}*/metrics.json")) if OURS.is_dir() else []:
            metrics = load(run)
            if metrics["dataset"] == dataset:
                lines.append(row(f"ours: {run.parent.name}", metrics))
        for folder, label_, note in universal_rows():
            universal = load(OURS / folder / dataset / "metrics.json")
            if universal:
                lines.append(row(label_, universal, note))
        tta = load(OURS / "tta" / dataset / "metrics.json")
        if tta:
            lines.append(row("ours + flip TTA (mean of 4 flipped views)", tta, "4× the inference time; `--tta`"))
        authors = load(AUTHORS / AUTHORS_RUNS[dataset] / "metrics.json")
        split_note = "tested on Image_01L–10R: the checkpoint was trained on the last 8" if dataset == "chase_db1" else ""
        lines.append(row("authors' checkpoint", authors, split_note))
        paper = RESULTS[dataset]["m2unet"]
        lines.append(f"| paper (Table 3/4) | – | – | {fmt(paper['f1'])} | {fmt(paper['accuracy'])} | {fmt(paper['auc'])} | published |")
        lines.append("")
    universal_meta = read_metadata(PRETRAINED_DIR / "universal.safetensors") if (PRETRAINED_DIR / "universal.safetensors").is_file() else None
    if universal_meta:
        m = universal_meta
        lines += [
            "## `universal`: one model for any camera",
            "",
            f"Shipped: `src/m2unet/pretrained/universal.safetensors` — trained with `{training_command(m)}` "
            f"({how_it_was_scaled(m)}, {m.get('epochs_trained')} of {m.get('epochs')} epochs, best validation Dice {m.get('val_dice'):.4f} "
            f"on held-out training images at epoch {m.get('best_epoch')}, a-priori threshold {m.get('threshold'):.3f}; "
            f"{m.get('training_seconds', 0) / 60:.0f} min on {m.get('hardware')} (commit {m.get('git_commit')}). Its rows are under each dataset above; "
            "leave-one-dataset-out and rescaled cross-dataset results: results/scale/.",
            "",
        ]
    cross = sorted((OURS / "cross").glob("*/metrics.json")) if (OURS / "cross").is_dir() else []
    if cross:
        lines += [
            "## Cross-dataset F1 (each shipped model on the other test sets)",
            "",
            "| model → test set | F1 FOV a-priori | F1 FOV best |",
            "|---|---|---|",
        ]
        for path in cross:
            metrics = load(path)
            fov = metrics["pooled"]["fov"]
            lines.append(f"| {path.parent.name} | {fmt(fov['a_priori']['f1'])} | {fmt(fov['best']['f1'])} |")
        lines.append("")
    out = REPO / "results" / "model_card.md"
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
