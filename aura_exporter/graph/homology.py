"""Persistent homology of a directed, weighted service graph, with giotto-tda's flagser.

The filtration adds edges strongest first (edges.filtration_levels); every service is present from
the start. Two complexes, computed in one giotto-tda call:

- H0, partitions: the directed flag complex of the whole graph. Its components are the graph's
  weakly connected parts; a finite H0 bar is a part that joins the rest when a weaker link enters,
  an infinite one a part that never does (the graph is split).
- H1, circular dependencies: the directed flag complex of the graph's cyclic part, each edge entering
  at the level at which it first lies on a directed cycle (its own level, or the bottleneck of the
  best path back, if later). A strongly connected digraph's cycle space is spanned by its directed
  cycles, so H1 counts independent request loops (a ⇄ b, or a → b → c → a); a diamond (two paths to
  one database) or a common caller of a loop's services are not in the cyclic part and never count,
  which they would in the flag complex of the whole graph. A transitive triangle inside a loop (a → b,
  b → c and a → c) fills the hole it spans, as in any directed flag complex.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gtda.homology import FlagserPersistence

from aura_exporter.graph.edges import ServiceGraph
from aura_exporter.topology.wasserstein import wasserstein

DIMS = (0, 1)


@dataclass(frozen=True)
class GraphDiagrams:
    """(birth, death) pairs per dimension; deaths may be infinite. H0 is reduced (one part fewer)."""

    h0: np.ndarray  # [n, 2]
    h1: np.ndarray  # [m, 2]

    def of_dim(self, dim: int) -> np.ndarray:
        return self.h0 if dim == 0 else self.h1

    @property
    def deepest(self) -> float:
        """The largest finite value in either diagram (0 when there is none)."""
        values = np.concatenate([self.h0.ravel(), self.h1.ravel()])
        finite = values[np.isfinite(values)]
        return float(finite.max()) if finite.size else 0.0


def bottleneck_paths(size: int, caller: np.ndarray, callee: np.ndarray, level: np.ndarray) -> np.ndarray:
    """[size, size] minimax path levels: best[i, j] is the lowest level at which j can be reached from
    i (the highest edge level on the best path), inf if never, 0 from a service to itself.
    Floyd–Warshall in the (min, max) semiring, one vectorised pass per service."""
    best = np.full((size, size), np.inf)
    np.minimum.at(best, (caller, callee), level)
    np.fill_diagonal(best, 0.0)
    for k in range(size):
        best = np.minimum(best, np.maximum(best[:, k:k + 1], best[k:k + 1, :]))
    return best


def cyclic_levels(graph: ServiceGraph, level: np.ndarray, paths: np.ndarray) -> np.ndarray:
    """[edges] the level at which each edge first lies on a directed cycle; inf for one that never does."""
    return np.maximum(level, paths[graph.callee, graph.caller])


def persistence(graph: ServiceGraph, level: np.ndarray, cyclic: np.ndarray) -> GraphDiagrams:
    size = len(graph.services)
    if size == 0:
        return GraphDiagrams(np.zeros((0, 2)), np.zeros((0, 2)))
    whole = _adjacency(size, graph.caller, graph.callee, level)
    on_loop = np.isfinite(cyclic)
    loop_services = np.unique(np.concatenate([graph.caller[on_loop], graph.callee[on_loop]]))
    if loop_services.size == 0:
        loops = np.zeros((1, 1))  # one service alone: no H1
    else:
        position = np.full(size, -1)
        position[loop_services] = np.arange(loop_services.size)
        loops = _adjacency(loop_services.size, position[graph.caller[on_loop]], position[graph.callee[on_loop]],
                           cyclic[on_loop])
    diagrams = FlagserPersistence(homology_dimensions=DIMS, directed=True, infinity_values=None,
                                  n_jobs=1).fit_transform([whole, loops])
    return GraphDiagrams(h0=_pairs(diagrams[0], 0), h1=_pairs(diagrams[1], 1))


def _adjacency(size: int, caller: np.ndarray, callee: np.ndarray, level: np.ndarray) -> np.ndarray:
    """flagser's dense input: edge levels off the diagonal (inf: no edge), vertex levels (0) on it.
    A vertex enters before its edges in any case: 0 is the lowest level."""
    matrix = np.full((size, size), np.inf)
    matrix[caller, callee] = level
    np.fill_diagonal(matrix, 0.0)
    return matrix


def _pairs(diagram: np.ndarray, dim: int) -> np.ndarray:
    points = diagram[diagram[:, 2] == dim, :2]
    return points[points[:, 1] > points[:, 0]]  # giotto-tda pads with zero-length points


def betti(diagrams: GraphDiagrams, services: int, min_persistence: float) -> np.ndarray:
    """[2] Betti numbers of the whole graph: its parts (unreduced H0), and its independent loops
    longer-lived than `min_persistence` (a loop that no triangle ever fills lives forever)."""
    parts = int(np.sum(np.isinf(diagrams.h0[:, 1]))) + 1 if services else 0
    lifetimes = diagrams.h1[:, 1] - diagrams.h1[:, 0]
    return np.array([parts, int(np.sum(lifetimes > min_persistence))], dtype=np.float64)


def drift(current: GraphDiagrams, baseline: GraphDiagrams) -> np.ndarray:
    """[2] 1-Wasserstein distance per dimension. Infinite deaths are read as one level beyond the
    deepest finite value of both diagrams, so a part or a loop that appears counts, and finitely."""
    cap = max(current.deepest, baseline.deepest) + 1.0
    return np.array([wasserstein(np.minimum(current.of_dim(d), cap), np.minimum(baseline.of_dim(d), cap))
                     for d in DIMS])
