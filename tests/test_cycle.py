"""One analysis cycle: a failing forecast context costs the forecast, never the topology."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from aura_exporter.config import parse_config
from aura_exporter.cycle import AnalysisCycle
from aura_exporter.forecast.manager import build_trained, model_shape
from aura_exporter.forecast.model import Forecaster
from aura_exporter.sources.base import QueryError
from aura_exporter.sources.replay import ReplayFleet, ReplaySource
from aura_exporter.telemetry import SelfMetrics
from aura_exporter.windows import context_grid

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


class RefusesTheDayBefore(ReplaySource):
    """Answers everything but queries that end more than a day before `now` (the seasonal lag's)."""

    def __init__(self, fleet: ReplayFleet, now: float):
        super().__init__(fleet)
        self.now = now
        self.asked: list[tuple[float, float, float | None]] = []

    async def query_range(self, analysis, feature, start, end, step=None):
        self.asked.append((start, end, step))
        if end < self.now - 86400 + 6 * 3600:
            raise QueryError("server_error", "lag refused")
        return await super().query_range(analysis, feature, start, end, step)


def test_a_learned_season_is_fetched_a_season_back_and_losing_it_costs_no_forecast():
    import dataclasses

    now = 1_764_000_000.0
    seasonal = dataclasses.replace(ANALYSIS, forecast=dataclasses.replace(ANALYSIS.forecast, seasons=(86400.0,)))
    model = Forecaster(model_shape(seasonal))
    model.seasons_learned.fill_(1.0)  # as if its history had held a day
    quantiles = []
    for source in (ReplaySource(ReplayFleet(hosts=6)), RefusesTheDayBefore(ReplayFleet(hosts=6), now)):
        cycle = AnalysisCycle(seasonal, source, SelfMetrics([seasonal.name]), ThreadPoolExecutor(1))
        cycle.forecast.install(build_trained(seasonal, model.state_dict(), {}))
        result = asyncio.run(cycle.run(now))
        assert result.forecast is not None
        quantiles.append(result.forecast.quantiles)
    lag_queries = [(start, end) for start, end, _ in source.asked if end < now - 86400 + 6 * 3600]
    assert len(lag_queries) == len(seasonal.features)  # one sparse query per feature, a day back
    start, end = lag_queries[0]
    assert start == context_grid(seasonal, now)[0] - 86400 and end >= now - 86400 + max(seasonal.forecast.horizons)
    assert not np.allclose(quantiles[0], quantiles[1])  # yesterday reached the model; without it, it still forecasts
