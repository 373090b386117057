"""What a training run reports: ``metrics.csv``, ``curves.png``, the metadata stored with ``best.safetensors``,
TensorBoard events, the hardware it ran on, and the test split's F1 after training (reporting only)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import torch

from ..data.io import write_atomic
from ..errors import M2UNetError
from ..system import cpu_model

METRICS_FIELDS = ["epoch", "train_loss", "val_dice", "val_threshold", "val_dice_at_0.5", "lr", "epoch_seconds", "elapsed_seconds"]


def hardware_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()}, {torch.get_num_threads()} threads"


def write_metrics_csv(path: Path, history: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRICS_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in METRICS_FIELDS})
    write_atomic(path, lambda tmp: Path(tmp).write_text(buffer.getvalue()))


def plot_curves(path: Path, history: list[dict], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(epochs, [r["train_loss"] for r in history], lw=1)
    left.set(xlabel="epoch", ylabel="training loss (BCE + 0.3·(1−J))", title="training loss")
    left.grid(alpha=0.3)
    validated = [r for r in history if r.get("val_dice") is not None]
    if validated:
        right.plot([r["epoch"] for r in validated], [r["val_dice"] for r in validated], marker=".", label="best-threshold Dice")
        right.plot([r["epoch"] for r in validated], [r["val_dice_at_0.5"] for r in validated], marker=".", alpha=0.6, label="Dice at 0.5")
        best = max(validated, key=lambda r: r["val_dice"])
        right.scatter([best["epoch"]], [best["val_dice"]], color="red", zorder=3, label=f"best {best['val_dice']:.4f} (epoch {best['epoch']})")
        right.legend(loc="lower right")
    right.set(xlabel="epoch", ylabel="validation Dice (pooled, inside FOV)", title="validation")
    right.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, metadata={"Title": title}))
    plt.close(fig)


def curves_title(config: dict) -> str:
    from ..paper import TABLE2

    model_label = TABLE2.get(config["model"], {}).get("label", config["model"])  # the curves of a U-Net run said "M2U-Net"
    return f"{model_label} on {config['dataset']}, Jaccard {config['jaccard']}"


def weights_metadata(config: dict, run_info: dict, best: dict, epochs_done: int, seconds: float) -> dict:
    """The metadata stored with ``best.safetensors``: the recipe, the best epoch and its threshold, where and how it was trained."""
    # a model trained at one FOV diameter is run at it (m2unet.data.scale): inference reads it from here
    scaled = {"fov_diameter": int(config["fov_diameter"]), "datasets": list(config["datasets"])} if config.get("fov_diameter") else {}
    if config.get("vessel_width"):
        scaled["vessel_width"] = float(config["vessel_width"])
    if config.get("pool_coarse_labels"):
        scaled["pool_coarse_labels"] = True  # m2unet.data.scale.back_max_from reads it
    return {**scaled, "model": config["model"], "dataset": config["dataset"], "recipe": f"m2unet train preset {config['dataset']} (paper: AdamW 1e-3, BCE+0.3(1-J))",
            "jaccard": config["jaccard"], "epochs": int(config["epochs"]), "epochs_trained": epochs_done, "best_epoch": best["epoch"],
            "val_dice": round(float(best["val_dice"]), 6), "threshold": best["threshold"], "batch_size": config["batch_size"], "lr": config["lr"],
            "lr_schedule": config.get("lr_schedule", "constant"), **({"ema_half_life": float(config["ema_half_life"])} if config.get("ema_half_life") else {}),
            "seed": config["seed"], "precision": run_info["precision"], "git_commit": run_info["git_commit"], "training_seconds": round(seconds, 1),
            "hardware": run_info["hardware"]}


def tensorboard_logger(out: Path):
    """TensorBoard event files when tensorboard (or tensorboardX) is installed; None otherwise."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        try:
            import tensorboardX  # noqa: F401
        except ImportError:
            return None
    from lightning.fabric.loggers import TensorBoardLogger

    return TensorBoardLogger(str(out), name="tensorboard", version="")


def evaluate_test_split(weights: Path, dataset: str, threshold: float, root=None, split: str = "test", device: torch.device | None = None) -> dict | None:
    """Pooled F1 inside the FOV on a labelled test split, at the stored threshold and at the best one (reporting only).

    fp32 on ``device`` (the training device; CPU by default), whole images; scored by :mod:`m2unet.evaluation`.
    None when the split does not exist or an image has no label.
    """
    from ..data import load_dataset
    from ..evaluation.evaluate import run_model, torch_predictor
    from ..evaluation.metrics import best_threshold, f1_at, sum_counts
    from ..weights import load_weights

    try:
        samples = load_dataset(dataset, split, root=root)
    except M2UNetError:
        return None
    model, _ = load_weights(weights)
    per_image, failures, _ = run_model(torch_predictor(model.to(device or "cpu")), samples, desc=f"test {dataset} {split}", progress=False)
    if failures or not per_image:
        return None
    total = sum_counts(item.fov for item in per_image)
    best_t, best_f1 = best_threshold(total)
    return {"split": split, "images": len(samples), "f1_at_stored_threshold": f1_at(total, threshold),
            "stored_threshold": threshold, "best_threshold": best_t, "f1_at_best_threshold": best_f1}
