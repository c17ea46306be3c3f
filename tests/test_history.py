"""Training history: fetched through prometheus-api-client from a REAL Prometheus, in chunks."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from conftest import wait_for

from aura_exporter.clock import WallClock
from aura_exporter.config import Analysis, Feature, PrometheusConfig
from aura_exporter.history import EntitySample, prometheus_history, replay_history
from aura_exporter.sources import history as sources_history
from aura_exporter.sources.base import QueryError, Series
from aura_exporter.sources.replay import ReplayFleet

ANALYSIS = Analysis(name="a", entity_labels=("instance",), step=1.0, window=10.0, interval=2.0,
                    features=(Feature("cpu", 'test_cpu{job="target"}', "resources"),
                              Feature("mem", 'test_mem{job="target"}', "resources")))


@pytest.mark.prometheus
def test_history_from_real_prometheus_in_chunks(target, prometheus_servers, monkeypatch):
    prometheus = prometheus_servers(scrape_targets={"target": f"127.0.0.1:{target.port}"})
    wait_for(lambda: min((len(s["values"]) for s in prometheus.query("test_cpu[30s]")), default=0) >= 12, 40,
             what="12 s of scraped data")
    progress = []
    end = float(int(time.time()))
    history = prometheus_history(PrometheusConfig(url=prometheus.url, max_points_per_query=5), ANALYSIS, end - 11, end,
                                 progress=lambda done, total: progress.append((done, total)))
    assert history.entities == tuple((f"host-{c}",) for c in "abcdef")
    assert history.values.shape == (6, 12, 2)
    assert np.isfinite(history.values[:, -8:]).all()  # the newest seconds are all there
    assert progress[-1][0] == progress[-1][1] == 6  # 3 chunks x 2 features, reported one by one
    sample = prometheus_history(PrometheusConfig(url=prometheus.url, max_points_per_query=5), ANALYSIS, end - 11, end,
                                most_entities=4)
    monkeypatch.setattr(sources_history, "MOST_SAMPLES_PER_PIECE", 12)  # 6 hosts: 2 points a piece
    progress.clear()
    small = prometheus_history(PrometheusConfig(url=prometheus.url, max_points_per_query=5), ANALYSIS, end - 11, end,
                               progress=lambda done, total: progress.append((done, total)))
    assert progress[-1] == (12, 12)  # 6 pieces x 2 features, each answer sizing the next
    np.testing.assert_array_equal(small.values, history.values)
    assert len(sample.entities) == 4 and set(sample.entities) < set(history.entities)
    for key, values in zip(sample.entities, sample.values, strict=True):  # every chunk of both features, same hosts
        np.testing.assert_array_equal(values, history.values[history.entities.index(key)])


def test_history_from_prometheus_that_is_down_is_a_query_error():
    from conftest import free_port

    with pytest.raises(QueryError):
        prometheus_history(PrometheusConfig(url=f"http://127.0.0.1:{free_port()}", timeout=2), ANALYSIS, 0, 10)


def test_replay_history_matches_the_fleet():
    fleet = ReplayFleet(hosts=3, origin=0.0)
    analysis = Analysis(name="a", entity_labels=("instance",), step=15.0, window=150.0, interval=15.0,
                        features=(Feature("memory", "m", "resources"),))
    history = replay_history(fleet, analysis, 0.0, 300.0)
    np.testing.assert_array_equal(history.values[:, :, 0], fleet.values("memory", history.timestamps))


def test_a_sample_of_entities_is_the_same_hosts_in_every_feature():
    fleet = ReplayFleet(hosts=12, origin=0.0)
    analysis = Analysis(name="a", entity_labels=("instance",), step=15.0, window=150.0, interval=15.0,
                        features=(Feature("memory", "m", "resources"), Feature("cpu", "c", "resources")))
    whole = replay_history(fleet, analysis, 0.0, 300.0)
    drawn = [replay_history(fleet, analysis, 0.0, 300.0, most_entities=5) for _ in range(4)]
    for sample in drawn:
        assert len(sample.entities) == 5
        for key, values in zip(sample.entities, sample.values, strict=True):
            np.testing.assert_array_equal(values, whole.values[whole.entities.index(key)])
    assert len({sample.entities for sample in drawn}) > 1  # a new draw each time: retrainings see other hosts
    assert replay_history(fleet, analysis, 0.0, 300.0, most_entities=12).entities == whole.entities


def test_an_entity_sample_keeps_the_first_draw_and_drops_later_newcomers():
    def series(*hosts: str) -> list[Series]:
        return [Series({"instance": h}, np.array([0.0]), np.array([1.0])) for h in hosts]

    sample = EntitySample(2, ("instance",), np.random.default_rng(0))
    assert [s.labels["instance"] for s in sample.keep(series("a", "b"))] == ["a", "b"]  # room for both: no draw
    first = {s.labels["instance"] for s in sample.keep(series("a", "b", "c", "d"))}
    assert len(first) == 2
    later = {s.labels["instance"] for s in sample.keep(series("a", "b", "c", "d", "e", "f"))}
    assert later == first


def test_the_forecaster_trains_on_a_sample_of_a_large_fleet():
    from aura_exporter.forecast.manager import MOST_TRAINING_ENTITIES, ModelManager
    from aura_exporter.forecast.stage import ForecastStage
    from aura_exporter.telemetry import SelfMetrics

    asked = []

    def loader(analysis, start, end, most_entities=None):
        asked.append(most_entities)
        raise QueryError("unreachable", "no history here")

    analysis = Analysis(name="node", entity_labels=("instance",), step=60.0, window=1800.0, interval=300.0,
                        features=(Feature("cpu", "cpu", "resources"),))
    manager = ModelManager(analysis, ForecastStage(analysis), None, loader, SelfMetrics(["node"]), WallClock())
    assert asyncio.run(manager.train(initial=None)) is None  # the failure is counted and retried later
    assert asked == [MOST_TRAINING_ENTITIES]
