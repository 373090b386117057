"""Training end to end on a tiny synthetic folder: the CLI, kill + resume, determinism, checkpoint metadata."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from m2unet.training.engine import CHECKPOINT_FORMAT, KILL_AFTER_EPOCH_ENV
from m2unet.weights import load_weights, read_metadata

M2UNET = [sys.executable, "-m", "m2unet"]


def make_folder(root, count):
    """``count`` 64×64 images in the image_folder layout, labels derived from the image, disc-shaped FOV masks."""
    rng = np.random.default_rng(0)
    for folder in ("images", "labels", "masks"):
        (root / folder).mkdir(parents=True)
    yy, xx = np.mgrid[:64, :64]
    fov = (((yy - 32) ** 2 + (xx - 32) ** 2) < 30**2).astype(np.uint8) * 255
    for i in range(count):
        image = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / f"im{i}.png")
        Image.fromarray((image[..., 1] > 128).astype(np.uint8) * 255).save(root / "labels" / f"im{i}.png")
        Image.fromarray(fov).save(root / "masks" / f"im{i}.png")
    return root


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("tiny"), 2)


def train(folder, out, *extra, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    args = ["train", "--dataset", str(folder), "--out", str(out), "--batch-size", "2", "--val-every", "1", "--quiet", "--no-test", *extra]
    return subprocess.run([*M2UNET, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def uninterrupted(tiny_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "straight"
    result = train(tiny_folder, out, "--epochs", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    return out, result


def test_cli_run_writes_the_run_folder(uninterrupted):
    out, result = uninterrupted
    assert "best validation Dice" in result.stdout
    for name in ("config.json", "metrics.csv", "curves.png", "augmentations.jpg", "best.safetensors", "summary.json", "checkpoints/last.ckpt"):
        assert (out / name).is_file(), name
    rows = (out / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 3 and rows[0].startswith("epoch,train_loss,val_dice")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["best_epoch"] in (1, 2)


def test_best_weights_metadata(uninterrupted):
    out, _ = uninterrupted
    meta = read_metadata(out / "best.safetensors")
    for key in ("model", "dataset", "recipe", "jaccard", "epochs", "best_epoch", "val_dice", "threshold", "git_commit", "training_seconds", "hardware", "precision"):
        assert key in meta, key
    assert meta["epochs"] == 2 and meta["jaccard"] == "global" and 0.0 <= meta["threshold"] <= 1.0 and 0.0 < meta["val_dice"] <= 1.0
    summary = json.loads((out / "summary.json").read_text())
    assert meta["val_dice"] == pytest.approx(summary["val_dice"], abs=1e-6) and meta["threshold"] == summary["threshold"]
    model, loaded_meta = load_weights(out / "best.safetensors")
    assert loaded_meta["best_epoch"] == meta["best_epoch"]
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 1, 32, 32)


def test_checkpoint_loads_without_unpickling(uninterrupted):
    out, _ = uninterrupted
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["format"] == CHECKPOINT_FORMAT and state["epoch"] == 2
    assert {"model", "optimizer", "rng", "history", "best", "config"} <= set(state)


def test_kill_then_resume_equals_the_uninterrupted_run(tiny_folder, uninterrupted, tmp_path):
    straight, _ = uninterrupted
    out = tmp_path / "killed"
    killed = train(tiny_folder, out, "--epochs", "2", env_extra={KILL_AFTER_EPOCH_ENV: "1"})
    assert killed.returncode == -signal.SIGKILL
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1
    refused = train(tiny_folder, out, "--epochs", "2")  # without --resume the folder is protected
    assert refused.returncode == 1 and "--resume" in refused.stderr and "Traceback" not in refused.stderr
    resumed = train(tiny_folder, out, "--epochs", "2", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = torch.load(straight / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert b["epoch"] == 2 and [r["epoch"] for r in b["history"]] == [1, 2]
    for key in a["model"]:  # same seed on CPU → identical weights, kill or no kill
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]


def test_bad_dataset_is_one_line(tmp_path):
    result = subprocess.run([*M2UNET, "train", "--dataset", str(tmp_path / "missing"), "--epochs", "1"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr and "missing" in result.stderr


def test_pooling_coarse_labels_needs_several_datasets(tiny_folder, tmp_path):
    result = train(tiny_folder, tmp_path / "run", "--epochs", "1", "--pool-coarse-labels")
    assert result.returncode == 1 and "Traceback" not in result.stderr and "--pool-coarse-labels needs several datasets" in result.stderr


def test_baseline_trains_with_the_same_command(tiny_folder, tmp_path):
    """The paper's baselines go through the same recipe, from scratch (no ImageNet encoder)."""
    out = tmp_path / "erfnet"
    result = train(tiny_folder, out, "--epochs", "1", "--model", "erfnet")
    assert result.returncode == 0, result.stderr[-2000:]
    model, meta = load_weights(out / "best.safetensors")
    assert meta["model"] == "erfnet" and type(model).__name__ == "ERFNet"
    assert json.loads((out / "config.json").read_text())["config"]["encoder_weights"] is None
    assert Image.open(out / "curves.png").text["Title"].startswith("ERFNet on ")  # not "M2U-Net on"
    bad = train(tiny_folder, tmp_path / "bad", "--epochs", "1", "--model", "resnet")
    assert bad.returncode == 1 and "unknown model 'resnet'" in bad.stderr and "Traceback" not in bad.stderr


