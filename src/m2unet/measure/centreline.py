"""Centreline of a vessel mask: skeleton (scikit-image), graph (skan), spur pruning, smoothed paths.

Each skan path (a run of skeleton pixels between two nodes: end points or junction pixels) becomes one
vessel segment. Lengths are measured on a smoothed centreline, not by summing pixel steps: a digital
line at slope 1/20 has 19 straight and 1 diagonal step per 20 px, 1.9 % longer than the line it draws
(up to 8 % at 22.5°). The smoothing is a Gaussian of ``SMOOTH_SIGMA`` steps along the path with the ends
held (the path is extended by point reflection about each end, which leaves straight runs straight), so
straight bars measure tortuosity 1.000 ± 0.005 and circular arcs θ/(2 sin θ/2) within 1 %
(tests/test_measure.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .ragged import group_arc_length, group_count, group_ids, group_median, starts_of

SMOOTH_SIGMA = 3.0  # pixel steps along the path
SPUR_FACTOR = 1.5  # an end branch shorter than this × the vessel radius at its junction is a skeleton spur
END_TRIM = 1.5  # the centreline within this × the vessel radius of a free end is dropped (see _trim_free_ends)


@dataclass
class Centreline:
    """The skeleton graph: ``paths[i]`` (N×2 float row, col, smoothed), raw node ids at both ends, degrees."""

    skeleton: np.ndarray  # bool H×W
    distance: np.ndarray  # float32 H×W, distance of each vessel pixel to the background (vessel_distance)
    paths: list[np.ndarray]  # raw integer coordinates per path (N×2, row/col)
    smooth: list[np.ndarray]  # smoothed coordinates per path (N×2 float)
    ends: np.ndarray  # P×2 node ids (first, last) of each path
    node_xy: np.ndarray  # node id → (row, col)
    degree: np.ndarray  # node id → number of skeleton neighbours
    closed: np.ndarray  # P bool: the path is a closed loop without a junction
    points: np.ndarray | None = None  # all smoothed paths one after another (flat N×2 float); smooth[i] are views of it
    counts: np.ndarray | None = None  # P: number of smoothed points of each path


def pixel_graph(skeleton: np.ndarray):
    """The 8-connected pixel graph of a 2-D skeleton as skan builds it (``skan.csr.pixel_graph``): nodes are the
    skeleton pixels in raster order, a sparse CSR matrix with sorted indices whose entries are the distances
    to the neighbours (1 or √2). Returns (matrix, raveled pixel index of each node). The same matrix, built
    from one table of node ids instead of skan's general n-D mapping (tests/test_measure_ragged.py)."""
    from scipy import sparse

    padded = np.pad(skeleton, 1)
    nodes_padded = np.flatnonzero(padded)
    ids = np.full(padded.size, -1, dtype=np.int64)
    ids[nodes_padded] = np.arange(nodes_padded.size)
    width = padded.shape[1]
    offsets = np.array([-width - 1, -width, -width + 1, -1, 1, width - 1, width, width + 1])  # ascending: sorted neighbours
    distances = np.where(np.abs(offsets) == width, 1.0, np.where(np.abs(offsets) == 1, 1.0, np.sqrt(2.0)))
    neighbours = ids[nodes_padded[:, None] + offsets[None, :]]
    present = neighbours >= 0
    indptr = np.concatenate([[0], np.cumsum(present.sum(axis=1))])
    matrix = sparse.csr_matrix((np.broadcast_to(distances, neighbours.shape)[present], neighbours[present], indptr),
                               shape=(nodes_padded.size, nodes_padded.size))
    rows, cols = np.divmod(nodes_padded, width)
    return matrix, (rows - 1) * skeleton.shape[1] + (cols - 1)


