"""Contrast restoration (m2unet.data.contrast): the measure, the gain, and a model's photographs brought up to its floor."""

import numpy as np
import pytest

from conftest import disk_photograph
from m2unet.data.contrast import MAX_GAIN, contrast_gain, local_contrast, model_contrast_floor, restoring
from m2unet.evaluation.camera_shift import low_contrast, resized_to


@pytest.fixture
def photo():
    return disk_photograph(light_falloff=0.4)  # uneven illumination, which the measure should not count


def test_local_contrast_follows_the_vessels_not_the_illumination_or_the_resolution(photo):
    image, label, mask = photo
    measured = local_contrast(image, mask)
    assert measured > 0.02
    assert local_contrast(*low_contrast(0.4)(image, label, mask)[::2]) == pytest.approx(0.4 * measured, rel=0.05)
    assert local_contrast(*resized_to(900)(image, label, mask)[::2]) == pytest.approx(measured, rel=0.1)
    flat = image.copy()
    flat[mask] = image[mask].mean(axis=0)  # no vessels: only the FOV border, which the measure keeps away from
    assert local_contrast(flat, mask) < 0.1 * measured
    assert local_contrast(image, np.zeros_like(mask)) == 0.0


def test_the_gain_lifts_a_flat_photograph_to_the_floor_and_leaves_others_alone(photo):
    image, label, mask = photo
    measured = local_contrast(image, mask)
    assert contrast_gain(image, mask, measured * 0.9) == 1.0  # above the floor: as it is
    assert contrast_gain(image, mask, measured * 2) == pytest.approx(2.0)
    assert contrast_gain(image, mask, measured * 100) == MAX_GAIN  # never more than MAX_GAIN


def test_restoring_stretches_every_view_alike_and_only_when_needed(photo):
    image, label, mask = photo
    seen = []

    def predict(view):
        seen.append(view)
        return view[..., 1]

    floor = local_contrast(image, mask)
    assert restoring(predict, image, mask, None) == (predict, 1.0)
    assert restoring(predict, image, mask, floor * 0.5) == (predict, 1.0)
    assert restoring(predict, image, None, floor) == (predict, 1.0)
    flat = low_contrast(0.4)(image, label, mask)[0]
    restored, gain = restoring(predict, flat, mask, floor)
    assert gain == pytest.approx(1 / 0.4, rel=0.05)
    restored(flat)
    assert local_contrast(seen[-1], mask) == pytest.approx(floor, rel=0.05)
    assert np.abs(seen[-1] - image)[mask].max() < 0.02  # a pure contrast cut is undone
    assert seen[-1][~mask].max() == 0.0  # the black border stays black
    restored(flat[::2, ::2])  # a smaller view (a scaled crop) is stretched by the same gain about the same colour
    assert np.allclose(seen[-1], seen[-2][::2, ::2], atol=1e-6)


def test_the_floor_comes_from_the_weights_metadata():
    assert model_contrast_floor({"contrast_floor": 0.025}) == 0.025
    assert model_contrast_floor({}) is None


def test_older_weights_get_a_copy_that_carries_the_floor(tmp_path, datasets_root):
    import importlib.util
    from pathlib import Path

    from m2unet.models import create_model
    from m2unet.training.contrast import contrast_metadata
    from m2unet.training.presets import HOLDOUT
    from m2unet.weights import read_metadata, save_weights

    spec = importlib.util.spec_from_file_location("add_contrast_floor", Path(__file__).resolve().parents[1] / "scripts" / "add_contrast_floor.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    old = save_weights(create_model("m2unet"), tmp_path / "old.safetensors", {"datasets": ["drive", "chase_db1"], "threshold": 0.5})
    assert script.main([str(old), "--out", str(tmp_path / "new.safetensors"), "--data-root", str(datasets_root)]) == 0
    new = read_metadata(tmp_path / "new.safetensors")
    expected = contrast_metadata(["drive", "chase_db1"], {d: HOLDOUT[d] for d in ("drive", "chase_db1")}, root=datasets_root)
    assert new["contrast_floor"] == expected["contrast_floor"] and new["threshold"] == 0.5  # the rest of the metadata kept
    assert "contrast_floor" not in read_metadata(old)  # the input is never changed
    with pytest.raises(SystemExit, match="must not replace"):
        script.main([str(old), "--out", str(old)])
    single = save_weights(create_model("m2unet"), tmp_path / "drive.safetensors", {"dataset": "drive", "threshold": 0.5})
    with pytest.raises(SystemExit, match="not a several-dataset run"):
        script.main([str(single), "--out", str(tmp_path / "x.safetensors")])
