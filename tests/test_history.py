"""Training history: fetched through prometheus-api-client from a REAL Prometheus, in chunks."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import wait_for

from aura_exporter.config import Analysis, Feature, PrometheusConfig
from aura_exporter.history import prometheus_history, replay_history
from aura_exporter.sources.replay import ReplayFleet

ANALYSIS = Analysis(name="a", entity_labels=("instance",), step=1.0, window=10.0, interval=2.0,
                    features=(Feature("cpu", 'test_cpu{job="target"}', "resources"),
                              Feature("mem", 'test_mem{job="target"}', "resources")))


@pytest.mark.prometheus
def test_history_from_real_prometheus_in_chunks(target, prometheus_servers):
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


def test_history_from_prometheus_that_is_down_is_a_query_error():
    from conftest import free_port

    from aura_exporter.sources.base import QueryError

    with pytest.raises(QueryError):
        prometheus_history(PrometheusConfig(url=f"http://127.0.0.1:{free_port()}", timeout=2), ANALYSIS, 0, 10)


def test_replay_history_matches_the_fleet():
    fleet = ReplayFleet(hosts=3, origin=0.0)
    analysis = Analysis(name="a", entity_labels=("instance",), step=15.0, window=150.0, interval=15.0,
                        features=(Feature("memory", "m", "resources"),))
    history = replay_history(fleet, analysis, 0.0, 300.0)
    np.testing.assert_array_equal(history.values[:, :, 0], fleet.values("memory", history.timestamps))
