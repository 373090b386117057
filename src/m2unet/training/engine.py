"""The training loop, on Lightning Fabric: one process on CPU, or DDP over GPUs / nodes.

Fabric (Lightning's lightweight engine) handles devices, DDP and mixed precision; the loop itself is
plain so that what a checkpoint holds is exactly known: after every epoch ``OUT/checkpoints/last.ckpt``
is written atomically with the model, the optimizer, the completed epoch count, the random generator
states, the metrics history and the best result so far — tensors and primitives only, read back with
``torch.load(weights_only=True)``. ``resume=True`` continues from it after a crash or SIGKILL, losing
only the running epoch; with the same seed on CPU the resumed run ends with the same weights.

Each epoch: a random permutation of the in-memory training images (torch's global generator; under DDP rank 0's,
shared, each rank taking an equal share), batches augmented on the device (:mod:`.augment`) with each rank's own
random stream, optional random crop, loss :mod:`.losses`.
Validation (every ``val_every`` epochs and after the last): pooled confusion counts inside the FOV over
1001 thresholds (:func:`m2unet.evaluation.metrics.threshold_counts`), Dice at the best threshold;
the best epoch's weights go to ``OUT/best.safetensors`` with the threshold in their metadata.
Several datasets (``config["datasets"]``, :data:`m2unet.training.presets.MULTI`): images scaled to one FOV diameter,
epochs drawn in balance over the datasets, and validation on held-out training images instead of augmented copies.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import signal
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ..data.datasets import dataset_names
from ..data.io import write_atomic
from ..errors import M2UNetError
from .augment import AugmentConfig, Augmenter, save_augmentation_grid
from .data import balanced_order, load_scaled_training_sets, load_training_tensor, random_crop, to_float
from .losses import BCEJaccardLoss

CHECKPOINT_FORMAT = "m2unet-train-checkpoint-v1"
# Test-only fault injection: SIGKILL this process right after the checkpoint of epoch N is written.
KILL_AFTER_EPOCH_ENV = "M2UNET_TRAIN_KILL_AFTER_EPOCH"
# Settings that must not change when a run is resumed (epochs may grow).
FROZEN_KEYS = ("model", "dataset", "lr", "lr_schedule", "weight_decay", "jaccard", "jaccard_weight", "batch_size", "crop", "seed", "val_seed", "val_copies",
               "augment", "datasets", "fov_diameter", "holdout", "balanced")
# values of keys added after the first checkpoints were written, for resuming those
KEY_DEFAULTS = {"lr_schedule": "constant"}
LR_SCHEDULES = ("constant", "cosine")


def learning_rate(config: dict, epoch: int) -> float:
    """The learning rate of 0-based ``epoch``: constant (the paper), or cosine-annealed from ``lr`` to 0 over ``epochs``.

    A pure function of the epoch, so a resumed run continues the schedule with no scheduler state to save.
    """
    schedule = config.get("lr_schedule", "constant")
    if schedule == "constant":
        return float(config["lr"])
    if schedule == "cosine":
        return float(config["lr"]) * 0.5 * (1.0 + np.cos(np.pi * epoch / int(config["epochs"])))
    raise M2UNetError(f"unknown lr_schedule {schedule!r}; choose one of {', '.join(LR_SCHEDULES)}")


def hardware_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {torch.get_num_threads()} threads"


def resolve_precision(precision: str, accelerator_device: torch.device) -> str:
    """``auto``: bf16 autocast where the hardware has bf16 (CPU with AVX-512 BF16/AMX, Ampere+ GPUs), else fp16 (GPU) / fp32."""
    if precision != "auto":
        return precision
    if accelerator_device.type == "cuda":
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    try:
        supported = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        supported = False
    return "bf16-mixed" if supported else "32-true"


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def rank_share(order: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This rank's indices from the epoch's permutation ``order`` (the same on every rank).

    Padded by wrapping round to a multiple of ``world``, as torch's DistributedSampler does, so that every rank takes
    the same number of steps: DDP all-reduces the gradients of each step, and a rank with one step fewer hangs the others.
    With one process it is ``order`` itself.
    """
    per_rank = -(-len(order) // world)
    padded = order.repeat(-(-per_rank * world // len(order)))[: per_rank * world]
    return padded[rank::world]


def _restore_rng(state: dict, rank: int, world: int, device: torch.device, seed: int) -> None:
    """Continue each rank's own random stream from the checkpoint; with another number of processes than the run had, start
    reproducible new streams (seeded from the seed, rank and epoch) instead."""
    saved = state.get("rng_ranks") or [state["rng"]]
    if len(saved) == world:
        _set_rng_state(saved[rank], device)
    else:
        torch.manual_seed(seed + 1000 * rank + 1_000_003 * int(state["epoch"]))


def load_checkpoint(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise M2UNetError(f"{path}: unreadable checkpoint ({type(error).__name__}); delete it to start over") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise M2UNetError(f"{path}: not an m2unet training checkpoint")
    return state


def make_validation_set(stack: torch.Tensor, config: dict, augment: Augmenter) -> torch.Tensor:
    """``val_copies`` augmented copies of each training image, drawn once from ``val_seed`` (uint8, on ``stack``'s device).

    Generated inside a forked random state, so that it never shifts the training's random sequence. The random
    draws come from the CPU generator wherever the tensors live, so a GPU run validates on the same copies.
    """
    copies = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config["val_seed"])
        for _ in range(config["val_copies"]):
            for start in range(0, stack.shape[0], 4):
                batch = augment(to_float(stack[start : start + 4]))
                batch[:, :3] = torch.round(batch[:, :3] * 255.0)
                copies.append(batch.to(torch.uint8))
    return torch.cat(copies)


def load_training_data(config: dict, root, progress: bool) -> tuple[torch.Tensor, torch.Tensor | None, list[str], torch.Tensor | None, str]:
    """(training stack, dataset group per image or None, names, held-out validation stack or None, how validation is done).

    One dataset: its training split as it is, validated on augmented copies (the paper has no validation images).
    Several (``config["datasets"]``): each scaled to ``fov_diameter`` with held-out images for validation.
    """
    if not config.get("datasets"):
        stack, names = load_training_tensor(config["dataset"], "train", root=root, progress=progress)
        return stack, None, names, None, f"{config['val_copies']} augmented copy/copies of each training image, drawn once with seed {config['val_seed']}"
    stack, groups, names, val, val_names = load_scaled_training_sets(config["datasets"], config["fov_diameter"], config["holdout"], root, progress)
    return stack, groups, names, val, f"held-out training images at FOV {config['fov_diameter']} px, not augmented: {', '.join(val_names)}"


def epoch_order(groups: torch.Tensor | None, count: int) -> torch.Tensor:
    """The images of one epoch: a permutation of all ``count``, or with dataset ``groups`` every dataset equally often."""
    return torch.randperm(count) if groups is None else balanced_order(groups)


def epoch_length(groups: torch.Tensor | None, count: int) -> int:
    return count if groups is None else int(torch.bincount(groups).max()) * len(torch.unique(groups))


def pooled_counts(model, val: torch.Tensor, batch_size: int, fabric, channels_last: bool, rank: int, world: int) -> dict:
    """Confusion counts over thresholds, pooled over this rank's share of the validation images (and all-reduced).

    The counting runs on the training device: on a GPU, HRF's 8-megapixel maps never go back to the host.
    """
    from ..evaluation.metrics import threshold_counts_torch

    model.eval()
    total = None
    with torch.no_grad():
        indices = list(range(rank, val.shape[0], world))
        for start in range(0, len(indices), batch_size):
            batch = to_float(val[indices[start : start + batch_size]].to(fabric.device))
            images = batch[:, :3].contiguous(memory_format=torch.channels_last) if channels_last else batch[:, :3]
            probability = torch.sigmoid(model(images).float())
            for p, y, m in zip(probability[:, 0], batch[:, 3] > 0.5, batch[:, 4] > 0.5, strict=True):
                counts = threshold_counts_torch(p, y, m)
                total = counts if total is None else {k: total[k] + counts[k] for k in total}
    model.train()
    if total is None:
        total = {k: np.zeros(1001, np.int64) for k in ("tp", "fp", "fn", "tn")}
    if world > 1:
        # NCCL reduces device tensors; the counts go there and back (int64 keeps them exact)
        total = {k: fabric.all_reduce(torch.from_numpy(np.ascontiguousarray(v)).to(fabric.device), reduce_op="sum").cpu().numpy() for k, v in total.items()}
    return total


def write_metrics_csv(path: Path, history: list[dict]) -> None:
    fields = ["epoch", "train_loss", "val_dice", "val_threshold", "val_dice_at_0.5", "lr", "epoch_seconds", "elapsed_seconds"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in fields})
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


def evaluate_test_split(weights: Path, dataset: str, threshold: float, root=None, split: str = "test", device: torch.device | None = None) -> dict | None:
    """Pooled F1 inside the FOV on a labelled test split, at the stored threshold and at the best one (reporting only).

    fp32 on ``device`` (the training device; CPU by default), whole images.
    """
    from ..data import load_dataset
    from ..evaluation.metrics import at_threshold, best_threshold, f1_score, threshold_counts
    from ..inference.predict import predict_probability
    from ..weights import load_weights

    try:
        samples = load_dataset(dataset, split, root=root)
    except M2UNetError:
        return None
    model, _ = load_weights(weights)
    model = model.to(device or "cpu")
    total = None
    for sample in samples:
        if sample.label is None:
            return None
        counts = threshold_counts(predict_probability(model, sample.image), sample.label, sample.mask)
        total = counts if total is None else {k: total[k] + counts[k] for k in total}
    if total is None:
        return None
    at = at_threshold(total, threshold)
    best_t, best_f1 = best_threshold(total)
    return {"split": split, "images": len(samples), "f1_at_stored_threshold": float(f1_score(at["tp"], at["fp"], at["fn"])),
            "stored_threshold": threshold, "best_threshold": best_t, "f1_at_best_threshold": best_f1}


def train(config: dict, out_dir: str | os.PathLike, resume: bool = False, accelerator: str = "auto", devices: int = 1, num_nodes: int = 1,
          precision: str = "auto", channels_last: bool = True, progress: bool = True, root=None, test: bool = True,
          time_limit_minutes: float | None = None) -> dict:
    """Train one model as ``config`` says (a preset from :mod:`.presets`, possibly edited); returns the summary dict.

    ``time_limit_minutes``: stop this invocation after the last epoch that fits in the limit (measured from the
    start of the loop, predicted from the previous epoch's time), validating that epoch; ``resume`` continues
    the run later (for batch-scheduler time slots). The summary records the epochs done and why it stopped.
    """
    out = Path(out_dir)
    checkpoint_path = out / "checkpoints" / "last.ckpt"
    state = None
    if checkpoint_path.exists():
        if not resume:
            raise M2UNetError(f"{out}: already holds a training run; pass --resume to continue it or choose another --out")
        state = load_checkpoint(checkpoint_path)
        changed = [k for k in FROZEN_KEYS if state["config"].get(k, KEY_DEFAULTS.get(k)) != config.get(k, KEY_DEFAULTS.get(k))]
        if changed:
            used = ", ".join(f"{k}={state['config'].get(k)!r}" for k in changed)
            raise M2UNetError(f"{checkpoint_path}: cannot resume with different {', '.join(changed)} (the run used {used})")
    elif resume and progress:
        print(f"no checkpoint in {out}; starting a new run", file=sys.stderr)
    from ..data import load_dataset

    for name in config.get("datasets") or [config["dataset"]]:
        load_dataset(name, "train", root=root)  # a missing dataset fails here, before the slow imports

    from lightning.fabric import Fabric
    from tqdm import tqdm

    from ..weights import build_model, git_commit, load_weights, save_weights

    strategy = "ddp" if devices > 1 or num_nodes > 1 else "auto"
    fabric = Fabric(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy, precision=resolve_precision(precision, _probe_device(accelerator)))
    fabric.launch()
    rank, world, device = fabric.global_rank, fabric.world_size, fabric.device
    main_process = rank == 0
    used_precision = fabric._precision.precision if hasattr(fabric._precision, "precision") else precision

    fabric.seed_everything(config["seed"], verbose=False)
    stack, groups, names, val, validation = load_training_data(config, root, progress and main_process)
    augment = Augmenter(AugmentConfig(**{**config["augment"], "elastic_grid": tuple(config["augment"]["elastic_grid"])}))
    if device.type == "cuda":
        # the uint8 images live on the GPU (HRF: 0.6 GB): no per-step host decode, conversion or copy
        stack = stack.to(device)
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels once
    augment = augment.to(device)
    val = make_validation_set(stack, config, augment) if val is None else val.to(stack.device)

    encoder_weights = None if state else config.get("encoder_weights")
    model = build_model(config["model"], encoder_weights)
    if state:
        model.load_state_dict(state["model"])
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"])
    model, optimizer = fabric.setup(model, optimizer)
    criterion = BCEJaccardLoss(config["jaccard"], config["jaccard_weight"])

    history: list[dict] = []
    best = {"epoch": None, "val_dice": -1.0, "threshold": None}
    start_epoch, elapsed_before = 0, 0.0
    if state:
        optimizer.load_state_dict(state["optimizer"])
        history, best = list(state["history"]), dict(state["best"])
        start_epoch, elapsed_before = int(state["epoch"]), float(state["elapsed_seconds"])
        _restore_rng(state, rank, world, device, config["seed"])
    else:
        torch.manual_seed(config["seed"] + 1000 * rank)  # different augmentations per DDP rank, reproducible
    epochs = int(config["epochs"])
    out.mkdir(parents=True, exist_ok=True)
    commit = git_commit()
    hardware = hardware_description(device)
    run_info = {"precision": used_precision, "channels_last": channels_last, "devices": devices, "num_nodes": num_nodes, "world_size": world,
                "accelerator": device.type, "hardware": hardware, "git_commit": commit, "torch": torch.__version__,
                "resumed_from_epoch": start_epoch, "training_images": names, "validation": validation}
    if main_process:
        write_atomic(out / "config.json", lambda tmp: Path(tmp).write_text(json.dumps({"config": config, "run": run_info}, indent=2) + "\n"))
        if not (out / "augmentations.jpg").exists():
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(config["seed"] + 7)
                save_augmentation_grid(out / "augmentations.jpg", to_float(stack[:4].cpu()), augment.cpu())
            augment = augment.to(device)
    tensorboard = _tensorboard_logger(out) if main_process else None

    kill_after = int(os.environ.get(KILL_AFTER_EPOCH_ENV, "0") or 0)
    steps_per_epoch = -(-len(rank_share(torch.arange(epoch_length(groups, stack.shape[0])), rank, world)) // config["batch_size"])
    bar = tqdm(total=epochs, initial=start_epoch, desc=f"train {config['dataset']}", unit="epoch", disable=not (progress and main_process),
               mininterval=1.0 if sys.stderr.isatty() else 30.0, dynamic_ncols=True)
    started = time.perf_counter()
    stopped_by_time_limit = False
    model.train()
    for epoch in range(start_epoch, epochs):
        epoch_start = time.perf_counter()
        lr = learning_rate(config, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        order = epoch_order(groups, stack.shape[0])
        if world > 1:
            order = fabric.broadcast(order, src=0)  # one permutation for all ranks, so that their shares do not overlap
        order = rank_share(order, rank, world)
        losses = []
        for step in range(steps_per_epoch):
            index = order[step * config["batch_size"] : (step + 1) * config["batch_size"]]
            batch = random_crop(to_float(stack[index].to(device)), config["crop"])
            batch = augment(batch)
            images, labels = batch[:, :3], batch[:, 3:4]
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            logits = model(images)
            loss = criterion(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            fabric.backward(loss)
            optimizer.step()
            losses.append(loss.detach())
        train_loss = float(torch.stack(losses).mean())
        if world > 1:
            train_loss = float(fabric.all_reduce(torch.tensor(train_loss, device=device), reduce_op="mean"))
        row = {"epoch": epoch + 1, "train_loss": round(train_loss, 6), "lr": round(lr, 9), "val_dice": None, "val_threshold": None, "val_dice_at_0.5": None}
        if time_limit_minutes is not None and epoch + 1 < epochs:
            now = time.perf_counter()
            # another epoch (about as long as this one, plus a validation) would end past the limit
            stopped_by_time_limit = (now - started) + 1.5 * (now - epoch_start) > 60.0 * time_limit_minutes
            if world > 1:  # every rank stops after the same epoch
                stopped_by_time_limit = bool(fabric.all_reduce(torch.tensor(float(stopped_by_time_limit), device=device), reduce_op="max") > 0)
        if (epoch + 1) % config["val_every"] == 0 or epoch + 1 == epochs or stopped_by_time_limit:
            from ..evaluation.metrics import best_threshold, f1_score

            counts = pooled_counts(model, val, config["batch_size"], fabric, channels_last, rank, world)
            threshold, dice = best_threshold(counts)
            row.update(val_dice=round(dice, 6), val_threshold=threshold, **{"val_dice_at_0.5": round(float(f1_score(counts["tp"][500], counts["fp"][500], counts["fn"][500])), 6)})
            if dice > best["val_dice"]:
                best = {"epoch": epoch + 1, "val_dice": dice, "threshold": threshold}
                if main_process:
                    save_weights(model, out / "best.safetensors", _weights_metadata(config, run_info, best, epoch + 1, elapsed_before + time.perf_counter() - started))
        row["epoch_seconds"] = round(time.perf_counter() - epoch_start, 3)
        row["elapsed_seconds"] = round(elapsed_before + time.perf_counter() - started, 1)
        history.append(row)
        rng = _rng_state(device)
        rng_ranks = None
        if world > 1:  # every rank's stream, so that --resume continues each of them (a collective: all ranks call it)
            with warnings.catch_warnings():  # Lightning's all_gather calls a torch function that warns it is deprecated
                warnings.filterwarnings("ignore", message=".*all_gather is deprecated")
                gathered = fabric.all_gather(rng)
            rng_ranks = [{k: v[r].cpu().clone() for k, v in gathered.items()} for r in range(world)]  # clone: own storage (set_rng_state needs it)
        if main_process:
            write_metrics_csv(out / "metrics.csv", history)
            if tensorboard is not None:
                tensorboard.log_metrics({k: v for k, v in row.items() if v is not None and k != "epoch"}, step=epoch + 1)
            checkpoint = {"format": CHECKPOINT_FORMAT, "config": config, "epoch": epoch + 1, "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                          "optimizer": optimizer.state_dict(), "rng": rng, "history": history, "best": best,
                          "elapsed_seconds": row["elapsed_seconds"], **({"rng_ranks": rng_ranks} if rng_ranks else {})}
            write_atomic(checkpoint_path, lambda tmp, c=checkpoint: torch.save(c, tmp))
        fabric.barrier()
        postfix = {"loss": f"{train_loss:.4f}"}
        if best["epoch"]:
            postfix["best_val_dice"] = f"{best['val_dice']:.4f}@{best['epoch']}"
        bar.set_postfix(postfix, refresh=False)
        bar.update(1)
        if row["val_dice"] is not None and progress and main_process:
            bar.write(f"epoch {epoch + 1}/{epochs}  loss {train_loss:.4f}  val Dice {row['val_dice']:.4f} (threshold {row['val_threshold']:.3f})  "
                      f"best {best['val_dice']:.4f}@{best['epoch']}  {row['elapsed_seconds'] / 60:.1f} min", file=sys.stderr)
        if kill_after and epoch + 1 == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        if stopped_by_time_limit:
            if progress and main_process:
                bar.write(f"time limit of {time_limit_minutes:g} min reached after epoch {epoch + 1}/{epochs}; continue with --resume", file=sys.stderr)
            break
    bar.close()

    epochs_done = history[-1]["epoch"] if history else start_epoch
    summary = {"dataset": config["dataset"], "model": config["model"], "jaccard": config["jaccard"], "epochs": epochs, "epochs_done": epochs_done,
               "stopped_by_time_limit": stopped_by_time_limit, "best_epoch": best["epoch"], "val_dice": best["val_dice"],
               "threshold": best["threshold"], "training_seconds": history[-1]["elapsed_seconds"] if history else 0.0,
               "seconds_per_epoch": round(float(np.mean([r["epoch_seconds"] for r in history])), 3) if history else None,
               "steps_per_epoch": steps_per_epoch, "load_average_at_end": list(os.getloadavg()), **run_info}
    if not main_process:
        return {}  # rank 0 reports
    from ..evaluation.paper import TABLE2

    model_label = TABLE2.get(config["model"], {}).get("label", config["model"])  # the curves of a U-Net run said "M2U-Net"
    plot_curves(out / "curves.png", history, f"{model_label} on {config['dataset']}, Jaccard {config['jaccard']}")
    final_model, meta = load_weights(out / "best.safetensors")
    meta.update(_weights_metadata(config, run_info, best, epochs_done, summary["training_seconds"]))
    save_weights(final_model, out / "best.safetensors", meta)
    if test and config["dataset"] in dataset_names():
        summary["test"] = evaluate_test_split(out / "best.safetensors", config["dataset"], best["threshold"], root=root, device=device)
    write_atomic(out / "summary.json", lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2) + "\n"))
    return summary


def _weights_metadata(config: dict, run_info: dict, best: dict, epochs_done: int, seconds: float) -> dict:
    # a model trained at one FOV diameter is run at it (m2unet.data.scale): inference reads it from here
    scaled = {"fov_diameter": int(config["fov_diameter"]), "datasets": list(config["datasets"])} if config.get("fov_diameter") else {}
    return {**scaled, "model": config["model"], "dataset": config["dataset"], "recipe": f"m2unet train preset {config['dataset']} (paper: AdamW 1e-3, BCE+0.3(1-J))",
            "jaccard": config["jaccard"], "epochs": int(config["epochs"]), "epochs_trained": epochs_done, "best_epoch": best["epoch"],
            "val_dice": round(float(best["val_dice"]), 6), "threshold": best["threshold"], "batch_size": config["batch_size"], "lr": config["lr"],
            "lr_schedule": config.get("lr_schedule", "constant"),
            "seed": config["seed"], "precision": run_info["precision"], "git_commit": run_info["git_commit"], "training_seconds": round(seconds, 1),
            "hardware": run_info["hardware"]}


def _probe_device(accelerator: str) -> torch.device:
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def _tensorboard_logger(out: Path):
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
