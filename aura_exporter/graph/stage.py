"""The graph stage of one analysis: edge series in, topology, drift and named findings out.

The baseline is the graph as it was learned: its edges, its parts, its loops and its diagrams. It is
learned from the first cycle, then again every baseline.refresh_interval, except while something is
unusual (a new loop, services cut off): an incident must not become the norm. Something unusual for a
whole refresh_interval is the new norm, and is learned then (a team that adds a loop on purpose is not
paged about it forever). baseline_file.py keeps the baseline across restarts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from aura_exporter.config import GraphAnalysis
from aura_exporter.graph.edges import ServiceGraph, build_graph, filtration_levels
from aura_exporter.graph.findings import Findings, cuts, edge_changes, loops, parts
from aura_exporter.graph.homology import (
    DIMS,
    GraphDiagrams,
    betti,
    bottleneck_paths,
    cyclic_levels,
    drift,
    persistence,
)
from aura_exporter.sources.base import RangeResult


@dataclass(frozen=True)
class GraphBaseline:
    learned_at: float
    weights: dict[tuple[str, str], float]
    parts: dict[str, int]
    loops: list[frozenset[str]]
    diagrams: GraphDiagrams


@dataclass(frozen=True)
class GraphOutcome:
    graph: ServiceGraph
    levels: np.ndarray  # [edges] filtration level of each edge
    cyclic: np.ndarray  # [edges] level at which each edge lies on a loop (inf: never)
    diagrams: GraphDiagrams
    dims: tuple[int, ...]
    betti: np.ndarray  # [2] parts, loops
    drift: np.ndarray  # [2] Wasserstein distance from the baseline's diagrams
    findings: Findings
    baseline_learned_at: float
    ready: bool  # the baseline was learned before this graph, so findings can be news
    parts: dict[str, int]  # each service's weakly connected part, 0 the main one


class GraphStage:
    def __init__(self, analysis: GraphAnalysis):
        self.analysis = analysis
        self.settings = analysis.graph
        self.baseline: GraphBaseline | None = None
        self.unusual_since: float | None = None

    def run(self, results: list[RangeResult], now: float) -> GraphOutcome:
        graph = build_graph(self.analysis, results)
        levels = filtration_levels(graph, self.settings.weight)
        cyclic = cyclic_levels(graph, levels, bottleneck_paths(len(graph.services), graph.caller, graph.callee, levels))
        diagrams = persistence(graph, levels, cyclic)
        found = loops(graph, cyclic, self.baseline.loops if self.baseline else [], self.settings.weight == "strength")
        observed = GraphBaseline(now, graph.weights(), parts(graph), [frozenset(loop.services) for loop in found],
                                 diagrams)
        if self.baseline is None:  # the first graph is its own baseline: no loop in it is news
            self.baseline = observed
            found = tuple(replace(loop, new=False) for loop in found)
        baseline = self.baseline
        findings = Findings(
            loops=found,
            cuts=cuts(observed.parts, baseline.parts),
            changes=edge_changes(observed.weights, baseline.weights),
        )
        self._refresh(observed, findings.unusual)
        return GraphOutcome(graph, levels, cyclic, diagrams, DIMS,
                            betti(diagrams, len(graph.services), self.settings.min_persistence),
                            drift(diagrams, baseline.diagrams), findings, baseline.learned_at,
                            ready=baseline.learned_at < now, parts=observed.parts)

    def _refresh(self, observed: GraphBaseline, unusual: bool) -> None:
        """Learn `observed` once the baseline is refresh_interval old, unless it is unusual and has
        not been for a whole refresh_interval yet."""
        now = observed.learned_at
        if not unusual:
            self.unusual_since = None
        elif self.unusual_since is None:
            self.unusual_since = now
        refresh = self.analysis.baseline.refresh_interval
        settled = self.unusual_since is None or now - self.unusual_since >= refresh
        if self.baseline is not None and now - self.baseline.learned_at >= refresh and settled:
            self.baseline, self.unusual_since = observed, None
