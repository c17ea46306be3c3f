"""Learning from history at start-up: an analysis with nothing saved replays its last day of history through
its own stages before its first live cycle, so its page budget, usual states and baselines are learned
at once; it never reads past now, and history that cannot be read leaves learning to the live cycles."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from aura_exporter.catch_up import catch_up
from aura_exporter.clock import WallClock
from aura_exporter.config import Config, PrometheusConfig, parse_config
from aura_exporter.config.model import ConfigError
from aura_exporter.cycle import AnalysisCycle
from aura_exporter.exporter import Exporter
from aura_exporter.history import replay_history
from aura_exporter.sources.base import QueryError
from aura_exporter.sources.replay import HEALTHY, ReplayFleet, ReplaySource
from aura_exporter.telemetry import SelfMetrics

CONFIG = """
prometheus: {url: 'http://replay.invalid:9090'}
analyses:
  - name: node
    entity_labels: [instance]
    step: 1m
    window: 30m
    interval: 5m
    forecast: {enabled: false}
    council: {peers: false}
    baseline: %s
    features:
      cpu:    {query: cpu, role: resources, limit: 0.95}
      memory: {query: memory, role: resources, limit: 0.95}
      net_rx: {query: net_rx, role: network}
      p99:    {query: p99, role: performance}
"""
ANALYSIS = parse_config(CONFIG % "{}").analyses[0]
NOW = 1_800_000_000.0  # on the 5-minute grid
FLEET = ReplayFleet(hosts=6, origin=NOW - 4 * 86400, scenario=HEALTHY)


class Loader:
    """The replay fleet's history, remembering what it was asked for."""

    def __init__(self, fail: bool = False, since: float | None = None, fail_after: int | None = None):
        self.asked: list[tuple[float, float]] = []
        self.fail, self.since, self.fail_after = fail, since, fail_after

    def __call__(self, analysis, start, end, most_entities=None):
        self.asked.append((start, end))
        if self.fail or (self.fail_after is not None and len(self.asked) > self.fail_after):
            raise QueryError("unreachable", "history query failed: connection refused")
        history = replay_history(FLEET, analysis, start, end, most_entities)
        if self.since is not None:  # a Prometheus that began scraping at `since`
            history.values[:, history.timestamps < self.since] = np.nan
        return history


class FixedClock:
    def __init__(self, now: float):
        self.time = now

    def now(self) -> float:
        return self.time


def new_cycle(analysis=ANALYSIS) -> tuple[AnalysisCycle, SelfMetrics]:
    metrics = SelfMetrics([analysis.name])
    return AnalysisCycle(analysis, ReplaySource(FLEET), metrics, ThreadPoolExecutor(1)), metrics


def test_an_analysis_learns_its_first_day_from_history_then_adopts_it():
    cycle, metrics = new_cycle()
    loader = Loader()
    learner = asyncio.run(catch_up(cycle, loader, FixedClock(NOW)))
    assert loader.asked[0][0] == NOW - 2 * 86400 - 1800  # from a window before the two days...
    assert loader.asked[-1][1] == NOW - 300  # ...to the cycle before now, nothing after it
    assert len(loader.asked) == 8  # six hours at a time
    assert all(later[0] == earlier[1] + 300 - 1800 for earlier, later in zip(loader.asked, loader.asked[1:],
                                                                           strict=False))
    assert learner is not None and learner.first_success == NOW - 2 * 86400
    assert metrics.cycles.labels("node", "success")._value.get() == 0  # the live cycle's count is its own
    assert not cycle.learned
    cycle.adopt(learner)
    assert cycle.learned and cycle.first_success == NOW - 2 * 86400
    verdict = asyncio.run(cycle.run(NOW)).verdict
    assert np.isfinite(verdict.usual_per_week).all()  # the budget has learned every host: no fixed thresholds
    assert (verdict.risk < 0.4).all()  # and a healthy fleet is quiet
    assert all((usual.cycles >= 200).all() for usual in cycle.topology.state.entities.values())  # usual states: warm


