"""The fixed camera changes of m2unet.evaluation.camera_shift, on a synthetic photograph with a known FOV and vessels."""

import numpy as np
import pytest

from conftest import disk_photograph
from m2unet.data.scale import fov_diameter
from m2unet.evaluation.camera_shift import (
    CAMERA_CHANGES,
    POOR_PHOTOGRAPHS,
    blurred,
    captioned,
    chained,
    cropped,
    exposed,
    framed,
    jpeg,
    low_contrast,
    noisy,
    notched,
    resized_to,
)


@pytest.fixture
def photo():
    return disk_photograph()


def test_resizing_brings_the_fov_to_the_diameter_and_keeps_label_and_mask_aligned(photo):
    image, label, mask = resized_to(600)(*photo)
    factor = 600 / 241
    assert image.shape == (round(300 * factor), round(400 * factor), 3) and label.shape == mask.shape == image.shape[:2]
    assert abs(fov_diameter(mask) - 600) <= 3
    assert label.sum() / mask.sum() == pytest.approx(photo[1].sum() / photo[2].sum(), rel=0.05)  # vessels stay 20 % of the FOV
    assert not (label & ~mask).any()
    same = resized_to(241)(*photo)
    assert all(a is b for a, b in zip(same, photo, strict=True))  # already at the diameter: nothing resampled


def test_contrast_blur_and_jpeg_change_the_photograph_only(photo):
    image, label, mask = photo
    flat, flat_label, flat_mask = low_contrast(0.4)(*photo)
    assert flat_label is label and flat_mask is mask
    assert flat[mask].std(axis=0) == pytest.approx(0.4 * image[mask].std(axis=0), rel=1e-3)
    assert flat[mask].mean(axis=0) == pytest.approx(image[mask].mean(axis=0), abs=1e-4)  # contrast, not brightness
    assert (flat[~mask] == 0).all()  # the black surround stays black
    soft = blurred(0.01)(*photo)[0]  # σ 2.4 px on a 241-px FOV: 4-px vessels lose most of their depth
    centre = (150, 202)  # the middle of a vessel
    assert image[centre][0] < soft[centre][0] < image[150, 210][0]
    compressed = jpeg(20)(*photo)[0]
    assert compressed.shape == image.shape and 0.001 < np.abs(compressed - image).mean() < 0.05


def test_noise_and_exposure_change_the_photograph_only_and_rerun_alike(photo):
    image, label, mask = photo
    grainy, grainy_label, grainy_mask = noisy(0.08)(*photo)
    assert grainy_label is label and grainy_mask is mask
    assert 0.05 < (grainy - image)[mask].std() < 0.09 and (grainy[~mask] > 0).mean() > 0.3  # the border is noisy too
    assert np.array_equal(grainy, noisy(0.08)(*photo)[0])  # a fixed seed: a table reruns bit for bit
    dark, bright = exposed(0.25)(*photo)[0], exposed(2.5)(*photo)[0]
    assert dark[mask].mean() == pytest.approx(0.25 * image[mask].mean(), abs=0.01)
    assert bright.max() == 1.0 and bright[mask].mean() > 1.5 * image[mask].mean()  # clipped at white


def test_the_named_changes_all_run_and_chain(photo):
    for name, change in {**CAMERA_CHANGES, **POOR_PHOTOGRAPHS}.items():
        image, label, mask = change(*photo)
        assert image.dtype == np.float32 and image.shape[:2] == label.shape == mask.shape, name
    both = chained(resized_to(480), low_contrast(0.5))(*photo)
    assert both[0].shape == (round(300 * 480 / 241), round(400 * 480 / 241), 3) and abs(fov_diameter(both[2]) - 480) <= 3


def test_cropping_inside_the_fov_leaves_no_border(photo):
    image, label, mask = cropped(0.5)(*photo)
    assert image.shape[:2] == label.shape == mask.shape and abs(image.shape[0] - 120) <= 2 and abs(image.shape[1] - 120) <= 2
    assert mask.all() and (image > 0).any(axis=2).all()  # all eye, no black surround
    assert label.mean() == pytest.approx(0.2, abs=0.03)  # the same vessels, 4 px in every 20


def test_framing_cuts_the_disc_at_top_and_bottom_and_keeps_it_centred(photo):
    image, label, mask = framed(0.9, 1.2)(*photo)
    assert image.shape[:2] == label.shape == mask.shape == (round(0.9 * 241), round(1.2 * 241))
    assert mask[0].any() and mask[-1].any() and not mask[:, 0].any() and not mask[:, -1].any()  # cut above and below only
    columns = np.flatnonzero(mask.any(axis=0))
    assert abs((columns[0] + columns[-1]) / 2 - mask.shape[1] / 2) <= 1.5
    assert abs(fov_diameter(mask) - 241) <= 0.03 * 241  # the cut disc's diameter is still measured as the whole disc's
    assert label.mean() / mask.mean() == pytest.approx(photo[1].mean() / photo[2].mean(), rel=0.1)


def test_a_notch_leaves_the_photograph_label_and_mask_alike_and_a_caption_only_the_border(photo):
    image, label, mask = notched(0.1)(*photo)
    lost = photo[2] & ~mask
    assert 0.008 < lost.sum() / photo[2].sum() < 0.02  # a 24 × 24-px tab, part of it outside the disc anyway
    assert (image[lost] == 0).all() and not label[lost].any() and (mask <= photo[2]).all()
    text, same_label, same_mask = captioned()(*photo)
    assert same_label is photo[1] and same_mask is photo[2]
    changed = np.abs(text - photo[0]).max(axis=2) > 0.1
    assert changed.any() and not (changed & photo[2]).any()  # written in the black corner, not on the eye
