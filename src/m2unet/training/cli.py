"""``m2unet train``: the paper's training recipe for DRIVE, CHASE_DB1, HRF or a folder of one's own."""

from __future__ import annotations

import click

from ..data.shape import INPUT_MULTIPLE
from ..errors import M2UNetError, one_line_errors


@click.command()
@click.option("--dataset", required=True, help="drive, chase_db1, hrf, a folder in the images/ labels/ masks/ layout, or several names joined by commas "
              "(drive,chase_db1,hrf: one model for any camera, each image scaled to one FOV diameter).")
@click.option("--model", "model_name", default="m2unet", show_default=True, help="Registered model: m2unet, or the paper's baselines unet, erfnet (trained from scratch).")
@click.option("--epochs", type=int, default=None, help="Epochs (preset: 300).")
@click.option("--batch-size", type=int, default=None, help="Images per step and process (preset: DRIVE 4, CHASE_DB1 2, HRF 1); with --devices N the global batch is N times it.")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False), help="Run folder (default runs/DATASET-JACCARD).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--jaccard", type=click.Choice(["global", "eq3"]), default=None, help="Soft Jaccard form in the loss (preset: the better on DRIVE).")
@click.option("--crop", type=int, default=None, help="Random square training crops of this size (e.g. 1024 for HRF on CPU; a deviation from the paper).")
@click.option("--vessel-width", type=float, default=None,
              help="Several datasets: scale each so that its labels' mean vessel width is this many px (e.g. 6), instead of one FOV diameter.")
@click.option("--pool-coarse-labels", is_flag=True,
              help="Several datasets: compare the map with the labels of a dataset enlarged 1.5x or more (DRIVE at 1024 px) as max-pooled blocks "
                   "of the enlargement's side, so that the model learns vessels as thin as they are, not as wide as a coarse camera's annotator drew them.")
@click.option("--threshold-rule", type=click.Choice(["held-out", "camera-changes"]), default=None,
              help="Several datasets: store the held-out images' best threshold (held-out; preset), or the best mean F1 over those images "
                   "changed as other cameras change them (camera-changes: resolution, blur, contrast, JPEG, no border; for cameras not trained on).")
@click.option("--augment", "augment_settings", multiple=True, metavar="NAME=VALUE",
              help="Change one augmentation setting of the preset (m2unet.training.augment.AugmentConfig), e.g. jpeg_quality_min=15; repeatable.")
@click.option("--lr", type=float, default=None, help="AdamW learning rate (preset: 1e-3).")
@click.option("--lr-schedule", type=click.Choice(["constant", "cosine"]), default=None,
              help="constant (the paper; preset) or cosine annealing to 0 over the epochs (a variant beyond the paper).")
@click.option("--ema-half-life", type=float, default=None, metavar="EPOCHS",
              help="Validate and keep an exponential moving average of the weights whose memory halves in this many epochs "
                   "(a variant beyond the paper; preset: off).")
@click.option("--seed", type=int, default=None, help="Random seed (preset: 42); same seed on CPU → same weights.")
@click.option("--val-every", type=int, default=None, help="Validate every N epochs (preset: 5 for DRIVE/CHASE_DB1, 10 for HRF).")
@click.option("--data-root", type=click.Path(file_okay=False), default=None, help="Folder holding DRIVE/, CHASE_DB1/, HRF/ (default ../shared/datasets).")
@click.option("--accelerator", type=click.Choice(["auto", "cpu", "gpu"]), default="auto", show_default=True)
@click.option("--devices", type=int, default=1, show_default=True, help="GPUs (or CPU processes) per node; >1 uses DDP.")
@click.option("--num-nodes", type=int, default=1, show_default=True, help="Nodes for multi-node DDP (launch with torchrun).")
@click.option("--precision", type=click.Choice(["auto", "32-true", "bf16-mixed", "16-mixed"]), default="auto", show_default=True,
              help="auto: bf16 autocast on CPUs with bf16 and on Ampere+ GPUs, fp16 mixed on older GPUs.")
