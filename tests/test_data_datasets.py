"""Dataset readers: the paper's splits and crops, the files' quirks, and errors that name the file."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from m2unet.data import image_folder, load_dataset, read_binary, read_image
from m2unet.data.datasets import drive
from m2unet.errors import InputFileError, M2UNetError


@pytest.mark.parametrize(
    "name, split, count, shape, removed, first",
    [
        ("drive", "train", 20, (544, 544), 584 * 565 - 544 * 544, "21_training"),
        ("drive", "test", 20, (544, 544), 584 * 565 - 544 * 544, "01_test"),
        ("chase_db1", "train", 8, (960, 960), 960 * 39, "Image_01L"),
        ("chase_db1", "test", 20, (960, 960), 960 * 39, "Image_05L"),
        ("hrf", "train", 15, (2336, 3504), 0, "01_h"),
        ("hrf", "test", 30, (2336, 3504), 0, "06_h"),
    ],
)
def test_splits_and_crops(datasets_root, name, split, count, shape, removed, first):
    dataset = load_dataset(name, split, root=datasets_root)
    assert len(dataset) == count
    assert dataset.cropped_size == shape
    sample = dataset[0]
    assert sample.name == first
    assert sample.image.shape == (*shape, 3) and sample.image.dtype == np.float32
    assert 0.0 <= sample.image.min() and sample.image.max() <= 1.0
    assert sample.label.shape == shape and sample.label.dtype == bool
    assert sample.mask.shape == shape and sample.mask.dtype == bool
    assert sample.removed_pixels == removed
    assert 0.05 < sample.label.mean() < 0.15  # vessels cover roughly a tenth of a fundus crop
    assert 0.6 < sample.mask.mean() < 0.9


def test_drive_crop_is_the_centre(datasets_root):
    sample = load_dataset("drive", "test", root=datasets_root)[0]
    full = read_image(datasets_root / "DRIVE/test/images/01_test.tif")
    np.testing.assert_array_equal(sample.image, full[20:564, 10:554])


def test_chase_crop_removes_18_left_21_right(datasets_root):
    sample = load_dataset("chase_db1", "train", root=datasets_root)[0]
    full = read_image(datasets_root / "CHASE_DB1/Image_01L.jpg")
    np.testing.assert_array_equal(sample.image, full[:, 18:978])
    assert sample.second_label is not None and sample.second_label.shape == (960, 960)


def test_chase_split_names(datasets_root):
    test = [item.name for item in load_dataset("chase_db1", "test", root=datasets_root).items]
    assert test[0] == "Image_05L" and test[-1] == "Image_14R"
    alt = [item.name for item in load_dataset("chase_db1", "test_01_10", root=datasets_root).items]
    assert alt[0] == "Image_01L" and alt[-1] == "Image_10R" and len(alt) == 20


def test_drive_second_observer_palette_is_binarised(datasets_root):
    second = read_binary(datasets_root / "DRIVE/test/2nd_manual/01_manual2.gif")
    first = read_binary(datasets_root / "DRIVE/test/1st_manual/01_manual1.gif")
    assert second.dtype == bool and 0.08 < second.mean() < 0.16
    overlap = np.count_nonzero(first & second) / np.count_nonzero(first | second)
    assert overlap > 0.6  # two observers of the same image agree on most vessel pixels


def test_hrf_graded_labels_binarised_at_128(datasets_root):
    path = datasets_root / "HRF/manual1/11_h.tif"
    grey = np.asarray(Image.open(path))
    assert len(np.unique(grey)) > 2  # the quirk is there
    np.testing.assert_array_equal(read_binary(path), grey >= 128)


def test_hrf_mask_rgb_is_read_as_one_channel(datasets_root):
    mask = read_binary(datasets_root / "HRF/mask/01_h_mask.tif")
    assert mask.shape == (2336, 3504) and mask.dtype == bool


def _copy_drive(datasets_root, tmp_path):
    target = tmp_path / "DRIVE"
    shutil.copytree(datasets_root / "DRIVE", target)
    for path in target.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def test_missing_empty_truncated_and_wrong_sized_files(datasets_root, tmp_path):
    root = _copy_drive(datasets_root, tmp_path)
    (root / "test/images/02_test.tif").unlink()
    with pytest.raises(InputFileError, match=r"02_test\.tif: no such file"):
        drive(root, "test")

    shutil.copy(datasets_root / "DRIVE/test/images/02_test.tif", root / "test/images/02_test.tif")
    dataset = drive(root, "test")
    (root / "test/images/03_test.tif").write_bytes(b"")
    with pytest.raises(InputFileError, match=r"03_test\.tif: file is empty"):
        dataset[2]

    data = (datasets_root / "DRIVE/test/images/04_test.tif").read_bytes()
    (root / "test/images/04_test.tif").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError, match=r"04_test\.tif: .*(truncated|decode)"):
        dataset[3]

    Image.new("RGB", (300, 200)).save(root / "test/images/05_test.tif")
    with pytest.raises(InputFileError, match=r"05_test\.tif: size 300×200 is not the drive size 565×584"):
        dataset[4]

    Image.new("L", (100, 100)).save(root / "test/mask/06_test_mask.gif")
    with pytest.raises(InputFileError, match=r"06_test_mask\.gif: size 100×100 does not match its image \(565×584\)"):
        dataset[5]

    (root / "test/1st_manual/07_manual1.gif").write_text("hello")
    with pytest.raises(InputFileError, match=r"07_manual1\.gif: not an image file"):
        dataset[6]


def test_missing_dataset_folder_is_one_line(tmp_path):
    with pytest.raises(M2UNetError, match="no such folder"):
        drive(tmp_path / "nothing", "test")
    with pytest.raises(M2UNetError, match="splits"):
        load_dataset("hrf", "validation", root=tmp_path)


def test_own_folder_layout(tmp_path):
    rng = np.random.default_rng(0)
    for sub in ("images", "labels", "masks"):
        (tmp_path / "mine" / sub).mkdir(parents=True)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "mine/images" / f"{name}.png")
        Image.fromarray((rng.random((40, 50)) > 0.9).astype(np.uint8) * 255).save(tmp_path / "mine/labels" / f"{name}.png")
    Image.fromarray(np.full((40, 50), 255, np.uint8)).save(tmp_path / "mine/masks/a.png")
    dataset = image_folder(tmp_path / "mine")
    assert [item.name for item in dataset.items] == ["a", "b"]
    first, second = dataset[0], dataset[1]
    assert first.image.shape == (40, 50, 3) and first.label.shape == (40, 50) and first.mask.all()
    assert second.mask.shape == (40, 50)  # estimated from the image where no mask is given
    assert first.removed_pixels == 0
    with pytest.raises(M2UNetError, match="images/"):
        image_folder(tmp_path)


def test_read_image_formats(tmp_path):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.ppm")
    Image.fromarray(np.dstack([rgb, np.full((20, 30), 7, np.uint8)])).save(tmp_path / "rgba.png")
    Image.fromarray(rgb[..., 1]).save(tmp_path / "grey.png")
    import tifffile

    tifffile.imwrite(tmp_path / "rgb16.tif", rgb.astype(np.uint16) * 257)
    for name in ("rgb.ppm", "rgba.png", "rgb16.tif"):
        image = read_image(tmp_path / name)
        assert image.shape == (20, 30, 3) and image.dtype == np.float32
        np.testing.assert_allclose(image, rgb / 255.0, atol=1e-6)
    grey = read_image(tmp_path / "grey.png")
    np.testing.assert_allclose(grey[..., 0], grey[..., 2])


def test_written_files_get_the_usual_permissions_and_no_temporaries(tmp_path):
    """Outputs go through a private temporary (mkstemp: 0600) but end with 0666 less the umask, like any file."""
    import os
    import stat

    import numpy as np

    from m2unet.data.io import save_png, write_atomic

    mask = os.umask(0)
    os.umask(mask)
    save_png(tmp_path / "map.png", np.zeros((4, 4), np.float32))
    write_atomic(tmp_path / "notes.txt", lambda tmp: open(tmp, "w").write("x"))
    for name in ("map.png", "notes.txt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~mask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.png", "notes.txt"]


def test_one_description_per_dataset_feeds_readers_presets_and_auto_model():
    """The registry is the one home of the datasets' facts: names, aliases, splits, crops, FOV diameters."""
    from m2unet.data import DATASETS, dataset_names, get_dataset_spec
    from m2unet.data.datasets import dataset_key
    from m2unet.weights import CLOSEST_MODEL_LARGEST, CLOSEST_MODEL_LIMITS

    assert dataset_names() == ("drive", "chase_db1", "hrf")
    assert [DATASETS[name].label for name in dataset_names()] == ["DRIVE", "CHASE_DB1", "HRF"]
    assert {name: spec.input_size for name, spec in DATASETS.items()} == {"drive": (544, 544), "chase_db1": (960, 960), "hrf": (2336, 3504)}
    assert {name: len(spec.splits["train"]) + len(spec.splits["test"]) for name, spec in DATASETS.items()} == {"drive": 40, "chase_db1": 28, "hrf": 45}
    for spec in DATASETS.values():
        assert set(spec.holdout) < set(spec.splits["train"])  # validation images come out of the training split
        assert not set(spec.splits["train"]) & set(spec.splits["test"])
    chase = get_dataset_spec("CHASE-DB1")
    assert chase is get_dataset_spec("chasedb1") is get_dataset_spec("chase") is DATASETS["chase_db1"]
    assert set(chase.splits["test_01_10"]) | set(chase.splits["train_11_14"]) == set(chase.splits["train"]) | set(chase.splits["test"])
    assert dataset_key("my_folder/") == "my_folder/"
    with pytest.raises(M2UNetError, match="not a built-in dataset"):
        get_dataset_spec("stare")
    with pytest.raises(TypeError):
        DATASETS["drive"].preset["batch_size"] = 8  # read-only: a preset copies it
    # --model auto: limits between neighbouring native FOV diameters, from the registry
    assert CLOSEST_MODEL_LIMITS == ((700, "drive"), (1500, "chase_db1")) and CLOSEST_MODEL_LARGEST == "hrf"
    diameters = [DATASETS[name].fov_diameter for _, name in CLOSEST_MODEL_LIMITS] + [DATASETS[CLOSEST_MODEL_LARGEST].fov_diameter]
    assert all(low < limit < high for (limit, _), low, high in zip(CLOSEST_MODEL_LIMITS, diameters, diameters[1:], strict=False))
