"""Junctions of the centreline graph: bifurcations and crossings, with their branch angles.

Junction pixels (skeleton pixels with three or more neighbours) that are joined by a path shorter than
the local vessel width (twice the largest distance-transform value at either end) are one junction:
a crossing of two vessels usually skeletonises into two three-way junctions a little apart. A junction
with three branches is a bifurcation, with four or more a crossing.

Angles: each branch leaves the junction in the direction from its centreline point at arc length a0 to
the point at a1 (a0 = 2 × the junction's radius + 3 px, past the skeleton's bend into the junction and
the overlap of two daughters; a1 = a0 + max(15 px, 3 × radius); both capped at the branch length; the
junction's radius is the largest distance-transform value of its pixels). The directions, sorted around the
junction, leave gaps summing to 360°. Bifurcation: the branching angle is the smallest gap (between
the two daughters). Crossing: the acute angle between the two vessels, each the line through opposite
branches.

Limits: two vessels crossing at an acute angle overlap over a long stretch, and their two three-way
junctions lie farther apart than the vessel width: below about 45° (wide vessels) or 30° (thin ones)
such a crossing counts as two bifurcations.
"""

from __future__ import annotations

import numpy as np

from .centreline import Centreline
from .ragged import group_arc_length, starts_of


def _clusters(line: Centreline) -> tuple[dict[int, int], np.ndarray]:
    """Junction node → cluster id, and a mask of paths that are internal (merged into a junction)."""
    junction_nodes = np.flatnonzero(line.degree >= 3)
    parent = {int(n): int(n) for n in junction_nodes}

    def find(node):
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    first, last = line.ends[:, 0], line.ends[:, 1]
    candidates = np.flatnonzero((first != last) & (line.degree[first] >= 3) & (line.degree[last] >= 3))
    internal = np.zeros(len(line.paths), dtype=bool)
    if candidates.size:
        paths = [line.paths[index] for index in candidates]
        counts = np.array([len(path) for path in paths])
        length = group_arc_length(np.concatenate(paths), counts)[starts_of(counts) + counts - 1]
        distance = line.distance[line.node_xy[:, 0], line.node_xy[:, 1]]
        width = 2 * np.maximum(distance[first[candidates]], distance[last[candidates]])
        internal[candidates[length < width]] = True
    for index in np.flatnonzero(internal):
        parent[find(int(first[index]))] = find(int(last[index]))
    return {node: find(node) for node in parent}, internal


def branch_headings(line: Centreline, arms: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Heading (degrees, 0–360, x right, y up) in which each arm leaves its junction. ``arms``: K×2 (path,
    1 if the path leaves the junction from its last point); ``radius``: the junction's radius per arm. The
    direction is from the point at arc length a0 to the point at a1 along the arm (module docstring); all
    arms in one interpolation over the paths laid end to end, one pixel apart."""
    along = group_arc_length(line.points, line.counts)
    ends = starts_of(line.counts) + line.counts - 1
    total = along[ends]
    offset = np.concatenate([[0.0], np.cumsum(total + 1.0)[:-1]])
    key = along + np.repeat(offset, line.counts)
    path, backwards = arms[:, 0], arms[:, 1].astype(bool)
    length = total[path]
    a0 = np.minimum(2 * radius + 3, length / 2)
    a1 = np.minimum(a0 + np.maximum(15.0, 3 * radius), length)

    def point(at: np.ndarray) -> np.ndarray:
        x = offset[path] + np.where(backwards, length - at, at)
        return np.stack([np.interp(x, key, line.points[:, 0]), np.interp(x, key, line.points[:, 1])], axis=1)

    p0, p1 = point(a0), point(a1)
    return np.degrees(np.arctan2(-(p1[:, 0] - p0[:, 0]), p1[:, 1] - p0[:, 1])) % 360.0


def _acute(a: float, b: float) -> float:
    """The acute angle (0–90°) between two lines of headings a and b (degrees)."""
    difference = abs(a - b) % 180.0
    return min(difference, 180.0 - difference)


def junction_angle(headings: list[float]) -> tuple[str, float, list[float]]:
    """Kind, main angle (degrees) and the gaps between consecutive branch headings (degrees; sum 360°)."""
    headings = sorted(headings)
    gaps = [b - a for a, b in zip(headings, [*headings[1:], headings[0] + 360.0], strict=True)]
    if len(headings) == 3:
        return "bifurcation", min(gaps), gaps
    if len(headings) == 4:  # vessel 1: branches 0 and 2, vessel 2: branches 1 and 3 (sorted around)
        return "crossing", (_acute(headings[0], headings[1]) + _acute(headings[2], headings[3])) / 2, gaps
    return "crossing", min(gaps), gaps


def junction_rows(line: Centreline) -> tuple[list[dict], np.ndarray]:
    """One dict per junction (x, y, kind, branches, angle_deg, angles_deg) and the internal-path mask."""
    cluster_of, internal = _clusters(line)
    members: dict[int, list[int]] = {}
    for node, cluster in cluster_of.items():
        members.setdefault(cluster, []).append(node)
    arms: dict[int, list[tuple[int, int]]] = {cluster: [] for cluster in members}
    for index, (first, last) in enumerate(line.ends.tolist()):
        if internal[index]:
            continue
        if first in cluster_of:
            arms[cluster_of[first]].append((index, 0))
        if last in cluster_of:
            arms[cluster_of[last]].append((index, 1))
    junctions = [cluster for cluster in members if len(arms[cluster]) >= 3]  # fewer: the other arms were pruned, a bend
    distance = line.distance[line.node_xy[:, 0], line.node_xy[:, 1]]
    radius = {cluster: float(max(distance[members[cluster]])) for cluster in junctions}
    chosen = [arm for cluster in junctions for arm in arms[cluster]]
    headings = branch_headings(line, np.array(chosen, dtype=np.int64).reshape(-1, 2),
                               np.array([radius[cluster] for cluster in junctions for _ in arms[cluster]], dtype=float)).tolist()
    rows, used = [], 0
    for cluster in junctions:
        count = len(arms[cluster])
        centre = line.node_xy[members[cluster]].mean(axis=0)
        kind, angle, gaps = junction_angle(headings[used:used + count])
        used += count
        rows.append({"x": float(centre[1]), "y": float(centre[0]), "kind": kind, "branches": count,
                     "angle_deg": angle, "angles_deg": ";".join(f"{g:.1f}" for g in gaps)})
    return rows, internal
