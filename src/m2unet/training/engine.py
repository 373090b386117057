"""The training loop, on Lightning Fabric: one process on CPU, or DDP over GPUs / nodes, as a :class:`Trainer` of small steps.

Fabric (Lightning's lightweight engine) handles devices, DDP and mixed precision; the loop itself is
plain so that what a checkpoint holds is exactly known: after every epoch ``OUT/checkpoints/last.ckpt``
is written atomically (:mod:`.checkpoint`) with the model, the optimizer, the completed epoch count, the random generator
states, the metrics history and the best result so far — tensors and primitives only, read back with
``torch.load(weights_only=True)``. ``resume=True`` continues from it after a crash or SIGKILL, losing
only the running epoch; with the same seed on CPU the resumed run ends with the same weights.

Each epoch: a random permutation of the in-memory training images (torch's global generator; under DDP rank 0's,
shared, each rank taking an equal share), batches augmented on the device (:mod:`.augment`) with each rank's own
random stream, optional random crop, loss :mod:`.losses`.
Validation (every ``val_every`` epochs and after the last): pooled confusion counts inside the FOV over
1001 thresholds (:func:`m2unet.evaluation.metrics.threshold_counts_torch`), Dice at the best threshold;
the best epoch's weights go to ``OUT/best.safetensors`` with the threshold in their metadata (:mod:`.report`).
Several datasets (``config["datasets"]``, :data:`m2unet.training.presets.MULTI`, :class:`MultiDatasetTrainer`): images
scaled to one FOV diameter, epochs drawn in balance over the datasets, and validation on held-out training images
instead of augmented copies.

A variant of the recipe subclasses :class:`Trainer` and overrides one step (``load_data``, ``build_model``,
``build_optimizer``, ``build_criterion``, ``learning_rate``, ``training_step``, ``validate``, …): docs/training.md.
``ema_half_life`` (``--ema-half-life``, epochs): validate and keep an exponential moving average of the weights and
BatchNorm statistics instead of the weights of the last step (:meth:`Trainer.build_weight_average`).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.datasets import DATASETS, FOV_DIAMETER
from ..data.io import write_atomic
from ..data.scale import back_max_from, label_pool
from ..errors import M2UNetError
from .augment import AugmentConfig, Augmenter, save_augmentation_grid
from .checkpoint import CHECKPOINT_FORMAT, check_resumable, load_checkpoint, restore_rng, rng_state, save_checkpoint
from .data import balanced_order, dataset_diameters, load_scaled_training_sets, load_training_tensor, random_crop, to_float
from .losses import BCEJaccardLoss, max_pooled, pooled_loss
from .report import (
    curves_title,
    evaluate_test_split,
    hardware_description,
    plot_curves,
    tensorboard_logger,
    weights_metadata,
    write_metrics_csv,
)

# the names callers import from here (tests, benchmarks): the checkpoint format and the test-split report
__all__ = ["CHECKPOINT_FORMAT", "KILL_AFTER_EPOCH_ENV", "MultiDatasetTrainer", "Trainer", "TrainingData", "epoch_length", "evaluate_test_split",
           "hardware_description", "learning_rate", "rank_share", "train", "trainer_class"]

# Test-only fault injection: SIGKILL this process right after the checkpoint of epoch N is written.
KILL_AFTER_EPOCH_ENV = "M2UNET_TRAIN_KILL_AFTER_EPOCH"
LR_SCHEDULES = ("constant", "cosine")
TEST_SPLIT_DATASETS = tuple(DATASETS)  # the built-in datasets, whose test split is reported after training


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


def rank_share(order: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This rank's indices from the epoch's permutation ``order`` (the same on every rank).

    Padded by wrapping round to a multiple of ``world``, as torch's DistributedSampler does, so that every rank takes
    the same number of steps: DDP all-reduces the gradients of each step, and a rank with one step fewer hangs the others.
    With one process it is ``order`` itself.
    """
    per_rank = -(-len(order) // world)
    padded = order.repeat(-(-per_rank * world // len(order)))[: per_rank * world]
    return padded[rank::world]


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


def epoch_order(groups: torch.Tensor | None, count: int) -> torch.Tensor:
    """The images of one epoch: a permutation of all ``count``, or with dataset ``groups`` every dataset equally often."""
    return torch.randperm(count) if groups is None else balanced_order(groups)


def epoch_length(groups: torch.Tensor | None, count: int) -> int:
    return count if groups is None else int(torch.bincount(groups).max()) * len(torch.unique(groups))


def pooled_counts(model, val: torch.Tensor, batch_size: int, fabric, channels_last: bool, rank: int, world: int,
                  pools: list[int] | None = None) -> dict:
    """Confusion counts over thresholds, pooled over this rank's share of the validation images (and all-reduced);
    image i's map, label and mask compared as ``pools[i]``-side max-pooled blocks (:func:`.losses.pooled_loss`).

    The counting runs on the training device: on a GPU, HRF's 8-megapixel maps never go back to the host.
    """
    from ..evaluation.metrics import sum_counts, threshold_counts_torch

    model.eval()
    per_image = []
    with torch.no_grad():
        indices = list(range(rank, val.shape[0], world))
        for start in range(0, len(indices), batch_size):
            batch = to_float(val[indices[start : start + batch_size]].to(fabric.device))
            images = batch[:, :3].contiguous(memory_format=torch.channels_last) if channels_last else batch[:, :3]
            probability = torch.sigmoid(model(images).float())
            for i, planes in zip(indices[start : start + batch_size], torch.cat([probability[:, :1], batch[:, 3:5]], dim=1), strict=True):
                p, y, m = max_pooled(planes[None], pools[i] if pools else 1)[0]
                per_image.append(threshold_counts_torch(p, y > 0.5, m > 0.5))
    model.train()
    if not per_image:  # a rank without validation images (more ranks than images) adds zeros to the all-reduce
        per_image = [threshold_counts_torch(torch.zeros(0), torch.zeros(0, dtype=torch.bool))]
    total = sum_counts(per_image)
    if world > 1:
        # NCCL reduces device tensors; the counts go there and back (int64 keeps them exact)
        total = {k: fabric.all_reduce(torch.from_numpy(np.ascontiguousarray(v)).to(fabric.device), reduce_op="sum").cpu().numpy() for k, v in total.items()}
    return total


def _probe_device(accelerator: str) -> torch.device:
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


@dataclass
class TrainingData:
    """A run's images in memory: uint8 N×5×H×W stacks (RGB, label, FOV mask)."""

    stack: torch.Tensor  # the training images
    names: list[str]
    validation: str  # how the run validates, in words (config.json)
    val: torch.Tensor | None = None  # validation images; None: augmented copies of the training images (made in set-up)
    groups: torch.Tensor | None = None  # each training image's dataset (balanced epochs); None: one dataset
    pools: torch.Tensor | None = None  # each training image's label max-pool side (--pool-coarse-labels); None: all 1
    val_pools: list[int] | None = None  # the same for each validation image


class Trainer:
    """One training run as small steps; ``run()`` does them all and returns the summary.

    Set-up: :meth:`read_checkpoint` → :meth:`setup_fabric` → :meth:`load_data` → :meth:`build_augmenter` →
    :meth:`place_data` → :meth:`build_model` (:meth:`build_optimizer`) → :meth:`build_criterion` → :meth:`restore` →
    :meth:`write_run_info`. Each epoch (:meth:`fit`): :meth:`train_epoch` (:meth:`learning_rate`, :meth:`epoch_indices`,
    :meth:`make_batch`, :meth:`training_step`) → :meth:`validate` when due → :meth:`log_metrics` → :meth:`save_checkpoint`
    → :meth:`show_progress`. Then :meth:`finish`: curves, final weights metadata, test split, summary.json.
    A variant subclasses it and overrides one step, as :class:`MultiDatasetTrainer` does with the data.
    """

    def __init__(self, config: dict, out_dir: str | os.PathLike, resume: bool = False, accelerator: str = "auto", devices: int = 1,
                 num_nodes: int = 1, precision: str = "auto", channels_last: bool = True, progress: bool = True, root=None, test: bool = True,
                 time_limit_minutes: float | None = None):
        self.config, self.out, self.resume, self.root, self.test = config, Path(out_dir), resume, root, test
        self.accelerator, self.devices, self.num_nodes, self.precision = accelerator, devices, num_nodes, precision
        self.channels_last, self.progress, self.time_limit_minutes = channels_last, progress, time_limit_minutes
        self.checkpoint_path = self.out / "checkpoints" / "last.ckpt"
        self.history: list[dict] = []
        self.best = {"epoch": None, "val_dice": -1.0, "threshold": None}
        self.start_epoch, self.elapsed_before, self.stopped_by_time_limit = 0, 0.0, False

    @property
    def epochs(self) -> int:
        return int(self.config["epochs"])

    def run(self) -> dict:
        """Set up, train the epochs left, report; the summary dict ({} on DDP ranks other than 0)."""
        self.setup(self.read_checkpoint())
        self.fit()
        return self.finish()

    # ---- set-up ---------------------------------------------------------------------------------------------------

    def read_checkpoint(self) -> dict | None:
        """The checkpoint to resume from (None: a new run); refuses to overwrite a run or to resume with other settings."""
        if not self.checkpoint_path.exists():
            if self.resume and self.progress:
                print(f"no checkpoint in {self.out}; starting a new run", file=sys.stderr)
            return None
        if not self.resume:
            raise M2UNetError(f"{self.out}: already holds a training run; pass --resume to continue it or choose another --out")
        state = load_checkpoint(self.checkpoint_path)
        check_resumable(state, self.config, self.checkpoint_path)
        return state

    def dataset_names(self) -> list[str]:
        return [self.config["dataset"]]

    def setup(self, state: dict | None) -> None:
        from ..data import load_dataset

        for name in self.dataset_names():
            load_dataset(name, "train", root=self.root)  # a missing dataset fails here, before the slow imports
        self.setup_fabric()
        self.fabric.seed_everything(self.config["seed"], verbose=False)
        self.data = self.load_data()
        self.augment = self.build_augmenter()
        self.place_data()
        self.model, self.optimizer = self.build_model(state)
        self.criterion = self.build_criterion()
        count = len(rank_share(torch.arange(epoch_length(self.data.groups, self.data.stack.shape[0])), self.rank, self.world))
        self.steps_per_epoch = -(-count // self.config["batch_size"])
        self.average = self.build_weight_average()
        self.restore(state)
        self.write_run_info()

    def setup_fabric(self) -> None:
        from lightning.fabric import Fabric

        strategy = "ddp" if self.devices > 1 or self.num_nodes > 1 else "auto"
        self.fabric = Fabric(accelerator=self.accelerator, devices=self.devices, num_nodes=self.num_nodes, strategy=strategy,
                             precision=resolve_precision(self.precision, _probe_device(self.accelerator)))
        self.fabric.launch()
        self.rank, self.world, self.device = self.fabric.global_rank, self.fabric.world_size, self.fabric.device
        self.main_process = self.rank == 0
        plugin = self.fabric._precision
        self.used_precision = plugin.precision if hasattr(plugin, "precision") else self.precision

    def load_data(self) -> TrainingData:
        """One dataset's training split as it is, validated on augmented copies (the paper has no validation images)."""
        config = self.config
        stack, names = load_training_tensor(config["dataset"], "train", root=self.root, progress=self.progress and self.main_process)
        return TrainingData(stack, names, f"{config['val_copies']} augmented copy/copies of each training image, drawn once with seed {config['val_seed']}")

    def build_augmenter(self) -> Augmenter:
        settings = self.config["augment"]
        return Augmenter(AugmentConfig(**{**settings, "elastic_grid": tuple(settings["elastic_grid"])}))

    def place_data(self) -> None:
        """Images and augmenter onto the training device; the validation images (augmented copies unless the data has some)."""
        data = self.data
        if self.device.type == "cuda":
            # the uint8 images live on the GPU (HRF: 0.6 GB): no per-step host decode, conversion or copy
            data.stack = data.stack.to(self.device)
            torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels once
        self.augment = self.augment.to(self.device)
        data.val = make_validation_set(data.stack, self.config, self.augment) if data.val is None else data.val.to(data.stack.device)

    def build_model(self, state: dict | None):
        """(model, optimizer), set up by Fabric; the ImageNet encoder for a new run, the checkpoint's weights for a resumed one."""
        from .. import weights

        encoder_weights = None if state else self.config.get("encoder_weights")
        model = weights.build_model(self.config["model"], encoder_weights)
        if state:
            model.load_state_dict(state["model"])
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return self.fabric.setup(model, self.build_optimizer(model))

    def build_optimizer(self, model) -> torch.optim.Optimizer:
        return torch.optim.AdamW(model.parameters(), lr=self.config["lr"], weight_decay=self.config["weight_decay"])

    def build_criterion(self):
        return BCEJaccardLoss(self.config["jaccard"], self.config["jaccard_weight"])

    def build_weight_average(self):
        """With ``ema_half_life`` H: an exponential moving average of the weights and BatchNorm statistics, updated after
        every step with the decay that halves a step's weight in H epochs; it is what validation scores and
        ``best.safetensors`` holds. Why: under the paper's constant learning rate the weights of consecutive epochs
        differ enough that the validation Dice and its best threshold jump from one validation to the next (the
        universal run's thresholds ranged 0.48–0.79 over its last 50 epochs), and an average of nearby weights is
        a flatter minimum, which is said to carry better to unseen domains (Cha et al. 2021, SWAD). None: off.
        """
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        half_life = self.config.get("ema_half_life")
        if not half_life:
            return None
        decay = 0.5 ** (1.0 / (float(half_life) * self.steps_per_epoch))
        return AveragedModel(self.model.module, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

    def scored_model(self) -> torch.nn.Module:
        """The model validation scores and ``best.safetensors`` keeps: the weight average when there is one."""
        return self.average.module if self.average is not None else self.model

    def restore(self, state: dict | None) -> None:
        """Continue the checkpoint's optimizer, history, best result and random streams; or seed a new run's streams."""
        if state is None:
            torch.manual_seed(self.config["seed"] + 1000 * self.rank)  # different augmentations per DDP rank, reproducible
            return
        self.optimizer.load_state_dict(state["optimizer"])
        if self.average is not None:
            self.average.load_state_dict(state["average"])
        self.history, self.best = list(state["history"]), dict(state["best"])
        self.start_epoch, self.elapsed_before = int(state["epoch"]), float(state["elapsed_seconds"])
        restore_rng(state, self.rank, self.world, self.device, self.config["seed"])

    def write_run_info(self) -> None:
        """``config.json`` (the config and how the run runs), ``augmentations.jpg`` (once), the TensorBoard logger."""
        from ..weights import git_commit

        self.out.mkdir(parents=True, exist_ok=True)
        self.run_info = {"precision": self.used_precision, "channels_last": self.channels_last, "devices": self.devices, "num_nodes": self.num_nodes,
                         "world_size": self.world, "accelerator": self.device.type, "hardware": hardware_description(self.device),
                         "git_commit": git_commit(), "torch": torch.__version__, "resumed_from_epoch": self.start_epoch,
                         "training_images": self.data.names, "validation": self.data.validation}
        self.tensorboard = None
        if not self.main_process:
            return
        text = json.dumps({"config": self.config, "run": self.run_info}, indent=2) + "\n"
        write_atomic(self.out / "config.json", lambda tmp: Path(tmp).write_text(text))
        if not (self.out / "augmentations.jpg").exists():
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.config["seed"] + 7)
                save_augmentation_grid(self.out / "augmentations.jpg", to_float(self.data.stack[:4].cpu()), self.augment.cpu())
            self.augment = self.augment.to(self.device)
        self.tensorboard = tensorboard_logger(self.out)

    # ---- the epochs -----------------------------------------------------------------------------------------------

    def fit(self) -> None:
        """The epochs left: train, validate when due, log, checkpoint; after a checkpoint, stop at the time limit."""
        kill_after = int(os.environ.get(KILL_AFTER_EPOCH_ENV, "0") or 0)
        self.bar = self.progress_bar()
        self.started = time.perf_counter()
        self.model.train()
        for epoch in range(self.start_epoch, self.epochs):
            epoch_start = time.perf_counter()
            row = self.train_epoch(epoch)
            self.stopped_by_time_limit = self.out_of_time(epoch, epoch_start)
            if (epoch + 1) % self.config["val_every"] == 0 or epoch + 1 == self.epochs or self.stopped_by_time_limit:
                self.validate(row)
            row["epoch_seconds"] = round(time.perf_counter() - epoch_start, 3)
            row["elapsed_seconds"] = round(self.elapsed(), 1)
            self.history.append(row)
            self.log_metrics(row)
            self.save_checkpoint(row)
            self.show_progress(row)
            if kill_after and epoch + 1 == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
            if self.stopped_by_time_limit:
                self.say(f"time limit of {self.time_limit_minutes:g} min reached after epoch {epoch + 1}/{self.epochs}; continue with --resume")
                break
        self.bar.close()

    def learning_rate(self, epoch: int) -> float:
        return learning_rate(self.config, epoch)

    def train_epoch(self, epoch: int) -> dict:
        """One pass over this rank's share of the epoch's images; the epoch's metrics row (validation not yet filled in)."""
        lr = self.learning_rate(epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        order, batch_size = self.epoch_indices(), self.config["batch_size"]
        steps = [order[step * batch_size : (step + 1) * batch_size] for step in range(self.steps_per_epoch)]
        losses = [self.training_step(self.make_batch(index), None if self.data.pools is None else self.data.pools[index]) for index in steps]
        self.train_loss = float(torch.stack(losses).mean())
        if self.world > 1:
            self.train_loss = float(self.fabric.all_reduce(torch.tensor(self.train_loss, device=self.device), reduce_op="mean"))
        return {"epoch": epoch + 1, "train_loss": round(self.train_loss, 6), "lr": round(lr, 9), "val_dice": None, "val_threshold": None, "val_dice_at_0.5": None}

    def epoch_indices(self) -> torch.Tensor:
        """This rank's images of the epoch, in order (rank 0's permutation, shared, so that the ranks' shares do not overlap)."""
        order = epoch_order(self.data.groups, self.data.stack.shape[0])
        if self.world > 1:
            order = self.fabric.broadcast(order, src=0)
        return rank_share(order, self.rank, self.world)

    def make_batch(self, index: torch.Tensor) -> torch.Tensor:
        """Float N×5×H×W on the device: the images at ``index``, randomly cropped (``crop``) and augmented."""
        return self.augment(random_crop(to_float(self.data.stack[index].to(self.device)), self.config["crop"]))

    def training_step(self, batch: torch.Tensor, pools: torch.Tensor | None = None) -> torch.Tensor:
        """One optimiser step on ``batch``; ``pools``: each sample's label max-pool side (:func:`.losses.pooled_loss`)."""
        images, labels = batch[:, :3], batch[:, 3:4]
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        loss = pooled_loss(self.criterion, self.model(images), labels, pools)
        self.optimizer.zero_grad(set_to_none=True)
        self.fabric.backward(loss)
        self.optimizer.step()
        if self.average is not None:
            self.average.update_parameters(self.model.module)
        return loss.detach()

    def out_of_time(self, epoch: int, epoch_start: float) -> bool:
        """Whether another epoch (about as long as this one, plus a validation) would end past the time limit."""
        if self.time_limit_minutes is None or epoch + 1 >= self.epochs:
            return False
        now = time.perf_counter()
        stop = (now - self.started) + 1.5 * (now - epoch_start) > 60.0 * self.time_limit_minutes
        if self.world > 1:  # every rank stops after the same epoch
            stop = bool(self.fabric.all_reduce(torch.tensor(float(stop), device=self.device), reduce_op="max") > 0)
        return stop

    def validate(self, row: dict) -> None:
        """Pooled Dice on the validation images at the best threshold and at 0.5 into ``row``; a new best is saved."""
        from ..evaluation.metrics import best_threshold, f1_at

        with self.fabric.autocast():  # the average is no Fabric module: the same precision as the training model's forward
            counts = pooled_counts(self.scored_model(), self.data.val, self.config["batch_size"], self.fabric, self.channels_last, self.rank, self.world,
                                   self.data.val_pools)
        threshold, dice = best_threshold(counts)
        row.update(val_dice=round(dice, 6), val_threshold=threshold, **{"val_dice_at_0.5": round(f1_at(counts, 0.5), 6)})
        if dice > self.best["val_dice"]:
            self.best = {"epoch": row["epoch"], "val_dice": dice, "threshold": threshold}
            if self.main_process:
                self.save_best(row["epoch"], self.elapsed())

    def elapsed(self) -> float:
        """Seconds of training so far, over every invocation of the run."""
        return self.elapsed_before + time.perf_counter() - self.started

    # ---- checkpoint and reporting ---------------------------------------------------------------------------------

    def save_best(self, epochs_done: int, seconds: float) -> None:
        from ..weights import save_weights

        save_weights(self.scored_model(), self.out / "best.safetensors", weights_metadata(self.config, self.run_info, self.best, epochs_done, seconds))

    def log_metrics(self, row: dict) -> None:
        """``metrics.csv`` rewritten from the history (so a resumed run never repeats rows), and TensorBoard."""
        if not self.main_process:
            return
        write_metrics_csv(self.out / "metrics.csv", self.history)
        if self.tensorboard is not None:
            self.tensorboard.log_metrics({k: v for k, v in row.items() if v is not None and k != "epoch"}, step=row["epoch"])

    def save_checkpoint(self, row: dict) -> None:
        """``checkpoints/last.ckpt`` after the epoch of ``row``, with every rank's random stream (all ranks call it)."""
        rng = rng_state(self.device)
        rng_ranks = None
        if self.world > 1:  # every rank's stream, so that --resume continues each of them (a collective)
            with warnings.catch_warnings():  # Lightning's all_gather calls a torch function that warns it is deprecated
                warnings.filterwarnings("ignore", message=".*all_gather is deprecated")
                gathered = self.fabric.all_gather(rng)
            rng_ranks = [{k: v[r].cpu().clone() for k, v in gathered.items()} for r in range(self.world)]  # clone: own storage (set_rng_state needs it)
        if self.main_process:
            save_checkpoint(self.checkpoint_path, self.config, row["epoch"], self.model, self.optimizer, rng, self.history, self.best,
                            row["elapsed_seconds"], rng_ranks, self.average)
        self.fabric.barrier()

    def progress_bar(self):
        from tqdm import tqdm

        return tqdm(total=self.epochs, initial=self.start_epoch, desc=f"train {self.config['dataset']}", unit="epoch",
                    disable=not (self.progress and self.main_process), mininterval=1.0 if sys.stderr.isatty() else 30.0, dynamic_ncols=True)

    def say(self, line: str) -> None:
        if self.progress and self.main_process:
            self.bar.write(line, file=sys.stderr)

    def show_progress(self, row: dict) -> None:
        postfix = {"loss": f"{self.train_loss:.4f}"}
        best = self.best
        if best["epoch"]:
            postfix["best_val_dice"] = f"{best['val_dice']:.4f}@{best['epoch']}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(1)
        if row["val_dice"] is not None:
            self.say(f"epoch {row['epoch']}/{self.epochs}  loss {self.train_loss:.4f}  val Dice {row['val_dice']:.4f} (threshold {row['val_threshold']:.3f})  "
                     f"best {best['val_dice']:.4f}@{best['epoch']}  {row['elapsed_seconds'] / 60:.1f} min")

    def summary(self) -> dict:
        history, best, config = self.history, self.best, self.config
        return {"dataset": config["dataset"], "model": config["model"], "jaccard": config["jaccard"], "epochs": self.epochs,
                "epochs_done": history[-1]["epoch"] if history else self.start_epoch, "stopped_by_time_limit": self.stopped_by_time_limit,
                "best_epoch": best["epoch"], "val_dice": best["val_dice"], "threshold": best["threshold"],
                "training_seconds": history[-1]["elapsed_seconds"] if history else 0.0,
                "seconds_per_epoch": round(float(np.mean([r["epoch_seconds"] for r in history])), 3) if history else None,
                "steps_per_epoch": self.steps_per_epoch, "load_average_at_end": list(os.getloadavg()), **self.run_info}

    def after_training(self, model: torch.nn.Module) -> dict:
        """What is chosen with the best weights once training is over, stored in their metadata and the summary
        (none here; :class:`MultiDatasetTrainer`: the FOV diameters to run at)."""
        return {}

    def threshold_choice(self) -> dict:
        """The stored threshold when a rule other than the validation images' best pooled F1 chooses it (none here;
        :class:`MultiDatasetTrainer`: ``threshold_rule`` camera-changes)."""
        return {}

    def finish(self) -> dict:
        """``curves.png``, the final metadata of ``best.safetensors``, the test split's F1, ``summary.json`` (rank 0)."""
        from ..weights import load_weights, save_weights

        summary = self.summary()
        if not self.main_process:
            return {}  # rank 0 reports
        plot_curves(self.out / "curves.png", self.history, curves_title(self.config))
        model, meta = load_weights(self.out / "best.safetensors")
        for stale in ("threshold_rule", "threshold_choice"):  # a finished run resumed under another rule chooses again
            meta.pop(stale, None)
        chosen_after_training = self.after_training(model)
        summary.update(chosen_after_training)
        meta.update(weights_metadata(self.config, self.run_info, self.best, summary["epochs_done"], summary["training_seconds"]), **chosen_after_training)
        save_weights(model, self.out / "best.safetensors", meta)
        # the threshold rule runs the saved weights as `segment` does (at the diameters just chosen)
        threshold = self.threshold_choice()
        if threshold:
            summary.update(threshold)
            save_weights(model, self.out / "best.safetensors", {**meta, **threshold})
        if self.test and self.config["dataset"] in TEST_SPLIT_DATASETS:
            summary["test"] = evaluate_test_split(self.out / "best.safetensors", self.config["dataset"], summary["threshold"], root=self.root, device=self.device)
        write_atomic(self.out / "summary.json", lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2) + "\n"))
        return summary


class MultiDatasetTrainer(Trainer):
    """Several datasets in one run (``config["datasets"]``, the MULTI preset): the data step differs, nothing else.

    Every image scaled to ``fov_diameter``, the ``holdout`` images kept out for unaugmented validation, and each
    dataset's group recorded, so that :func:`epoch_order` draws the datasets in balance.
    """

    def dataset_names(self) -> list[str]:
        return list(self.config["datasets"])

    def load_data(self) -> TrainingData:
        config = self.config
        self.diameters = dataset_diameters(config, self.root)
        stack, groups, names, val, val_names = load_scaled_training_sets(config["datasets"], self.diameters, config["holdout"], self.root,
                                                                        self.progress and self.main_process)
        at = ", ".join(f"{name} {diameter}" for name, diameter in self.diameters.items())
        data = TrainingData(stack, names, f"held-out training images at FOV diameters ({at} px), not augmented: {', '.join(val_names)}",
                            val=val, groups=groups)
        if config.get("pool_coarse_labels"):
            side = {name: label_pool(self.diameters[name], FOV_DIAMETER[name]) for name in config["datasets"]}
            data.pools = torch.tensor([side[name] for name in config["datasets"]])[groups]
            data.val_pools = [side[name.split("/")[0]] for name in val_names]
            pooled = ", ".join(f"{name} {k}×{k}" for name, k in side.items() if k > 1) or "none"
            data.validation += f"; labels compared as max-pooled blocks ({pooled})"
        return data

    def after_training(self, model: torch.nn.Module) -> dict:
        """How the best model runs photographs, chosen on the held-out images (:mod:`.run_diameter`): the FOV diameters,
        or for a run at one vessel width the map width of its :class:`m2unet.data.scale.WidthRule`."""
        from ..evaluation.evaluate import torch_predictor
        from .contrast import contrast_metadata
        from .run_diameter import run_diameter_metadata, width_rule_metadata

        if self.best["epoch"] is None:
            return {}
        contrast = contrast_metadata(self.config["datasets"], self.config["holdout"], self.root, self.progress)
        self.say(f"restores the contrast of flatter photographs up to {contrast['contrast_floor']} (its training photographs' median)")
        predict = torch_predictor(model.to(self.device or "cpu").eval())
        if self.config.get("vessel_width"):
            found = width_rule_metadata(predict, self.config["holdout"], self.diameters, self.config["fov_diameter"], self.best["threshold"], self.root,
                                        self.progress)
            self.say(f"runs photographs where its map's vessels are {found['run_vessel_width']['map_width']:.2f} px wide (calibrated on the held-out images)")
            return {**contrast, **found}
        # the config holds what back_max_from reads from the weights (fov_diameter, datasets, pool_coarse_labels)
        found = run_diameter_metadata(predict, self.config["holdout"], self.config["fov_diameter"], self.best["threshold"], self.root, self.progress,
                                      back_max_from(self.config))
        self.say(f"runs photographs at FOV diameters {found['run_fov_diameter']} (chosen on the held-out images)")
        return {**contrast, **found}

    def threshold_choice(self) -> dict:
        """With ``threshold_rule`` camera-changes: the threshold of the best mean F1 over the held-out images changed as
        other cameras change them (:mod:`m2unet.evaluation.camera_threshold`), the saved weights run as ``segment``
        runs them; the validation threshold and each change's F1 are kept in ``threshold_choice``."""
        from tqdm import tqdm

        from ..evaluation.camera_threshold import counts_under_changes, threshold_under_changes
        from ..evaluation.predictor import model_predictor
        from .run_diameter import held_out_samples

        if self.config.get("threshold_rule", "held-out") != "camera-changes" or self.best["epoch"] is None:
            return {}
        device = "cuda" if self.device is not None and self.device.type == "cuda" else "cpu"
        predict, _, _ = model_predictor(self.out / "best.safetensors", None, "auto", device)
        samples = held_out_samples(self.config["holdout"], self.root)
        with tqdm(total=len(samples), desc="threshold under camera changes", unit="image", disable=not self.progress, leave=False) as bar:
            photos = ((f"{dataset}/{sample.name}", sample.image, sample.label, sample.mask) for dataset, sample in samples)
            totals = counts_under_changes(predict, photos, done=lambda name: bar.update(1))
        threshold, f1 = threshold_under_changes(totals)
        self.say(f"stores threshold {threshold:.3f}, the best mean F1 over {len(f1)} simulated camera changes of the held-out images "
                 f"(their best as they are, at the training diameter: {self.best['threshold']:.3f})")
        return {"threshold": threshold, "threshold_rule": "camera-changes",
                "threshold_choice": {"validation_threshold": self.best["threshold"], "mean_f1": round(float(np.mean(list(f1.values()))), 6),
                                     "f1_per_change": {name: round(value, 6) for name, value in f1.items()}}}


def trainer_class(config: dict) -> type[Trainer]:
    """The trainer a config asks for: :class:`MultiDatasetTrainer` for several datasets, else :class:`Trainer`."""
    return MultiDatasetTrainer if config.get("datasets") else Trainer


def train(config: dict, out_dir: str | os.PathLike, resume: bool = False, accelerator: str = "auto", devices: int = 1, num_nodes: int = 1,
          precision: str = "auto", channels_last: bool = True, progress: bool = True, root=None, test: bool = True,
          time_limit_minutes: float | None = None) -> dict:
    """Train one model as ``config`` says (a preset from :mod:`.presets`, possibly edited); returns the summary dict.

    ``time_limit_minutes``: stop this invocation after the last epoch that fits in the limit (measured from the
    start of the loop, predicted from the previous epoch's time), validating that epoch; ``resume`` continues
    the run later (for batch-scheduler time slots). The summary records the epochs done and why it stopped.
    """
    trainer = trainer_class(config)(config, out_dir, resume=resume, accelerator=accelerator, devices=devices, num_nodes=num_nodes, precision=precision,
                                    channels_last=channels_last, progress=progress, root=root, test=test, time_limit_minutes=time_limit_minutes)
    return trainer.run()