def test_time_limit_stops_cleanly_then_resume_finishes(tiny_folder, uninterrupted, tmp_path):
    """--time-limit ends the invocation after a validated, checkpointed epoch; --resume completes the run."""
    straight, _ = uninterrupted
    out = tmp_path / "limited"
    limited = train(tiny_folder, out, "--epochs", "2", "--val-every", "5", "--time-limit", "0.00001")
    assert limited.returncode == 0, limited.stderr[-2000:]
    assert "stopped by --time-limit after epoch 1 of 2" in limited.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped_by_time_limit"] is True and summary["epochs_done"] == 1 and summary["best_epoch"] == 1
    assert read_metadata(out / "best.safetensors")["epochs_trained"] == 1
    resumed = train(tiny_folder, out, "--epochs", "2", "--val-every", "5", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped_by_time_limit"] is False and summary["epochs_done"] == 2
    a = torch.load(straight / "checkpoints" / "last.ckpt", weights_only=True)["model"]
    b = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["model"]
    for key in a:  # stopping early and resuming changes nothing in the training itself
        assert torch.equal(a[key], b[key]), key


def test_cosine_schedule_is_a_pure_function_of_the_epoch(tiny_folder, tmp_path):
    from m2unet.training.engine import learning_rate

    config = {"lr": 1e-3, "epochs": 4, "lr_schedule": "cosine"}
    assert [round(learning_rate(config, e), 9) for e in range(4)] == [1e-3, 0.000853553, 0.0005, 0.000146447]
    assert learning_rate({"lr": 1e-3, "epochs": 4}, 3) == 1e-3  # runs from before the option: constant
    out = tmp_path / "cosine"
    result = train(tiny_folder, out, "--epochs", "2", "--lr-schedule", "cosine")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = (out / "metrics.csv").read_text().strip().splitlines()[1:]
    assert [float(r.split(",")[5]) for r in rows] == [0.001, 0.0005]
    assert read_metadata(out / "best.safetensors")["lr_schedule"] == "cosine"


def test_rank_share_gives_every_rank_the_same_step_count_and_covers_every_image():
    from m2unet.training.engine import rank_share

    for count in range(1, 10):
        order = torch.randperm(count)
        assert torch.equal(rank_share(order, 0, 1), order)  # one process: the permutation itself
        for world in range(2, 5):
            shares = [rank_share(order, rank, world) for rank in range(world)]
            assert {len(share) for share in shares} == {-(-count // world)}  # unequal shares hang DDP
            assert set(torch.cat(shares).tolist()) == set(range(count))


def test_ddp_over_two_processes_trains_and_resumes_each_ranks_stream(tmp_path):
    """DDP (gloo, 2 CPU processes): 3 images at batch 1 split 2 + 2 (padded), not 2 + 1 (which hangs); a kill after
    epoch 1 and --resume gives the uninterrupted run's weights, each rank continuing its own random stream."""
    folder = make_folder(tmp_path / "three", 3)
    ddp = ("--epochs", "2", "--batch-size", "1", "--devices", "2", "--accelerator", "cpu", "--threads", "1")
    straight = train(folder, tmp_path / "straight", *ddp)
    assert straight.returncode == 0, straight.stderr[-2000:]
    summary = json.loads((tmp_path / "straight" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps_per_epoch"] == 2 and summary["epochs_done"] == 2
    a = torch.load(tmp_path / "straight" / "checkpoints" / "last.ckpt", weights_only=True)
    assert len(a["rng_ranks"]) == 2 and not torch.equal(a["rng_ranks"][0]["torch"], a["rng_ranks"][1]["torch"])
    killed = train(folder, tmp_path / "killed", *ddp, env_extra={KILL_AFTER_EPOCH_ENV: "1"})
    assert killed.returncode == -signal.SIGKILL
    resumed = train(folder, tmp_path / "killed", *ddp, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    b = torch.load(tmp_path / "killed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_weight_average_is_what_validation_scores_and_resumes_exactly(tiny_folder, tmp_path):
    """--ema-half-life: best.safetensors holds the moving average (not the last step's weights), and a kill + --resume
    continues the average as if nothing had happened."""
    args = ("--epochs", "2", "--val-every", "5", "--ema-half-life", "1")  # validated once, after the last epoch
    straight = tmp_path / "ema"
    result = train(tiny_folder, straight, *args)
    assert result.returncode == 0, result.stderr[-2000:]
    state = torch.load(straight / "checkpoints" / "last.ckpt", weights_only=True)
    average = {k.removeprefix("module."): v for k, v in state["average"].items() if k.startswith("module.")}
    assert int(state["average"]["n_averaged"]) == 2  # 2 images, batch 2: one step per epoch
    best, meta = load_weights(straight / "best.safetensors")
    assert meta["ema_half_life"] == 1.0 and meta["best_epoch"] == 2
    for key, value in best.state_dict().items():
        assert torch.equal(value, average[key]), key
    moved = [k for k, v in state["model"].items() if v.is_floating_point() and not torch.equal(v, average[k])]
    assert moved, "the average equals the last weights: nothing was averaged"

    killed = tmp_path / "ema-killed"
    assert train(tiny_folder, killed, *args, env_extra={KILL_AFTER_EPOCH_ENV: "1"}).returncode == -signal.SIGKILL
    other = train(tiny_folder, killed, "--epochs", "2", "--val-every", "5", "--resume")  # the average is part of the recipe
    assert other.returncode == 1 and "ema_half_life" in other.stderr and "Traceback" not in other.stderr
    resumed = train(tiny_folder, killed, *args, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    again = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)["average"]
    for key, value in state["average"].items():
        assert torch.equal(value, again[key]), key
    bad = train(tiny_folder, tmp_path / "bad", "--epochs", "2", "--ema-half-life", "0")
    assert bad.returncode == 1 and "--ema-half-life" in bad.stderr and "Traceback" not in bad.stderr
