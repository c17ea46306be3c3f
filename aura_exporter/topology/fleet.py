"""Fleet topology: entities as points, their H0 persistence, behaviour clusters and isolation.

Each entity is placed at its recent state in its own baseline units: the mean of the last eighth
of its scaled window (at least 4 steps), one coordinate per feature. A healthy fleet sits in one
cloud near the origin whatever each host's absolute levels; hosts that leave their normal state
together (a partition) form a cluster of their own, and a host that leaves alone stands apart.

H0 persistence of that cloud is single-linkage clustering (the death of each H0 bar is a merge
height), computed from the cloud's minimum spanning tree (`single_linkage`). A cluster is counted
when its merge height outlives the same noise rule as the per-entity diagrams: `max(min_distance, noise_factor × median
merge height)`. An entity's isolation is the distance at which it joins the fleet's majority.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster

MIN_CLUSTER_DISTANCE = 1.0  # in baseline units (robust standard deviations, RMS over features)
GROUP_DISTANCE = 1.0  # RMS over features, in log-compressed baseline units


@dataclass(frozen=True)
class FleetTopology:
    components: int
    isolation: np.ndarray  # [E]
    cluster_size: np.ndarray  # [E] entities in the entity's cluster at the threshold
    threshold: float


def recent_state(scaled: np.ndarray) -> np.ndarray:
    """[E, F] mean of the last eighth of each scaled window."""
    tail = max(4, scaled.shape[1] // 8)
    return scaled[:, -tail:, :].mean(axis=1)


def fleet_topology(scaled: np.ndarray, noise_factor: float) -> FleetTopology:
    entities = scaled.shape[0]
    if entities < 2:
        return FleetTopology(components=entities, isolation=np.zeros(entities), cluster_size=np.ones(entities),
                             threshold=MIN_CLUSTER_DISTANCE)
    points = recent_state(scaled) / np.sqrt(scaled.shape[2])  # RMS distance over features
    merges = single_linkage(points)
    heights = merges[:, 2]
    threshold = max(MIN_CLUSTER_DISTANCE, noise_factor * float(np.median(heights)))
    components = 1 + int(np.sum(heights > threshold))
    isolation = _isolation(merges, entities)
    return FleetTopology(components=components, isolation=isolation,
                         cluster_size=_cluster_sizes(points, isolation > threshold), threshold=threshold)


def _cluster_sizes(points: np.ndarray, apart: np.ndarray) -> np.ndarray:
    """[E] the size of each entity's group: the majority's, or that of its group among those apart."""
    sizes = np.full(len(points), float(np.sum(~apart)))
    outliers = np.flatnonzero(apart)
    if len(outliers) == 1:
        sizes[outliers] = 1.0
    elif len(outliers) > 1:
        compressed = np.sign(points[outliers]) * np.log1p(np.abs(points[outliers]) * np.sqrt(points.shape[1]))
        groups = fcluster(single_linkage(compressed / np.sqrt(points.shape[1])),
                          t=GROUP_DISTANCE, criterion="distance")
        sizes[outliers] = np.bincount(groups)[groups]
    return sizes


def _isolation(merges: np.ndarray, entities: int) -> np.ndarray:
    """Per entity, the merge height at which its cluster first joins one holding a majority."""
    isolation = np.zeros(entities)
    members: dict[int, list[int]] = {i: [i] for i in range(entities)}
    majority = entities / 2
    for step, (left, right, height, size) in enumerate(merges):
        a, b = members.pop(int(left)), members.pop(int(right))
        if size > majority:
            big_a, big_b = len(a) > majority, len(b) > majority
            for group, already_in in ((a, big_a), (b, big_b)):
                if not already_in:
                    isolation[group] = height
        if len(a) < len(b):
            a, b = b, a
        a.extend(b)  # small into large: O(E log E) over the whole linkage
        members[entities + step] = a
    return isolation


def single_linkage(points: np.ndarray) -> np.ndarray:
    """scipy's `linkage(points, method="single")`: [n − 1, 4] merges (the two clusters' ids, the Euclidean
    height, the new cluster's size), from Prim's minimum spanning tree, one vectorised pass per point.
    scipy's own holds the interpreter for its whole O(n²) run, 2 s for 10,000 entities, during which the
    exporter answered no scrape; here each pass is a matrix-vector product, which lets go of it (and it is
    4 or more times faster: 0.2–0.4 s)."""
    first, second = spanning_tree(points)
    heights = np.sqrt(np.einsum("ij,ij->i", points[first] - points[second], points[first] - points[second]))
    order = np.argsort(heights, kind="stable")
    return _merges(first[order], second[order], heights[order], len(points))


def spanning_tree(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The edges of the minimum spanning tree of `points` (Prim's; squared distances as |a|² − 2a·b + |b|², of
    points centred on their median first, so that a fleet far from the origin keeps its small distances)."""
    count = len(points)
    points = points - np.median(points, axis=0)
    rest = points[1:].copy()  # the points not yet in the tree, each removal filled by the last one
    rest_ids = np.arange(1, count)
    norms = np.einsum("ij,ij->i", rest, rest)
    nearest = norms - 2.0 * (rest @ points[0]) + points[0] @ points[0]  # squared distance to the tree
    via = np.zeros(count - 1, dtype=np.int64)  # the tree point it is nearest
    first = np.empty(count - 1, dtype=np.int64)
    second = np.empty(count - 1, dtype=np.int64)
    for step, last in enumerate(range(count - 2, -1, -1)):
        k = int(np.argmin(nearest[:last + 1]))
        point, norm = rest[k].copy(), norms[k]
        first[step], second[step] = via[k], rest_ids[k]
        for array in (rest, norms, rest_ids, nearest, via):  # the last point not in the tree fills the gap
            array[k] = array[last]
        distances = rest[:last] @ point
        distances *= -2.0
        distances += norms[:last] + norm
        closer = distances < nearest[:last]
        nearest[:last][closer] = distances[closer]
        via[:last][closer] = second[step]
    return first, second


def _merges(first: np.ndarray, second: np.ndarray, heights: np.ndarray, count: int) -> np.ndarray:
    """Spanning-tree edges in increasing height as scipy's linkage matrix (union-find over cluster ids)."""
    parent = list(range(count))
    cluster = list(range(count))  # the id of the cluster each root stands for
    size = [1] * count
    merges = np.empty((count - 1, 4))

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for step, (a, b) in enumerate(zip(first.tolist(), second.tolist(), strict=True)):
        a, b = root(a), root(b)
        ids = sorted((cluster[a], cluster[b]))
        if size[a] < size[b]:
            a, b = b, a
        parent[b] = a
        size[a] += size[b]
        cluster[a] = count + step
        merges[step] = (ids[0], ids[1], heights[step], size[a])
    return merges
