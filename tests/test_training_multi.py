"""Several datasets in one run: presets, balanced sampling, scaled loading with held-out validation, a short run."""

from __future__ import annotations

import pytest
import torch

from m2unet.errors import M2UNetError
from m2unet.training.data import balanced_order, load_scaled_training_sets
from m2unet.training.engine import epoch_length
from m2unet.training.presets import HOLDOUT, preset_for


def test_preset_of_several_datasets():
    config = preset_for("drive, CHASE_DB1,hrf")
    assert config["datasets"] == ["drive", "chase_db1", "hrf"] and config["dataset"] == "drive+chase_db1+hrf"
    assert config["fov_diameter"] == 1024 and config["balanced"] and config["augment"]["jpeg_p"] > 0
    assert preset_for("chase_db1,hrf")["holdout"] == {"chase_db1": HOLDOUT["chase_db1"], "hrf": HOLDOUT["hrf"]}
    assert "fov_diameter" not in preset_for("drive")  # the paper's single-dataset recipe is unchanged
    for bad in ("drive,drive", "drive,my_folder", "drive,"):
        with pytest.raises(M2UNetError):
            preset_for(bad)


def test_balanced_order_draws_every_dataset_equally_often_and_covers_each():
    groups = torch.tensor([0] * 10 + [1] * 3 + [2] * 6)
    torch.manual_seed(0)
    order = balanced_order(groups)
    assert len(order) == epoch_length(groups, len(groups)) == 30
    assert torch.bincount(groups[order]).tolist() == [10, 10, 10]
    assert set(order.tolist()) == set(range(19))  # every image of every dataset in each epoch
    assert epoch_length(None, 7) == 7


def test_scaled_sets_hold_out_the_named_images_at_the_fov_diameter(datasets_root):
    train, groups, names, val, val_names = load_scaled_training_sets(["drive", "chase_db1"], {"drive": 256, "chase_db1": 256}, HOLDOUT, root=datasets_root,
                                                                     progress=False)
    assert val_names == ["drive/39_training", "drive/40_training", "chase_db1/Image_04L", "chase_db1/Image_04R"]
    assert len(names) == 24 and not set(names) & set(val_names)
    assert torch.bincount(groups).tolist() == [18, 6]
    assert train.dtype == torch.uint8 and train.shape[1] == 5 and train.shape[-1] % 16 == 0
    from m2unet.data.scale import fov_diameter

    for stack in (train, val):
        for sample in stack:
            assert fov_diameter(sample[4].numpy() > 0) == pytest.approx(256 * 1.0, abs=4)  # every FOV ≈ 256 px across
            assert 0.03 < sample[3].float().mean().item() < 0.2  # labels survived the resize
    with pytest.raises(M2UNetError, match="not in its training split"):
        load_scaled_training_sets(["drive", "chase_db1"], {"drive": 256, "chase_db1": 256}, {"drive": ["01_test"]}, root=datasets_root, progress=False)


def test_a_short_multi_dataset_run_stores_its_scale_in_the_weights(datasets_root, tmp_path):
    from m2unet.data.scale import model_scale
    from m2unet.training.engine import train
    from m2unet.weights import read_metadata

    config = preset_for("drive,chase_db1")
    config.update(fov_diameter=128, crop=64, epochs=1, encoder_weights=None)
    summary = train(config, tmp_path / "run", progress=False, root=datasets_root, test=False, precision="32-true")
    assert summary["steps_per_epoch"] == 9  # 2 datasets × 18 (DRIVE, the larger) / batch 4, rounded up
    assert "held-out training images at FOV diameters (drive 128, chase_db1 128 px)" in summary["validation"]
    metadata = read_metadata(tmp_path / "run" / "best.safetensors")
    assert metadata["datasets"] == ["drive", "chase_db1"] and metadata["fov_diameter"] == 128
    # the run diameters were chosen on the held-out images, and segment runs at them
    low, high = metadata["run_fov_diameter"]
    assert 128 <= low <= high <= 256 and model_scale(metadata) == (low, high) and summary["run_fov_diameter"] == [low, high]
    assert set(metadata["run_fov_diameter_choice"]["validation_f1"]) == {"drive", "chase_db1"}
    # the contrast floor: the flatter training dataset's median photograph (m2unet.data.contrast)
    medians = metadata["contrast_floor_choice"]["median_by_dataset"]
    assert set(medians) == {"drive", "chase_db1"} and metadata["contrast_floor"] == min(medians.values()) > 0.0
    assert 0.0 <= metadata["threshold"] <= 1.0 and metadata["val_dice"] > 0.0 and metadata["epochs_trained"] == 1