def junction_trees(adjacency):
    """The pixel graph with every cluster of junction pixels (degree ≥ 3) reduced to its minimum spanning tree:
    skan's ``_mst_junctions`` step of ``Skeleton``, the same sparse operations, without its loop over every
    pixel (a third of the graph's cost on a DRIVE map). tests/test_measure.py checks the paths equal skan's."""
    from scipy import sparse
    from scipy.sparse import csgraph

    degrees = np.diff(adjacency.indptr)
    edges = adjacency.tocoo()
    both = (degrees[edges.row] >= 3) & (degrees[edges.col] >= 3)
    junctions = sparse.csr_matrix((edges.data[both], (edges.row[both], edges.col[both])), shape=adjacency.shape)
    junctions.sort_indices()
    tree = csgraph.minimum_spanning_tree(junctions)
    return adjacency - (junctions - (tree + tree.T))


def skeleton_graph(skeleton: np.ndarray):
    """skan's path graph (``PathGraph``: paths, node_coordinates, degrees) of a skeleton image, as
    ``skan.Skeleton`` builds it, or None when the skeleton has no path (empty, or lone pixels only)."""
    import warnings

    from skan.csr import PathGraph

    rows, cols = np.nonzero(skeleton)
    padded = np.pad(skeleton, 1)
    neighbours = sum(padded[rows + 1 + dr, cols + 1 + dc] for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc)
    if np.any(neighbours == 0):  # skan has no path for a lone pixel (and fails on a skeleton made only of them)
        skeleton = skeleton.copy()
        skeleton[rows[neighbours == 0], cols[neighbours == 0]] = False
    if np.count_nonzero(neighbours) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adjacency, nodes = pixel_graph(skeleton)
        coordinates = np.transpose(np.unravel_index(nodes, skeleton.shape))
        graph = PathGraph.from_graph(adj=junction_trees(adjacency), node_coordinates=coordinates)
    return graph if graph.n_paths else None


def vessel_distance(vessels: np.ndarray) -> np.ndarray:
    """Distance of each vessel pixel to the background: the mean of the chessboard and city-block distance
    transforms (within 12 % of the Euclidean distance, ten times faster to compute). Only used for rules
    (spur length, end trimming, junction merging, where to look for an edge, disc weights); widths are
    measured on profiles across the vessel (segments.py)."""
    chessboard = ndimage.distance_transform_cdt(vessels, metric="chessboard")
    cityblock = ndimage.distance_transform_cdt(vessels, metric="taxicab")
    return (chessboard + cityblock).astype(np.float32) * np.float32(0.5)


def _reskeletonize_around(skeleton: np.ndarray, junctions: list[tuple[int, int]]) -> np.ndarray:
    """Thin again around the junctions whose spur was removed (a junction pixel left with two neighbours
    can leave a thick corner); only a 5×5 window each, with one pixel of fixed context around it."""
    from skimage.morphology import skeletonize

    h, w = skeleton.shape
    for row, col in junctions:
        top, left = max(0, row - 3), max(0, col - 3)
        window = skeleton[top:row + 4, left:col + 4]
        thinned = skeletonize(window)
        inner = (slice(1 if top else 0, window.shape[0] - (1 if row + 4 < h else 0)), slice(1 if left else 0, window.shape[1] - (1 if col + 4 < w else 0)))
        window[inner] = thinned[inner]
    return skeleton


def path_nodes(graph) -> tuple[np.ndarray, np.ndarray]:
    """All paths' node ids one after another (skan's path matrix), and each path's node count."""
    return np.asarray(graph.paths.indices, dtype=np.int64), np.diff(graph.paths.indptr).astype(np.int64)


