"""The vectorised measure code equals the per-path definitions it replaced (issue 18, speed).

Each function of m2unet.measure that works on all centreline paths at once is checked against the plain
per-path numpy version (written out here, as it stood in the code before), on random ragged data and on a
drawn vessel tree: equal to the bit where the code promises it (cumulative sums, medians, smoothing, skan's
graph), to rounding elsewhere.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

pytest.importorskip("skan")

from m2unet.measure import ragged  # noqa: E402
from m2unet.measure.centreline import SMOOTH_SIGMA, skeleton_graph, smooth_paths  # noqa: E402
from m2unet.measure.disc import blur  # noqa: E402
from m2unet.measure.segments import TURN_WINDOW, tangents, total_turning  # noqa: E402

COUNTS = np.array([5, 0, 1, 2, 3, 40, 17, 0, 129, 8, 4, 300, 64, 65])


def split(flat, counts):
    return np.split(flat, np.cumsum(counts)[:-1])


def random_walks(counts, seed=0):
    """8-connected pixel walks (integer row/col), one after another."""
    rng = np.random.default_rng(seed)
    steps = rng.integers(-1, 2, size=(int(counts.sum()), 2))
    steps[np.all(steps == 0, axis=1)] = (0, 1)
    return np.concatenate([np.cumsum(part, axis=0) + 200 for part in split(steps, counts)])


def test_group_statistics_equal_per_group_numpy():
    rng = np.random.default_rng(1)
    values = rng.normal(size=int(COUNTS.sum())) * 7
    values[::5] = np.round(values[::5])  # ties
    for got, part in zip(split(ragged.group_cumsum(values, COUNTS), COUNTS), split(values, COUNTS), strict=True):
        assert np.array_equal(got, np.cumsum(part))  # to the bit: lengths are compared with thresholds
    medians = ragged.group_median(values, COUNTS)
    sums = ragged.group_sum(values, COUNTS)
    for median, total, part in zip(medians, sums, split(values, COUNTS), strict=True):
        assert (np.isnan(median) and part.size == 0) or median == np.median(part)
        assert total == pytest.approx(part.sum(), abs=1e-9)
    flags = values > 0
    assert ragged.group_count(flags, COUNTS).tolist() == [int(part.sum()) for part in split(flags, COUNTS)]


def test_arc_length_and_gradient_equal_per_path_numpy():
    points = random_walks(COUNTS).astype(float)
    along = split(ragged.group_arc_length(points, COUNTS), COUNTS)
    gradient = split(ragged.group_gradient(points, COUNTS), COUNTS)
    for path, length, slope in zip(split(points, COUNTS), along, gradient, strict=True):
        if len(path) == 0:
            continue
        assert np.array_equal(length, np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(path, axis=0).T))]))
        assert np.array_equal(slope, np.gradient(path, axis=0) if len(path) > 1 else np.zeros((1, 2)))


def smooth_path(coords, closed=False, sigma=SMOOTH_SIGMA):
    """The per-path definition (centreline.py before vectorising)."""
    points = coords.astype(np.float64)
    n = len(points)
    if n < 3:
        return points
    if closed:
        return ndimage.gaussian_filter1d(points, sigma, axis=0, mode="wrap")
    pad = min(n - 1, int(4 * sigma) + 1)
    head = 2 * points[0] - points[pad:0:-1]
    tail = 2 * points[-1] - points[-2:-pad - 2:-1]
    extended = np.concatenate([head, points, tail])
    return ndimage.gaussian_filter1d(extended, sigma, axis=0, mode="nearest")[pad:pad + n]


def test_smoothing_all_paths_at_once_equals_each_path_alone():
    counts = COUNTS[COUNTS > 0]
    points = random_walks(counts, seed=2)
    closed = np.zeros(len(counts), dtype=bool)
    closed[[5, 9]] = True
    smooth = split(smooth_paths(points, counts, closed), counts)
    for got, path, loop in zip(smooth, split(points, counts), closed, strict=True):
        assert np.array_equal(got, smooth_path(path, bool(loop))), len(path)


def total_turning_of(points):
    """The per-path definition (segments.py before vectorising)."""
    if len(points) < 3:
        return 0.0
    tangent = np.gradient(points, axis=0)
    norm = np.hypot(tangent[:, 0], tangent[:, 1])
    norm[norm == 0] = 1.0
    tangent = tangent / norm[:, None]
    increments = np.diff(np.unwrap(np.arctan2(tangent[:, 0], tangent[:, 1])))
    averaged = np.convolve(increments, np.full(TURN_WINDOW, 1.0 / TURN_WINDOW), mode="full")
    return float(np.abs(averaged).sum())


def test_turning_of_all_paths_at_once_equals_each_path_alone():
    counts = COUNTS[COUNTS > 0]
    points = smooth_paths(random_walks(counts, seed=3), counts, np.zeros(len(counts), dtype=bool))
    turning = total_turning(tangents(points, counts), counts)
    expected = [total_turning_of(path) for path in split(points, counts)]
    assert turning == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert max(expected) > 10  # random walks turn a lot: the comparison is not between zeros


def test_skeleton_graph_equals_skan_skeleton():
    import warnings

    from skan import Skeleton
    from skimage.draw import line
    from skimage.morphology import skeletonize

    rng = np.random.default_rng(4)
    tree = np.zeros((300, 300), dtype=bool)
    for _ in range(25):  # crossing thick strokes: many junction clusters
        r0, c0, r1, c1 = rng.integers(10, 290, size=4)
        tree[line(r0, c0, r1, c1)] = True
    skeleton = skeletonize(ndimage.binary_dilation(tree, iterations=int(rng.integers(1, 3))))
    ours = skeleton_graph(skeleton)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = Skeleton(skeleton)
    assert ours.n_paths == theirs.n_paths > 50
    assert np.array_equal(ours.paths.indptr, theirs.paths.indptr)
    assert np.array_equal(ours.paths.indices, theirs.paths.indices)
    assert np.array_equal(ours.degrees, theirs.degrees) and np.array_equal(ours.node_coordinates, theirs.coordinates)


def test_disc_blur_equals_gaussian_filter():
    rng = np.random.default_rng(5)
    image = np.zeros((150, 170))
    image.flat[rng.integers(0, image.size, 400)] = rng.random(400) * 30
    for sigma in (2.0, 13.5, 40.0):  # the kernel wider than the image too
        expected = ndimage.gaussian_filter(image, sigma, mode="constant")
        assert np.abs(blur(image, sigma) - expected).max() <= 1e-12 * expected.max()
