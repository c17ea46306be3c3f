"""One analysis cycle: a failing forecast context costs the forecast, never the topology."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from aura_exporter.config import parse_config
from aura_exporter.cycle import AnalysisCycle
from aura_exporter.exposition.selfmetrics import SelfMetrics
from aura_exporter.forecast.manager import build_trained, model_shape
from aura_exporter.forecast.model import Forecaster
from aura_exporter.sources.base import QueryError
from aura_exporter.sources.replay import ReplayFleet, ReplaySource

ANALYSIS = parse_config(open("tests/fixtures/replay-forecast.yml").read()).analyses[0]


class ContextFails(ReplaySource):
    """Answers the window's queries; refuses the forecaster's sparse context queries."""

    async def query_range(self, analysis, feature, start, end, step=None):
        if step is not None:
            raise QueryError("server_error", "context refused")
        return await super().query_range(analysis, feature, start, end, step)


def run_cycle(source) -> tuple:
    metrics = SelfMetrics([ANALYSIS.name])
    cycle = AnalysisCycle(ANALYSIS, source, metrics, ThreadPoolExecutor(1))
    cycle.forecast.install(build_trained(ANALYSIS, Forecaster(model_shape(ANALYSIS)).state_dict(), {}))
    result = asyncio.run(cycle.run(1_764_000_000.0))
    return result, metrics


def test_forecast_needs_its_context_but_topology_does_not():
    result, metrics = run_cycle(ContextFails(ReplayFleet(hosts=6)))
    assert len(result.windows.entities) == 6 and result.topology.betti.shape == (6, 2)
    assert result.forecast is None and not result.model_ready
    errors = metrics.registry.get_sample_value("aura_query_errors_total",
                                               {"analysis": "node", "reason": "server_error"})
    assert errors == len(ANALYSIS.features)


def test_with_its_context_the_forecast_covers_every_entity():
    result, _ = run_cycle(ReplaySource(ReplayFleet(hosts=6)))
    assert result.forecast is not None and result.forecast.quantiles.shape == (6, 5, 4, 3)


def test_a_cardinality_cap_keeps_the_cycle_going_and_is_counted():
    import dataclasses

    capped = dataclasses.replace(ANALYSIS, max_entities=4)
    metrics = SelfMetrics([capped.name])
    cycle = AnalysisCycle(capped, ReplaySource(ReplayFleet(hosts=10)), metrics, ThreadPoolExecutor(1))
    result = asyncio.run(cycle.run(1_764_000_000.0))
    assert len(result.windows.entities) == 4 and result.windows.skipped["over_max_entities"] == 6
    assert metrics.limit_hits.labels(capped.name, "entities")._value.get() == 1
    assert metrics.limit_hits.labels(capped.name, "series")._value.get() == 0
