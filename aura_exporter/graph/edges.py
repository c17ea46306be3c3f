"""Edge series → a service graph: one weighted, directed edge per (caller, callee).

Edge series come from monitored systems and can be odd; each odd one is left out and counted by
reason (SKIP_REASONS), never allowed to fail the cycle:
  - missing_label: the caller or the callee label is absent or empty;
  - self_loop: a service calling itself (retries inside one service are not a dependency between two);
  - no_value: no finite sample in the window (NaN, ±Inf, gaps), or a negative one;
  - weak: a `strength` at or below graph.min_weight (traffic that stopped is no edge).
Series of one (caller, callee) pair (a query that kept another label) are combined: strengths add up
(rates do), distances keep the worst. A graph with more than graph.max_services services is refused
(GraphTooLarge): topology of a truncated graph would invent partitions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from aura_exporter.config import GraphAnalysis, GraphConfig
from aura_exporter.sources.base import RangeResult

SKIP_REASONS = ("missing_label", "self_loop", "no_value", "weak")


class GraphTooLarge(Exception):
    """More services than graph.max_services."""


@dataclass(frozen=True)
class ServiceGraph:
    services: tuple[str, ...]  # sorted
    caller: np.ndarray  # [edges] index into services
    callee: np.ndarray  # [edges]
    weight: np.ndarray  # [edges] in the query's units, averaged over the window
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def edges(self) -> list[tuple[str, str]]:
        return [(self.services[a], self.services[b]) for a, b in zip(self.caller, self.callee, strict=True)]

    def weights(self) -> dict[tuple[str, str], float]:
        return dict(zip(self.edges, self.weight.tolist(), strict=True))


def build_graph(analysis: GraphAnalysis, results: list[RangeResult]) -> ServiceGraph:
    settings = analysis.graph
    skipped = dict.fromkeys(SKIP_REASONS, 0)
    combined: dict[tuple[str, str], float] = {}
    for series in (s for result in results for s in result.series):
        caller, callee = series.labels.get(settings.caller, ""), series.labels.get(settings.callee, "")
        reason = _reject(caller, callee, series.values, settings)
        if reason:
            skipped[reason] += 1
            continue
        value = float(np.mean(series.values[np.isfinite(series.values)]))
        if settings.weight == "strength" and value <= settings.min_weight:
            skipped["weak"] += 1
            continue
        previous = combined.get((caller, callee))
        combined[(caller, callee)] = value if previous is None else (
            previous + value if settings.weight == "strength" else max(previous, value))
    services = tuple(sorted({name for edge in combined for name in edge}))
    if len(services) > settings.max_services:
        raise GraphTooLarge(f"the graph has {len(services)} services, more than graph.max_services "
                            f"({settings.max_services})")
    index = {name: i for i, name in enumerate(services)}
    edges = sorted(combined)
    return ServiceGraph(
        services=services,
        caller=np.array([index[a] for a, _ in edges], dtype=np.int64),
        callee=np.array([index[b] for _, b in edges], dtype=np.int64),
        weight=np.array([combined[e] for e in edges], dtype=np.float64),
        skipped=skipped,
    )


def _reject(caller: str, callee: str, values: np.ndarray, settings: GraphConfig) -> str | None:
    if not caller or not callee:
        return "missing_label"
    if caller == callee:
        return "self_loop"
    finite = values[np.isfinite(values)]
    if finite.size == 0 or np.any(finite < 0):
        return "no_value"
    return None


def filtration_levels(graph: ServiceGraph, weight: str) -> np.ndarray:
    """[edges] when each edge enters the filtration: strong links first.

    strength: decades below the strongest edge, log10(max / w) (0 for the strongest; a link 100 times
    weaker enters at 2), so the scale does not depend on the query's units. distance: the value as it
    is (latency in seconds, an error ratio)."""
    if graph.weight.size == 0:
        return np.zeros(0)
    if weight == "distance":
        return graph.weight.copy()
    return np.log10(graph.weight.max() / graph.weight)