def _prune_spurs(skeleton: np.ndarray, distance: np.ndarray, graph) -> list[tuple[int, int]]:
    """Remove end branches shorter than SPUR_FACTOR × the radius at their junction (skeleton artefacts at
    vessel ends and corners). Returns the junction pixels that lost a spur, in path order."""
    nodes, counts = path_nodes(graph)
    starts = starts_of(counts)
    lasts = starts + counts - 1
    first, last = graph.degrees[nodes[starts]], graph.degrees[nodes[lasts]]
    junction = np.where(first > 1, nodes[starts], nodes[lasts])
    coords = np.asarray(graph.node_coordinates)[nodes].astype(np.int64)
    length = group_arc_length(coords, counts)[lasts]
    row, col = np.asarray(graph.node_coordinates)[junction].astype(np.int64).T
    spur = ((first == 1) ^ (last == 1)) & (length < SPUR_FACTOR * distance[row, col])
    ids = group_ids(counts)
    position = np.arange(len(nodes))
    kept_end = np.where(first > 1, starts, lasts)[ids]  # the junction end of a spur stays
    tip = spur[ids] & (position != kept_end)
    skeleton[coords[tip, 0], coords[tip, 1]] = False
    return [(int(r), int(c)) for r, c in zip(row[spur], col[spur], strict=True)]