def test_a_run_with_coarse_labels_pooled_compares_them_as_blocks(datasets_root, tmp_path, monkeypatch):
    import m2unet.training.engine as engine
    from m2unet.weights import read_metadata

    # at 128 px the test images are not enlarged; as if DRIVE's FOV were 64 px, it is enlarged 2x and pooled 2x2
    monkeypatch.setattr(engine, "FOV_DIAMETER", {"drive": 64, "chase_db1": 128})
    config = preset_for("drive,chase_db1")
    config.update(fov_diameter=128, crop=64, epochs=1, encoder_weights=None, pool_coarse_labels=True)
    summary = engine.train(config, tmp_path / "run", progress=False, root=datasets_root, test=False, precision="32-true")
    assert summary["validation"].endswith("labels compared as max-pooled blocks (drive 2×2)")
    metadata = read_metadata(tmp_path / "run" / "best.safetensors")
    assert metadata["pool_coarse_labels"] is True and 0.0 < metadata["val_dice"] <= 1.0


def test_pooled_validation_counts_blocks_of_the_images_that_ask():
    from types import SimpleNamespace

    from m2unet.training.engine import pooled_counts

    class Echo(torch.nn.Module):  # "predicts" the first channel of the image, as logits
        def forward(self, images):
            return torch.where(images[:, :1] > 0.5, 10.0, -10.0)

    val = torch.zeros(2, 5, 8, 8, dtype=torch.uint8)
    val[:, 4] = 1  # all in the FOV
    val[:, 3, 2:4, :] = 1  # the label: two pixels wide
    val[:, 0, 2, :] = 255  # the map: one pixel wide
    fabric = SimpleNamespace(device=torch.device("cpu"))
    as_drawn = pooled_counts(Echo(), val, 2, fabric, False, 0, 1)
    as_blocks = pooled_counts(Echo(), val, 2, fabric, False, 0, 1, pools=[2, 2])
    at_half = int(len(as_drawn["tp"]) // 2)
    assert as_drawn["fn"][at_half] == 16 and as_blocks["fn"][at_half] == 0 and as_blocks["tp"][at_half] == 8


def test_vessel_width_gives_each_dataset_its_own_diameter(datasets_root):
    from m2unet.training.data import dataset_diameters

    config = preset_for("drive,chase_db1,hrf")
    assert dataset_diameters(config, datasets_root) == {"drive": 1024, "chase_db1": 1024, "hrf": 1024}
    config["vessel_width"] = 6.0
    diameters = dataset_diameters(config, datasets_root)
    # HRF's labels draw many thin vessels: at one vessel width its FOV is about twice DRIVE's; CHASE_DB1 (30°) a little smaller
    assert 900 < diameters["drive"] < 1050 and 800 < diameters["chase_db1"] < diameters["drive"] and 1800 < diameters["hrf"] < 2400
    config["vessel_width"] = 3.0
    assert dataset_diameters(config, datasets_root)["drive"] == pytest.approx(diameters["drive"] / 2, abs=1)


def test_a_short_run_at_one_vessel_width_stores_a_width_rule(datasets_root, tmp_path):
    from m2unet.data.scale import WidthRule, model_scale
    from m2unet.training.engine import train
    from m2unet.weights import read_metadata

    config = preset_for("drive,chase_db1")
    config.update(fov_diameter=128, vessel_width=1.0, crop=64, epochs=1, encoder_weights=None)
    summary = train(config, tmp_path / "run", progress=False, root=datasets_root, test=False, precision="32-true")
    metadata = read_metadata(tmp_path / "run" / "best.safetensors")
    diameters = metadata["run_vessel_width_choice"]["dataset_fov_diameters"]
    assert 140 < diameters["drive"] < 180 and diameters["chase_db1"] < diameters["drive"]  # 1 px / DRIVE's 0.0062 of the FOV
    assert f"drive {diameters['drive']}, chase_db1 {diameters['chase_db1']} px" in summary["validation"]
    rule = model_scale(metadata)
    assert isinstance(rule, WidthRule) and rule.probe == 128 and rule.limits == (64, 320) and rule.map_width > 0
    assert rule.map_width == metadata["run_vessel_width"]["map_width"] and metadata["vessel_width"] == 1.0
    assert set(metadata["run_vessel_width_choice"]["validation_f1"]) == {"drive", "chase_db1"}
    assert "run_fov_diameter" not in metadata


def test_the_camera_changes_rule_stores_the_best_mean_f1_over_the_changed_held_out_images(datasets_root, tmp_path, monkeypatch):
    import numpy as np

    import m2unet.evaluation.camera_threshold as camera_threshold
    from m2unet.evaluation import metrics as M
    from m2unet.evaluation.camera_shift import blurred, jpeg, unchanged
    from m2unet.evaluation.camera_threshold import counts_under_changes
    from m2unet.evaluation.predictor import model_predictor
    from m2unet.training.engine import train
    from m2unet.training.run_diameter import held_out_samples
    from m2unet.weights import read_metadata

    # three of CAMERA_CHANGES keep the test short (the FOV 2400 px one alone costs a minute)
    changes = {"as it is": unchanged, "blurred": blurred(0.004), "JPEG": jpeg(20)}
    monkeypatch.setattr(camera_threshold, "CAMERA_CHANGES", changes)
    config = preset_for("drive,chase_db1")
    config.update(fov_diameter=128, crop=64, epochs=1, encoder_weights=None)
    held_out = train(config, tmp_path / "run", progress=False, root=datasets_root, test=False, precision="32-true")
    weights = tmp_path / "run" / "best.safetensors"
    assert "threshold_choice" not in held_out and "threshold_rule" not in read_metadata(weights)  # the preset: held-out
    # a finished run resumed under the rule chooses its threshold again, the weights unchanged
    summary = train({**config, "threshold_rule": "camera-changes"}, tmp_path / "run", resume=True, progress=False, root=datasets_root, test=False,
                    precision="32-true")
    metadata = read_metadata(weights)
    choice = metadata["threshold_choice"]
    assert metadata["threshold_rule"] == "camera-changes" and summary["threshold"] == metadata["threshold"]
    assert set(choice["f1_per_change"]) == set(changes) and choice["validation_threshold"] == held_out["threshold"]
    # scored again from outside the run: the same photographs, changed and run as `segment` runs the weights
    predict, _, _ = model_predictor(weights, None, "auto", "cpu")
    photos = [(s.name, s.image, s.label, s.mask) for _, s in held_out_samples(config["holdout"], datasets_root)]
    mean_f1 = np.mean([M.f1_score(c["tp"], c["fp"], c["fn"]) for c in counts_under_changes(predict, photos).values()], axis=0)
    stored = round(metadata["threshold"] * M.DEFAULT_BINS)
    assert mean_f1[stored] == pytest.approx(mean_f1.max()) and mean_f1[stored] == pytest.approx(choice["mean_f1"], abs=1e-6)
    # and resumed under the preset again, the validation threshold returns and the rule's record goes
    train(config, tmp_path / "run", resume=True, progress=False, root=datasets_root, test=False, precision="32-true")
    assert read_metadata(weights)["threshold"] == held_out["threshold"] and "threshold_choice" not in read_metadata(weights)


def test_a_run_of_one_dataset_refuses_the_camera_changes_rule(tmp_path):
    from m2unet.training.cli import multi_dataset_options

    with pytest.raises(M2UNetError, match="--threshold-rule needs several datasets"):
        multi_dataset_options(preset_for("drive"), None, False, "camera-changes")
