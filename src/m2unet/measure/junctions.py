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
from .segments import arc_length


def _clusters(line: Centreline) -> tuple[dict[int, int], np.ndarray]:
    """Junction node → cluster id, and a mask of paths that are internal (merged into a junction)."""
    junction_nodes = np.flatnonzero(line.degree >= 3)
    parent = {int(n): int(n) for n in junction_nodes}

    def find(node):
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    internal = np.zeros(len(line.paths), dtype=bool)
    for index, (first, last) in enumerate(line.ends):
        if first == last or line.degree[first] < 3 or line.degree[last] < 3:
            continue
        width = 2 * max(line.distance[tuple(line.node_xy[first])], line.distance[tuple(line.node_xy[last])])
        if arc_length(line.paths[index])[-1] < width:
            internal[index] = True
            parent[find(int(first))] = find(int(last))
    return {node: find(node) for node in parent}, internal


def _branch_direction(points: np.ndarray, radius: float) -> np.ndarray:
    """Unit vector (x right, y up) in which a branch (points ordered away from the junction) leaves it."""
    along = arc_length(points)
    a0 = min(2 * radius + 3, along[-1] / 2)
    a1 = min(a0 + max(15.0, 3 * radius), along[-1])
    p0 = np.array([np.interp(a0, along, points[:, 0]), np.interp(a0, along, points[:, 1])])
    p1 = np.array([np.interp(a1, along, points[:, 0]), np.interp(a1, along, points[:, 1])])
    vector = np.array([p1[1] - p0[1], -(p1[0] - p0[0])])
    norm = float(np.hypot(*vector))
    return vector / norm if norm > 0 else vector


def _acute(a: float, b: float) -> float:
    """The acute angle (0–90°) between two lines of headings a and b (degrees)."""
    difference = abs(a - b) % 180.0
    return min(difference, 180.0 - difference)


def junction_angle(directions: list[np.ndarray]) -> tuple[str, float, list[float]]:
    """Kind, main angle (degrees) and the gaps between consecutive branch directions (sum 360°)."""
    headings = np.sort([np.degrees(np.arctan2(d[1], d[0])) % 360.0 for d in directions])
    gaps = np.diff(np.concatenate([headings, [headings[0] + 360.0]]))
    if len(directions) == 3:
        return "bifurcation", float(gaps.min()), [float(g) for g in gaps]
    if len(directions) == 4:  # vessel 1: branches 0 and 2, vessel 2: branches 1 and 3 (sorted around)
        return "crossing", float(np.mean([_acute(headings[0], headings[1]), _acute(headings[2], headings[3])])), [float(g) for g in gaps]
    return "crossing", float(gaps.min()), [float(g) for g in gaps]


def junction_rows(line: Centreline) -> tuple[list[dict], np.ndarray]:
    """One dict per junction (x, y, kind, branches, angle_deg, angles_deg) and the internal-path mask."""
    cluster_of, internal = _clusters(line)
    members: dict[int, list[int]] = {}
    for node, cluster in cluster_of.items():
        members.setdefault(cluster, []).append(node)
    branches: dict[int, list[np.ndarray]] = {cluster: [] for cluster in members}
    for index, (first, last) in enumerate(line.ends):
        if internal[index]:
            continue
        points = line.smooth[index]
        if int(first) in cluster_of:
            branches[cluster_of[int(first)]].append(points)
        if int(last) in cluster_of:
            branches[cluster_of[int(last)]].append(points[::-1])
    rows = []
    for cluster, nodes in members.items():
        arms = branches[cluster]
        if len(arms) < 3:
            continue  # a junction whose other arms were pruned away is a bend, not a junction
        centre = line.node_xy[nodes].mean(axis=0)
        radius = max(float(line.distance[tuple(line.node_xy[n])]) for n in nodes)
        kind, angle, gaps = junction_angle([_branch_direction(arm, radius) for arm in arms])
        rows.append({"x": float(centre[1]), "y": float(centre[0]), "kind": kind, "branches": len(arms),
                     "angle_deg": angle, "angles_deg": ";".join(f"{g:.1f}" for g in gaps)})
    return rows, internal