@click.option("--channels-last/--no-channels-last", default=True, show_default=True, help="NHWC memory layout (faster on CPU).")
@click.option("--test/--no-test", default=True, show_default=True, help="After training, report F1 on the dataset's test split (not used for any choice).")
@click.option("--threads", type=int, default=None, help="CPU threads for torch (default: all cores); 1 runs better when other jobs share the cores.")
@click.option("--time-limit", "time_limit", type=float, default=None,
              help="Minutes: stop after the last epoch that fits (validated, checkpointed); --resume continues. For batch-scheduler slots.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@one_line_errors
def train(dataset, model_name, epochs, batch_size, out_dir, resume, jaccard, crop, vessel_width, pool_coarse_labels, threshold_rule, augment_settings, lr, lr_schedule, ema_half_life, seed, val_every, data_root, accelerator, devices, num_nodes, precision,
          channels_last, test, threads, time_limit, quiet):
    """Train M2U-Net with the paper's recipe (AdamW 1e-3, BCE + 0.3·(1 − Jaccard), 300 epochs, ImageNet encoder).

    Writes OUT/config.json, metrics.csv, curves.png, augmentations.jpg, best.safetensors (weights with
    dataset, epochs, best epoch, validation Dice, threshold and git commit in the metadata), summary.json,
    and checkpoints/last.ckpt after every epoch (atomically; --resume continues from it after a kill).

    \b
    Examples:
      m2unet train --dataset drive --out runs/drive
      m2unet train --dataset drive --out runs/drive --resume          # after a crash or kill
      m2unet train --dataset my_images/ --epochs 50 --batch-size 2   # images/ labels/ masks/ folder
      m2unet train --dataset hrf --crop 1024                          # HRF on a CPU
      m2unet train --dataset hrf --accelerator gpu --time-limit 230   # stops cleanly; then --resume
      m2unet train --dataset drive --model erfnet --out runs/drive-erfnet  # a baseline, same recipe
      m2unet train --dataset drive,chase_db1,hrf --out runs/universal     # the universal model (FOV scaled to 1024 px)
      m2unet train --dataset chase_db1,hrf --out runs/loo-drive            # leave DRIVE out, test on it
      m2unet train --dataset drive,chase_db1,hrf --vessel-width 6 --out runs/universal-w6  # each dataset at one vessel width
      m2unet train --dataset drive,chase_db1,hrf --augment jpeg_quality_min=15 --augment jpeg_p=0.4  # harsher JPEG
      m2unet train --dataset chase_db1,hrf --ema-half-life 5 --out runs/loo-drive-ema  # keep a moving average of the weights
      m2unet train --dataset drive,chase_db1 --pool-coarse-labels --out runs/loo-hrf-pool  # DRIVE's labels as 2x2 blocks
      m2unet train --dataset chase_db1,hrf --threshold-rule camera-changes --out runs/loo-drive-cc  # threshold for unseen cameras
      torchrun --nproc_per_node 4 -m m2unet train --dataset chase_db1 --accelerator gpu --devices 4
    """
    import torch

    from ..data.datasets import dataset_names
    from ..models import list_models
    from .engine import train as run_training
    from .presets import preset_for

    if model_name not in list_models():
        raise M2UNetError(f"unknown model {model_name!r}; available: {', '.join(list_models())}")
    config = preset_for(dataset)
    if model_name != config["model"]:
        # only M2U-Net has a pretrained encoder; the paper trains its baselines from scratch
        config.update(model=model_name, encoder_weights=None)
    config.update(multi_dataset_options(config, vessel_width, pool_coarse_labels, threshold_rule))
    config["augment"] = augment_with(config["augment"], augment_settings)
    overrides = {"epochs": epochs, "batch_size": batch_size, "jaccard": jaccard, "crop": crop, "lr": lr, "lr_schedule": lr_schedule, "ema_half_life": ema_half_life, "seed": seed,
                 "val_every": val_every}
    for key, value in overrides.items():
        if value is not None:
            config[key] = value
    for key in ("epochs", "batch_size", "val_every"):
        if config[key] < 1:
            raise M2UNetError(f"--{key.replace('_', '-')} must be at least 1, got {config[key]}")
    if config["crop"] is not None and config["crop"] < INPUT_MULTIPLE:
        raise M2UNetError(f"--crop must be at least {INPUT_MULTIPLE}, got {config['crop']}")
    if ema_half_life is not None and not 0 < ema_half_life <= config["epochs"]:
        raise M2UNetError(f"--ema-half-life must be more than 0 and at most --epochs ({config['epochs']}), got {ema_half_life}")
    if threads is not None:
        if threads < 1:
            raise M2UNetError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    if time_limit is not None and time_limit <= 0:
        raise M2UNetError(f"--time-limit must be positive (minutes), got {time_limit}")
    prefix = "" if model_name == "m2unet" else f"{model_name}-"
    suffix = "" if config["lr_schedule"] == "constant" else f"-{config['lr_schedule']}"
    named = config.get("datasets") or config["dataset"] in dataset_names()
    out = out_dir or f"runs/{prefix}{config['dataset'] if named else 'custom'}-{config['jaccard']}{suffix}"
    summary = run_training(config, out, resume=resume, accelerator=accelerator, devices=devices, num_nodes=num_nodes, precision=precision,
                           channels_last=channels_last, progress=not quiet, root=data_root, test=test,
                           time_limit_minutes=time_limit)
    if summary.get("best_epoch") is None:
        return
    if summary.get("stopped_by_time_limit"):
        click.echo(f"stopped by --time-limit after epoch {summary['epochs_done']} of {summary['epochs']}; continue with: --out {out} --resume")
    choice = summary.get("threshold_choice")
    threshold = f"threshold {summary['threshold']:.3f}" + (f", chosen under camera changes; the images' own {choice['validation_threshold']:.3f}" if choice else "")
    click.echo(f"best validation Dice {summary['val_dice']:.4f} at epoch {summary['best_epoch']} ({threshold}); "
               f"{summary['training_seconds'] / 60:.1f} min; weights: {out}/best.safetensors")
    if summary.get("test"):
        t = summary["test"]
        click.echo(f"test F1 {t['f1_at_stored_threshold']:.4f} at the stored threshold, {t['f1_at_best_threshold']:.4f} at the best ({t['best_threshold']:.3f})")


def multi_dataset_options(config: dict, vessel_width: float | None, pool_coarse_labels: bool, threshold_rule: str | None = None) -> dict:
    """The config changes of the options that only a run of several datasets has, checked."""
    changes = {}
    if vessel_width is not None:
        if not 1 <= vessel_width <= 32:
            raise M2UNetError(f"--vessel-width must be between 1 and 32 px, got {vessel_width}")
        changes["vessel_width"] = vessel_width
    if pool_coarse_labels:
        changes["pool_coarse_labels"] = True
    if threshold_rule is not None:
        changes["threshold_rule"] = threshold_rule
    if changes and not config.get("datasets"):
        flags = ", ".join(f"--{name.replace('_', '-')}" for name in changes)
        raise M2UNetError(f"{flags} needs several datasets (--dataset drive,chase_db1,hrf)")
    return changes


def augment_with(settings: dict, changes: tuple[str, ...]) -> dict:
    """The preset's augmentation ``settings`` with each NAME=VALUE of ``changes`` applied, VALUE read as the type of the
    setting's default in :class:`m2unet.training.augment.AugmentConfig`."""
    from dataclasses import fields

    from .augment import AugmentConfig

    known = {field.name: type(field.default) for field in fields(AugmentConfig)}
    out = dict(settings)
    for change in changes:
        name, sep, text = change.partition("=")
        if not sep or name not in known or known[name] is tuple:
            raise M2UNetError(f"--augment {change}: expected NAME=VALUE with NAME one of {', '.join(n for n, t in known.items() if t is not tuple)}")
        try:
            out[name] = known[name](text)
        except ValueError:
            raise M2UNetError(f"--augment {change}: {text!r} is not a {known[name].__name__}") from None
    AugmentConfig(**{**out, "elastic_grid": tuple(out.get("elastic_grid", (8, 8)))})  # out-of-range values fail here, not after loading data
    return out
