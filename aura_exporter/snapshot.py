"""The immutable result of a cycle, and the holder that publishes the latest one.

The exposition layer only ever reads the latest complete Snapshot: a scrape never sees half a
cycle, and an entity that vanished from a cycle is gone from the next scrape.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from aura_exporter.config import Analysis, GraphAnalysis
from aura_exporter.council import Verdict
from aura_exporter.council.explanation import Explanation, explain
from aura_exporter.forecast.stage import Forecast
from aura_exporter.graph import GraphOutcome
from aura_exporter.topology import Topology
from aura_exporter.windows import Windows

# An analysis whose last success is older than this many intervals is dropped from /metrics:
# better no series than confidently stale ones (its freshness gauge and AuraAnalysisStale remain).
STALE_AFTER_INTERVALS = 5


@dataclass(frozen=True)
class AnalysisResult:
    analysis: Analysis
    data_time: float  # the end of the window, on the step grid
    completed_at: float  # wall clock
    windows: Windows
    topology: Topology
    verdict: Verdict
    forecast: Forecast | None = None  # None until the analysis has a trained forecaster
    model_ready: bool = False  # baseline warmed up and forecaster trained: prediction alerts may fire

    def entity_labels(self, index: int) -> dict[str, str]:
        return dict(zip(self.windows.label_names, self.windows.entities[index], strict=True))

    def explanation(self, index: int) -> Explanation:
        """Why the council decided what it did about entity `index` (council/explanation.py)."""
        limits = {f.name: f.limit for f in self.analysis.features if f.limit is not None}
        return explain(self.verdict, self.topology.critical[index], limits,
                       max(self.analysis.forecast.horizons, default=0.0), index)


@dataclass(frozen=True)
class GraphResult:
    """The result of a graph analysis' cycle (aura_exporter/graph)."""

    analysis: GraphAnalysis
    data_time: float
    completed_at: float
    outcome: GraphOutcome


def _empty() -> Mapping:
    return MappingProxyType({})


@dataclass(frozen=True)
class Snapshot:
    results: Mapping[str, AnalysisResult] = field(default_factory=_empty)
    version: int = 0
    graphs: Mapping[str, GraphResult] = field(default_factory=_empty)


class SnapshotHolder:
    """Publishes snapshots atomically: each is a new immutable value, never one changed in place."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot = Snapshot()

    @property
    def latest(self) -> Snapshot:
        return self._snapshot

    def drop(self, analysis: str) -> None:
        """Forget an analysis that the configuration no longer has (its series leave the next render)."""
        with self._lock:
            old = self._snapshot
            self._snapshot = Snapshot(_without(old.results, analysis), old.version + 1, _without(old.graphs, analysis))

    def publish(self, result: AnalysisResult | GraphResult | None, analysis: str, now: float) -> Snapshot:
        """A new snapshot with `result` for `analysis` (or, when None, without fresh data for it)."""
        with self._lock:
            results, graphs = _fresh(self._snapshot.results, now), _fresh(self._snapshot.graphs, now)
            if isinstance(result, GraphResult):
                graphs[analysis] = result
            elif result is not None:
                results[analysis] = result
            snapshot = Snapshot(MappingProxyType(results), self._snapshot.version + 1, MappingProxyType(graphs))
            self._snapshot = snapshot
        return snapshot


def _without(results: Mapping, analysis: str) -> Mapping:
    return MappingProxyType({name: kept for name, kept in results.items() if name != analysis})


def _fresh(results: Mapping, now: float) -> dict:
    return {name: kept for name, kept in results.items()
            if now - kept.completed_at <= STALE_AFTER_INTERVALS * kept.analysis.interval}