def _smoothing_blocks(counts: np.ndarray, chosen: np.ndarray, margin: int, pads: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The chosen paths padded for smoothing, one block each: ``margin`` copies of the first extended point, the
    path extended by point reflection about each end (``pads`` points), ``margin`` copies of the last extended
    point. Returns, per padded value, its source point and reflection anchor (flat indices; anchor -1: the
    point itself), and each block's first index."""
    sizes = np.where(chosen, counts + 2 * pads + 2 * margin, 0)
    block_starts = starts_of(sizes)
    path = group_ids(sizes)
    n, pad, start = counts[path], pads[path], starts_of(counts)[path]
    local = np.clip(np.arange(sizes.sum()) - block_starts[path] - margin, 0, n + 2 * pad - 1)  # "nearest" margins
    head, tail = local < pad, local >= pad + n
    source = np.where(head, pad - local, np.where(tail, n - 2 - (local - pad - n), local - pad))
    anchor = np.where(head, start, np.where(tail, start + n - 1, -1))
    return start + source, anchor, block_starts


def smooth_paths(points: np.ndarray, counts: np.ndarray, closed: np.ndarray, sigma: float = SMOOTH_SIGMA) -> np.ndarray:
    """Gaussian-smoothed paths (flat N×2 float, same counts) with both ends of an open path held in place
    (point reflection about each end); a closed loop wraps around. Paths under 3 points are left as they are.
    All open paths are filtered in one call: each is padded with enough copies of its ends that no kernel
    reaches the next (the same values as filtering each extended path alone with mode="nearest")."""
    points = np.asarray(points, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.int64)
    closed = np.asarray(closed, dtype=bool)
    smooth = points.copy()
    margin = int(4 * sigma + 0.5)  # scipy's kernel radius for truncate=4
    pads = np.minimum(counts - 1, int(4 * sigma) + 1)
    chosen = (counts >= 3) & ~closed
    source, anchor, block_starts = _smoothing_blocks(counts, chosen, margin, pads)
    if source.size:
        values = np.where((anchor >= 0)[:, None], 2 * points[np.maximum(anchor, 0)] - points[source], points[source])
        filtered = ndimage.gaussian_filter1d(values, sigma, axis=0, mode="nearest")
        ids = group_ids(counts)
        inside = chosen[ids]
        offset = np.arange(len(points)) - starts_of(counts)[ids]
        smooth[inside] = filtered[(block_starts + margin + pads)[ids][inside] + offset[inside]]
    starts = starts_of(counts)
    for index in np.flatnonzero((counts >= 3) & closed):
        first = starts[index]
        smooth[first:first + counts[index]] = ndimage.gaussian_filter1d(points[first:first + counts[index]], sigma, axis=0, mode="wrap")
    return smooth


def _trim_free_ends(points: np.ndarray, counts: np.ndarray, distance: np.ndarray, first_free: np.ndarray,
                    last_free: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop the centreline within END_TRIM vessel radii of a free end (an end point, not a junction): there the
    skeleton of a blunt vessel end bends into a corner. The radius is the path's median distance value; at
    most a quarter of the path is cut at each end, paths under 5 points and paths that would keep under 3
    are left whole. Returns the kept-point mask and the lengths cut at each path's first and last end
    (restored by :func:`_extend_ends`)."""
    ids, starts = group_ids(counts), starts_of(counts)
    lasts = starts + counts - 1
    radius = END_TRIM * group_median(distance[points[:, 0], points[:, 1]], counts)
    along = group_arc_length(points, counts)
    total = along[lasts]
    cut = np.minimum(radius, total / 4)[ids]
    keep = (~first_free[ids] | (along >= cut)) & (~last_free[ids] | (total[ids] - along >= cut))
    whole = ~(first_free | last_free) | (counts < 5) | (group_count(keep, counts) < 3)
    keep |= whole[ids]
    kept_first = np.full(len(counts), len(points))
    np.minimum.at(kept_first, ids[keep], np.flatnonzero(keep))
    kept_last = np.full(len(counts), -1)
    np.maximum.at(kept_last, ids[keep], np.flatnonzero(keep))
    first_cut = np.where(first_free & ~whole, along[kept_first], 0.0)
    last_cut = np.where(last_free & ~whole, total - along[kept_last], 0.0)
    return keep, first_cut, last_cut


def _extend_ends(points: np.ndarray, counts: np.ndarray, first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Extend each smoothed path straight along its end tangents by ``first`` and ``last`` px (the trimmed
    caps): one point more at each extended end. Returns the new flat points and counts."""
    starts = starts_of(counts)
    lasts = starts + counts - 1
    reach = np.minimum(counts - 1, int(2 * SMOOTH_SIGMA))
    positions, values, added = [], [], np.zeros(len(counts), dtype=np.int64)
    for length, end, inner, at in ((first, starts, starts + reach, starts), (last, lasts, lasts - reach, lasts + 1)):
        direction = points[end] - points[inner]
        norm = np.hypot(direction[:, 0], direction[:, 1])
        extend = (reach >= 1) & (length > 0) & (norm > 0)
        safe = np.where(extend, norm, 1.0)
        positions.append(np.where(extend, at, -1))
        values.append(points[end] + direction / safe[:, None] * length[:, None])
        added += extend
    # interleave per path (first end, then last end) so that equal positions keep that order
    position = np.stack(positions, axis=1).ravel()
    value = np.stack(values, axis=1).reshape(-1, 2)
    chosen = position >= 0
    return np.insert(points, position[chosen], value[chosen], axis=0), counts + added


def centreline(vessels: np.ndarray) -> Centreline | None:
    """The centreline graph of a bool vessel mask (None when it has no centreline path)."""
    from skimage.morphology import skeletonize

    distance = vessel_distance(vessels)
    skeleton = skeletonize(vessels)
    graph = skeleton_graph(skeleton)
    pruned = _prune_spurs(skeleton, distance, graph) if graph is not None else []
    if pruned:  # one round: a spur exposed by removing another is rare, and each round rebuilds the graph
        skeleton = _reskeletonize_around(skeleton, pruned)
        graph = skeleton_graph(skeleton)
    if graph is None:
        return None
    nodes, counts = path_nodes(graph)
    starts = starts_of(counts)
    ends = np.stack([nodes[starts], nodes[starts + counts - 1]], axis=1)
    degree = np.asarray(graph.degrees)
    closed = (ends[:, 0] == ends[:, 1]) & (degree[ends[:, 0]] <= 2)
    points = np.asarray(graph.node_coordinates)[nodes].astype(np.int64)
    keep, first_cut, last_cut = _trim_free_ends(points, counts, distance, degree[ends[:, 0]] == 1, degree[ends[:, 1]] == 1)
    points, counts = points[keep], group_count(keep, counts)
    smooth, smooth_counts = _extend_ends(smooth_paths(points, counts, closed), counts, first_cut, last_cut)
    paths = np.split(points, starts_of(counts)[1:])
    return Centreline(skeleton, distance, paths, np.split(smooth, starts_of(smooth_counts)[1:]), ends, np.asarray(graph.node_coordinates),
                      degree, closed, smooth, smooth_counts)
