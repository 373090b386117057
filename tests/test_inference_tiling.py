"""Tiled inference: windows cover the image exactly, on the whole image's stride-16 grid, and agree with it."""

from __future__ import annotations

import numpy as np
import pytest

from m2unet.inference.tiling import predict_tiled, tile_windows
from m2unet.weights import pretrained_path


@pytest.mark.parametrize("length", [16, 61, 544, 1536, 1537, 2336, 3504, 5000, 7000])
@pytest.mark.parametrize("max_tile,overlap", [(1536, 192), (512, 128), (1024, 64)])
def test_windows_cover_each_pixel_once_with_margin(length, max_tile, overlap):
    size, starts, keep = tile_windows(length, max_tile, overlap)
    assert size % 16 == 0 and size <= max(max_tile, -(-length // 16) * 16)
    assert all(start % 16 == 0 for start in starts)  # same sampling grid as the whole image
    assert keep[0][0] == 0 and keep[-1][1] == length
    assert all(a[1] == b[0] for a, b in zip(keep, keep[1:], strict=False))  # no gap, no double
    for i, (start, (lo, hi)) in enumerate(zip(starts, keep, strict=False)):
        assert start <= lo < hi <= start + size
        if i > 0:
            assert lo - start >= overlap // 2 - 16  # keep-centre: a margin of about half the overlap
        if i < len(starts) - 1:
            assert start + size - hi >= overlap // 2 - 16


def test_tiled_matches_whole_image(authors_dir, datasets_root, export_cache):
    from m2unet.data import load_dataset
    from m2unet.inference.backends import create_backend

    backend = create_backend("openvino", pretrained_path("drive"))  # fp32, matches PyTorch (test_export_parity)
    sample = load_dataset("drive", "test")[0]
    image = sample.image  # 544×544, run as 2×2 tiles of ≤ 384² below
    whole = predict_tiled(backend, image, max_tile=4096)
    tiled = predict_tiled(backend, image, max_tile=384, overlap=192)
    difference = np.abs(tiled - whole)[sample.mask]
    assert difference.mean() < 2e-3, difference.mean()
    assert np.mean((tiled >= 0.5) == (whole >= 0.5)) > 0.999


def test_flip_average_undoes_each_flip():
    """Each view's prediction is flipped back before averaging: a position-aware predictor shows it."""
    from m2unet.inference.tiling import flip_average

    image = np.random.default_rng(0).random((6, 9, 3)).astype(np.float32)
    np.testing.assert_allclose(flip_average(lambda view: view[..., 1] * 2.0, image), image[..., 1] * 2.0, rtol=1e-6)
    columns = np.arange(9, dtype=np.float32)[None, :].repeat(6, axis=0)
    rows = np.arange(6, dtype=np.float32)[:, None].repeat(9, axis=1)
    # a predictor that sees only where a pixel sits: flips mirror it, so the average is the mean of p and its mirror
    averaged = flip_average(lambda view: columns + 10 * rows, image)
    expected = (columns + columns[:, ::-1]) / 2 + 10 * (rows + rows[::-1]) / 2
    np.testing.assert_allclose(averaged, expected, rtol=1e-6)


def test_flip_average_reuses_the_plain_map_it_is_given():
    """A diameter search has the kept view's plain map already: the flips add three runs, and the mean is the same."""
    from m2unet.inference.tiling import flip_average

    image = np.random.default_rng(1).random((6, 9, 3)).astype(np.float32)
    calls = []

    def predict(view):
        calls.append(view.shape)
        return view[..., 0] + np.arange(9, dtype=np.float32)[None, :]

    expected = flip_average(predict, image)
    calls.clear()
    np.testing.assert_allclose(flip_average(predict, image, first=predict(image)), expected, rtol=1e-6)
    assert len(calls) == 1 + 3
