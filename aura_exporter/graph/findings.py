"""Named findings: which services form each loop, which were cut off, which edges came or went.

The diagrams say how many loops and parts there are and how robust they are; they cannot say
which services. These are found on the graph itself (scipy's strongly / weakly connected
components) and compared with the baseline graph (baseline.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from aura_exporter.graph.edges import ServiceGraph


@dataclass(frozen=True)
class Loop:
    """Services that reach each other through calls: every one is on a request loop with the others."""

    services: tuple[str, ...]  # sorted; `services[0]` names the loop in labels
    weakest_link: float  # the smallest weight among the loop's edges, in the query's units
    new: bool  # not within a loop of the baseline


@dataclass(frozen=True)
class Cut:
    """Services connected to the main part in the baseline and cut off from it now."""

    services: tuple[str, ...]  # sorted; `services[0]` names the part in labels
    vanished: bool  # they lost every edge (no longer in the graph at all)


@dataclass(frozen=True)
class EdgeChange:
    caller: str
    callee: str
    weight: float  # now for an appeared edge, in the baseline for a vanished one
    appeared: bool


@dataclass(frozen=True)
class Findings:
    loops: tuple[Loop, ...]  # strongest first
    cuts: tuple[Cut, ...]  # largest first
    changes: tuple[EdgeChange, ...]  # appeared then vanished, heaviest first

    @property
    def unusual(self) -> bool:
        """Something the baseline should not learn at once: a new loop or a cut."""
        return bool(self.cuts) or any(loop.new for loop in self.loops)


def loops(graph: ServiceGraph, cyclic: np.ndarray, known: list[frozenset[str]], strength: bool = True
          ) -> tuple[Loop, ...]:
    """Strongly connected groups of the graph's cyclic part, strongest (best weakest link) first. The
    weakest link is the smallest strength, or the largest distance."""
    on_loop = np.isfinite(cyclic)
    labels = _components(len(graph.services), graph.caller[on_loop], graph.callee[on_loop], "strong")
    found = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if members.size < 2:
            continue
        inside = on_loop & np.isin(graph.caller, members) & np.isin(graph.callee, members)
        services = tuple(graph.services[i] for i in members)
        weights = graph.weight[inside]
        found.append(Loop(services, float(weights.min() if strength else weights.max()),
                          new=not any(set(services) <= group for group in known)))
    sign = -1.0 if strength else 1.0
    return tuple(sorted(found, key=lambda loop: (sign * loop.weakest_link, loop.services)))


def parts(graph: ServiceGraph) -> dict[str, int]:
    """Each service's weakly connected part; part 0 is the main one (the largest)."""
    labels = _components(len(graph.services), graph.caller, graph.callee, "weak")
    sizes = np.bincount(labels) if labels.size else np.zeros(0, int)
    order = sorted(range(sizes.size), key=lambda p: (-sizes[p], int(np.flatnonzero(labels == p)[0])))
    rank = {part: r for r, part in enumerate(order)}
    return {name: rank[int(label)] for name, label in zip(graph.services, labels, strict=True)}


def cuts(current: dict[str, int], baseline: dict[str, int]) -> tuple[Cut, ...]:
    """Services of the baseline's main part that are outside the current main part, grouped by their
    current part (the ones gone from the graph each form their own)."""
    was_main = {name for name, part in baseline.items() if part == 0}
    groups: dict[int, list[str]] = {}
    gone = []
    for name in sorted(was_main):
        if name not in current:
            gone.append(name)
        elif current[name] != 0:
            groups.setdefault(current[name], []).append(name)
    found = [Cut(tuple(names), vanished=False) for names in groups.values()]
    found += [Cut((name,), vanished=True) for name in gone]
    return tuple(sorted(found, key=lambda cut: (-len(cut.services), cut.services)))


def edge_changes(current: dict[tuple[str, str], float],
                 baseline: dict[tuple[str, str], float]) -> tuple[EdgeChange, ...]:
    appeared = [EdgeChange(a, b, w, True) for (a, b), w in current.items() if (a, b) not in baseline]
    vanished = [EdgeChange(a, b, w, False) for (a, b), w in baseline.items() if (a, b) not in current]
    heaviest = lambda change: (-change.weight, change.caller, change.callee)  # noqa: E731
    return tuple(sorted(appeared, key=heaviest) + sorted(vanished, key=heaviest))


def _components(size: int, caller: np.ndarray, callee: np.ndarray, connection: str) -> np.ndarray:
    if size == 0:
        return np.zeros(0, dtype=np.int64)
    matrix = coo_matrix((np.ones(caller.size), (caller, callee)), shape=(size, size))
    return connected_components(matrix, directed=True, connection=connection)[1]