class LateClock(FixedClock):
    """Time that moves on by `step` each time it is read: the learner must catch up with it."""

    def __init__(self, now: float, step: float):
        super().__init__(now)
        self.step = step

    def now(self) -> float:
        self.time += self.step
        return self.time


def test_it_learns_what_came_while_it_learned_and_stops_if_it_cannot_catch_up():
    cycle, _ = new_cycle()
    loader = Loader()
    clock = LateClock(NOW, 1200.0)
    learner = asyncio.run(catch_up(cycle, loader, clock))
    assert loader.asked[-1][1] > NOW  # it went on with what came while it learned
    assert learner is not None and learner.topology.baselines.entities
    assert len(loader.asked) <= 72  # time outran it (20 minutes a read): it stopped after OVERRUN × 2 days of cycles


def test_it_starts_where_the_history_starts():
    cycle, _ = new_cycle()
    loader = Loader(since=NOW - 3600)
    learner = asyncio.run(catch_up(cycle, loader, FixedClock(NOW)))
    assert learner is not None and learner.first_success == NOW - 1800  # after the first full window of data


def test_history_that_cannot_be_read_leaves_learning_to_the_live_cycles():
    cycle, _ = new_cycle()
    assert asyncio.run(catch_up(cycle, Loader(fail=True), FixedClock(NOW))) is None
    assert asyncio.run(catch_up(cycle, Loader(since=NOW), FixedClock(NOW))) is None  # none there yet
    learner = asyncio.run(catch_up(cycle, Loader(fail_after=1), FixedClock(NOW)))
    assert learner is not None and learner.first_success == NOW - 2 * 86400  # the first six hours stand


def test_learn_from_history_is_a_duration_and_0s_turns_it_off():
    assert ANALYSIS.baseline.learn_from_history == 2 * 86400
    assert parse_config(CONFIG % "{learn_from_history: 0s}").analyses[0].baseline.learn_from_history == 0
    try:
        parse_config(CONFIG % "{learn_from_history: -1h}")
    except ConfigError as err:
        assert "learn_from_history" in str(err)
    else:
        raise AssertionError("a negative duration was accepted")


def test_the_exporter_learns_from_history_once_then_from_its_saved_state(tmp_path):
    config = Config(PrometheusConfig(url="http://replay.invalid:9090"), (ANALYSIS,))
    loader = Loader()

    def counted(exporter: Exporter) -> int:
        """How many cycles of host-00 the page budget holds (what it learns its usual rate from). Not the
        exported rate: whether a healthy host's two days rise past its usual level often enough to count a
        rate depends on the replay's phase, so on the wall clock."""
        cycle = exporter.runs["node"].cycle
        assert isinstance(cycle, AnalysisCycle) and cycle.council.budget is not None
        entity = cycle.council.budget.entities.get(("host-00",))
        return 0 if entity is None else entity.count

    async def serve(until) -> tuple[int, int]:
        """The host's count at the first cycle served, and once `until(exporter)`."""
        exporter = Exporter(config, ReplaySource(FLEET), WallClock(), "127.0.0.1:0", workers=1, history=loader,
                            storage=tmp_path)
        stop = asyncio.Event()
        running = asyncio.create_task(exporter.run(stop))
        try:
            while "node" not in exporter.state.status.succeeded:
                await asyncio.sleep(0.01)
            first = counted(exporter)
            while not until(exporter):
                await asyncio.sleep(0.05)
            return first, counted(exporter)
        finally:
            stop.set()
            await asyncio.wait_for(running, 60)

    def learned(exporter: Exporter) -> bool:
        return counted(exporter) >= 288

    first, _ = asyncio.run(asyncio.wait_for(serve(learned), 120))
    reads = len(loader.asked)
    assert reads == 8  # two days, six hours at a time
    assert first <= 1  # the live cycles started at once, on the fixed thresholds while it learned
    first, _ = asyncio.run(asyncio.wait_for(serve(lambda exporter: True), 120))
    assert len(loader.asked) == reads  # restarted with its state saved: nothing to learn again
    assert first >= 288  # and the budget learned from history was saved with it
