"""The training checkpoint ``OUT/checkpoints/last.ckpt``: what it holds, writing it atomically, reading it back for --resume.

A plain dict of tensors and primitives (read with ``torch.load(weights_only=True)``, nothing is unpickled):
``format``, ``config``, ``epoch`` (completed epochs), ``model``, ``optimizer``, ``rng`` (this process's random
generator states), ``rng_ranks`` (every DDP rank's, when there are several), ``history`` (the metrics rows),
``best`` (epoch, val_dice, threshold), ``elapsed_seconds`` and, for a run with a weight average, ``average`` (its state).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..data.io import write_atomic
from ..errors import M2UNetError

CHECKPOINT_FORMAT = "m2unet-train-checkpoint-v1"
# Settings that must not change when a run is resumed (epochs may grow).
FROZEN_KEYS = ("model", "dataset", "lr", "lr_schedule", "weight_decay", "jaccard", "jaccard_weight", "batch_size", "crop", "seed", "val_seed", "val_copies",
               "augment", "datasets", "fov_diameter", "vessel_width", "holdout", "balanced", "ema_half_life",
               "pool_coarse_labels")
# values of keys added after the first checkpoints were written, for resuming those
KEY_DEFAULTS = {"lr_schedule": "constant", "vessel_width": None, "ema_half_life": None, "pool_coarse_labels": False}


def load_checkpoint(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise M2UNetError(f"{path}: unreadable checkpoint ({type(error).__name__}); delete it to start over") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise M2UNetError(f"{path}: not an m2unet training checkpoint")
    return state


def check_resumable(state: dict, config: dict, path: Path) -> None:
    """Refuse to resume a run whose frozen settings (:data:`FROZEN_KEYS`) differ from ``config``'s."""
    changed = [k for k in FROZEN_KEYS if state["config"].get(k, KEY_DEFAULTS.get(k)) != config.get(k, KEY_DEFAULTS.get(k))]
    if changed:
        used = ", ".join(f"{k}={state['config'].get(k)!r}" for k in changed)
        raise M2UNetError(f"{path}: cannot resume with different {', '.join(changed)} (the run used {used})")


def save_checkpoint(path: Path, config: dict, epoch: int, model, optimizer, rng: dict, history: list[dict], best: dict,
                    elapsed_seconds: float, rng_ranks: list[dict] | None = None, average: torch.nn.Module | None = None) -> None:
    """Write the checkpoint after ``epoch`` completed epochs, atomically (a kill leaves the previous one whole)."""
    checkpoint = {"format": CHECKPOINT_FORMAT, "config": config, "epoch": epoch, "model": cpu_state(model),
                  "optimizer": optimizer.state_dict(), "rng": rng, "history": history, "best": best,
                  "elapsed_seconds": elapsed_seconds, **({"rng_ranks": rng_ranks} if rng_ranks else {}),
                  **({"average": cpu_state(average)} if average is not None else {})}
    write_atomic(path, lambda tmp: torch.save(checkpoint, tmp))


def cpu_state(module: torch.nn.Module) -> dict:
    """A module's state_dict as detached CPU tensors (what the checkpoint stores)."""
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def restore_rng(state: dict, rank: int, world: int, device: torch.device, seed: int) -> None:
    """Continue each rank's own random stream from the checkpoint; with another number of processes than the run had, start
    reproducible new streams (seeded from the seed, rank and epoch) instead."""
    saved = state.get("rng_ranks") or [state["rng"]]
    if len(saved) == world:
        set_rng_state(saved[rank], device)
    else:
        torch.manual_seed(seed + 1000 * rank + 1_000_003 * int(state["epoch"]))
