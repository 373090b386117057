"""Augmentation invariants: image, label and FOV move together; label and FOV stay binary; shapes kept."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from m2unet.training.augment import AugmentConfig, Augmenter, grid_distortion, save_augmentation_grid


def synthetic_batch(n=4, size=96, seed=0) -> torch.Tensor:
    """Smooth random RGB, label = (red > 0.5) derived from the image, FOV = a centred disc."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, size // 16, size // 16, generator=generator)
    image = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    label = (image[:, :1] > 0.5).float()
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    fov = (((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (0.45 * size) ** 2).float().expand(n, 1, size, size)
    return torch.cat([image, label, fov], dim=1)


def test_label_stays_aligned_with_the_image_through_geometric_transforms():
    torch.manual_seed(1)
    augment = Augmenter(AugmentConfig(jitter_p=0.0, rotation_p=1.0))  # colour jitter would change the red > 0.5 rule
    batch = synthetic_batch()
    out = augment(batch)
    assert out.shape == batch.shape
    assert not torch.equal(out[:, :3], batch[:, :3])  # something was transformed
    inside = out[:, 4] > 0.5  # rotation fills corners with zeros; compare where the FOV survives
    derived = out[:, 0] > 0.5
    agreement = (derived == (out[:, 3] > 0.5))[inside].float().mean().item()
    assert agreement > 0.98
    # a misaligned label (shifted by 3 pixels) would agree visibly less: the check can fail
    shifted = torch.roll(out[:, 3], shifts=3, dims=-1) > 0.5
    assert (derived == shifted)[inside].float().mean().item() < agreement - 0.02


def test_label_and_fov_stay_binary_and_shapes_kept_with_every_transform():
    torch.manual_seed(2)
    batch = synthetic_batch(n=3, size=64)
    out = Augmenter()(batch)
    assert out.shape == batch.shape and out.dtype == batch.dtype
    assert set(torch.unique(out[:, 3]).tolist()) <= {0.0, 1.0}
    assert set(torch.unique(out[:, 4]).tolist()) <= {0.0, 1.0}
    assert out[:, :3].min() >= 0.0 and out[:, :3].max() <= 1.0


def test_colour_jitter_leaves_label_and_fov_untouched():
    torch.manual_seed(3)
    config = AugmentConfig(hflip=0.0, vflip=0.0, rotation_p=0.0, elastic_magnitude=0, jitter_p=1.0)
    batch = synthetic_batch(n=2, size=64)
    out = Augmenter(config)(batch)
    assert torch.equal(out[:, 3:], batch[:, 3:])
    assert not torch.allclose(out[:, :3], batch[:, :3])


def test_elastic_distortion_moves_pixels_by_at_most_magnitude():
    torch.manual_seed(4)
    size = 64
    xs = torch.arange(size, dtype=torch.float32).view(1, 1, 1, size).expand(2, 1, size, size)
    ys = torch.arange(size, dtype=torch.float32).view(1, 1, size, 1).expand(2, 1, size, size)
    ramp = torch.cat([xs, ys], dim=1).contiguous()  # each pixel holds its own coordinates
    out = grid_distortion(ramp, grid=(8, 8), magnitude=1)
    displacement = (out - ramp).abs()
    assert displacement.max() <= 1.0 + 1e-4
    assert displacement.max() > 0.1  # inner vertices did move
    assert torch.allclose(out[..., 0, :], ramp[..., 0, :], atol=1e-4)  # border rows stay (border vertices fixed)
    assert torch.equal(grid_distortion(ramp, magnitude=0), grid_distortion(ramp, magnitude=0)) and torch.allclose(grid_distortion(ramp, magnitude=0), ramp, atol=1e-4)


def test_same_seed_same_augmentation():
    batch = synthetic_batch(n=2, size=64)
    torch.manual_seed(5)
    first = Augmenter()(batch)
    torch.manual_seed(5)
    second = Augmenter()(batch)
    assert torch.equal(first, second)


def test_augmentation_grid_picture(tmp_path):
    from PIL import Image

    torch.manual_seed(6)
    save_augmentation_grid(tmp_path / "grid.jpg", synthetic_batch(n=2, size=64), Augmenter(), copies=2, size=64)
    with Image.open(tmp_path / "grid.jpg") as image:
        assert image.format == "JPEG" and image.size == (3 * 64 + 2 * 4, 2 * 64 + 4)
        assert np.asarray(image)[64:68].mean() > 235  # the white gap between the rows (JPEG rings a little at its edges)



def test_random_crop_keeps_image_label_and_mask_together():
    from m2unet.training.data import random_crop

    torch.manual_seed(7)
    batch = synthetic_batch(n=3, size=96)
    crops = random_crop(batch, 40)  # rounded down to a multiple of 16 for the network
    assert crops.shape == (3, 5, 32, 32)
    assert torch.equal((crops[:, 0] > 0.5).float(), crops[:, 3])  # label still derived from the same pixels
    assert random_crop(batch, None) is batch


CAMERA_ONLY = {"hflip": 0.0, "vflip": 0.0, "rotation_p": 0.0, "elastic_p": 0.0, "jitter_p": 0.0}
CAMERA_TRANSFORMS = ("gamma_p", "temperature_p", "blur_p", "low_contrast_p", "vignette_p", "noise_p", "jpeg_p")


def test_each_camera_transform_changes_only_the_image_and_keeps_it_in_range():
    batch = synthetic_batch(n=2, size=64)
    for name in CAMERA_TRANSFORMS:
        torch.manual_seed(3)
        out = Augmenter(AugmentConfig(**CAMERA_ONLY, **{name: 1.0}))(batch)
        change = (out[:, :3] - batch[:, :3]).abs().mean().item()
        assert change > 1e-3, name  # it did something
        assert torch.equal(out[:, 3:], batch[:, 3:]), name  # label and FOV untouched
        assert 0.0 <= out[:, :3].min().item() and out[:, :3].max().item() <= 1.0, name
    torch.manual_seed(3)
    assert torch.equal(Augmenter(AugmentConfig(**CAMERA_ONLY))(batch)[:, :3], batch[:, :3])  # all off: the paper's recipe


def test_low_contrast_and_vignetting_do_what_their_names_say():
    batch = synthetic_batch(n=2, size=64)
    torch.manual_seed(4)
    flat = Augmenter(AugmentConfig(**CAMERA_ONLY, low_contrast_p=1.0))(batch)
    assert flat[:, :3].std().item() < batch[:, :3].std().item()
    white = torch.cat([torch.ones(1, 3, 64, 64), batch[:1, 3:]], dim=1)
    vignetted = Augmenter(AugmentConfig(**CAMERA_ONLY, vignette_p=1.0))(white)
    assert vignetted[0, :, 32, 32].min().item() > 0.99 and vignetted[0, :, 0, 0].max().item() < vignetted[0, :, 32, 32].min().item()


def test_camera_scale_zooms_image_and_label_together():
    torch.manual_seed(5)
    out = Augmenter(AugmentConfig(**CAMERA_ONLY, scale=0.2, scale_p=1.0))(synthetic_batch())
    inside = out[:, 4] > 0.5
    assert ((out[:, 0] > 0.5) == (out[:, 3] > 0.5))[inside].float().mean().item() > 0.97


def test_zoom_upper_end_is_a_setting():
    batch = synthetic_batch(n=8)
    torch.manual_seed(5)
    out = Augmenter(AugmentConfig(**CAMERA_ONLY, scale=0.0, scale_high=1.5, scale_p=1.0))(batch)
    fov_growth = out[:, 4].mean(dim=(1, 2)) / batch[:, 4].mean(dim=(1, 2))  # zooming in only: the FOV disc grows
    assert fov_growth.min().item() >= 0.99 and fov_growth.max().item() > 1.3
    assert AugmentConfig(scale=0.2, scale_high=1.5).zoom_range == (0.8, 1.5) and AugmentConfig(scale=0.2).zoom_range == (0.8, 1.2)


def test_the_ranges_of_low_contrast_and_jpeg_are_settings():
    batch = synthetic_batch(n=2, size=64)
    torch.manual_seed(6)
    unchanged = Augmenter(AugmentConfig(**CAMERA_ONLY, low_contrast_p=1.0, low_contrast_min=1.0))(batch)
    assert torch.allclose(unchanged[:, :3], batch[:, :3], atol=1e-6)  # keeping all of the contrast changes nothing
    errors = {}
    for quality in (5, 90):
        torch.manual_seed(6)
        out = Augmenter(AugmentConfig(**CAMERA_ONLY, jpeg_p=1.0, jpeg_quality_min=quality))(batch)
        errors[quality] = (out[:, :3] - batch[:, :3]).abs().mean().item()
    assert errors[5] > errors[90] > 0.0  # quality drawn from [min, 90]: a lower floor compresses harder
    blurred = {}
    for sigma in (1.5, 6.0):
        torch.manual_seed(6)
        out = Augmenter(AugmentConfig(**CAMERA_ONLY, blur_p=1.0, blur_sigma_max=sigma))(batch)
        blurred[sigma] = (out[:, :3] - batch[:, :3]).abs().mean().item()
    assert blurred[6.0] > blurred[1.5] > 0.0  # σ drawn from [0.1, blur_sigma_max]


def test_augmentation_settings_out_of_range_fail_at_once():
    import pytest

    from m2unet.errors import M2UNetError
    from m2unet.training.cli import augment_with

    assert augment_with({"jpeg_p": 0.3}, ("jpeg_quality_min=15", "jpeg_p=0.4")) == {"jpeg_p": 0.4, "jpeg_quality_min": 15}
    for bad in ("jpeg_p=1.5", "jpeg_quality_min=0", "low_contrast_min=0", "blur_sigma_max=20", "scale_high=0.5", "jpeg_quality_min=high", "no_such=1", "jpeg_p"):
        with pytest.raises(M2UNetError, match="jpeg|contrast|blur|scale|NAME=VALUE"):
            augment_with({}, (bad,))
