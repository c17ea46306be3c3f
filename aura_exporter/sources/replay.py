"""The embedded replay fleet: a deterministic generated fleet with a scripted failure scenario.

Every value is a pure function of (host, feature, time): any range can be asked for, in any order,
by `demo`, by tests and (later) by training and backtests, and always gives the same numbers.

The scenario repeats every `SCENARIO.period` seconds from the source's origin:
  - a memory leak on `SCENARIO.leak_host` from `leak_start` that saturates memory at `saturation`,
    then swaps (CPU and latency up) until a restart at `leak_end`;
  - a network partition of `SCENARIO.partition_hosts` between `partition_start` and `partition_end`:
    received traffic and connections collapse, latency climbs;
  - in the service graph (replay_graph.py), a retry loop between `loop_start` and `loop_end` and a
    partition of the inventory services between `cut_start` and `cut_end`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from aura_exporter.config import AnyAnalysis, Feature, GraphAnalysis
from aura_exporter.sources.base import QueryError, RangeResult, Series
from aura_exporter.sources.noise import gaussian, uniform
from aura_exporter.sources.replay_graph import ReplayServiceGraph

FEATURES = ("cpu", "memory", "net_rx", "conns", "p99")
DAY = 86400.0


@dataclass(frozen=True)
class Scenario:
    period: float = 6 * 3600.0
    leak_host: int = 7
    leak_start: float = 20 * 60.0
    saturation: float = 3 * 3600.0 + 20 * 60.0
    leak_end: float = 3 * 3600.0 + 50 * 60.0
    partition_hosts: tuple[int, ...] = (40, 41, 42)
    partition_start: float = 90 * 60.0
    partition_end: float = 120 * 60.0
    loop_start: float = 150 * 60.0
    loop_end: float = 180 * 60.0
    cut_start: float = 240 * 60.0
    cut_end: float = 270 * 60.0


SCENARIO = Scenario()
HEALTHY = Scenario(leak_host=-1, partition_hosts=(), loop_start=-1.0, loop_end=-1.0,
                   cut_start=-1.0, cut_end=-1.0)  # the control: the same fleet, nothing fails


HOSTS_AT_ONCE = 256  # hosts generated together (ReplayFleet.values)


def host_name(index: int) -> str:
    return f"host-{index:02d}"


def _host_constant(host: np.ndarray, stream: int) -> np.ndarray:
    return uniform(host, 1000 + stream, np.zeros_like(host, dtype=np.float64))


def _wander(host: np.ndarray, stream: int, t: np.ndarray) -> np.ndarray:
    """Slow, smooth per-host variation: a few sines with host-specific periods and phases."""
    total = np.zeros(np.broadcast_shapes(host.shape, t.shape))
    for k in range(3):
        period = 600.0 + 3000.0 * _host_constant(host, stream * 10 + k)
        phase = 2 * np.pi * _host_constant(host, stream * 10 + k + 5)
        total += np.sin(2 * np.pi * t / period + phase) / 3
    return total


class ReplayFleet:
    """Values of the generated fleet: `values(feature, t)` is an [hosts, len(t)] array."""

    def __init__(self, hosts: int = 50, origin: float = 0.0, scenario: Scenario = SCENARIO):
        self.hosts = hosts
        self.origin = origin
        self.scenario = scenario

    def values(self, feature: str, t: np.ndarray) -> np.ndarray:
        """A few hosts at a time: a generator makes several [hosts, times] arrays on the way (days of 5,000
        hosts' history took 5 GB at once), and each host's values depend on that host alone."""
        if feature not in FEATURES:
            raise KeyError(feature)
        t = np.asarray(t, dtype=np.float64)
        return np.concatenate([self._values(feature, np.arange(first, min(first + HOSTS_AT_ONCE, self.hosts)), t)
                               for first in range(0, self.hosts, HOSTS_AT_ONCE)] or [np.zeros((0, len(t)))])

    def _values(self, feature: str, hosts: np.ndarray, t: np.ndarray) -> np.ndarray:
        host = hosts[:, None]
        t = t[None, :]
        s = (t - self.origin) % self.scenario.period
        moment = _Moment(
            host=host, t=t,
            daily=np.sin(2 * np.pi * (t % DAY) / DAY - np.pi / 2),  # low at midnight UTC, high at noon
            leak=self._leak_progress(host, s), swapping=self._swapping(host, s),
            partitioned=self._partitioned(host, s),
        )
        return _GENERATORS[feature](moment)

    def _leak_progress(self, host: np.ndarray, s: np.ndarray) -> np.ndarray:
        sc = self.scenario
        frac = np.clip((s - sc.leak_start) / (sc.saturation - sc.leak_start), 0.0, 1.0)
        active = (host == sc.leak_host) & (s >= sc.leak_start) & (s < sc.leak_end)
        return np.where(active, frac**1.5, 0.0)

    def _swapping(self, host: np.ndarray, s: np.ndarray) -> np.ndarray:
        sc = self.scenario
        return (host == sc.leak_host) & (s >= sc.saturation) & (s < sc.leak_end)

    def _partitioned(self, host: np.ndarray, s: np.ndarray) -> np.ndarray:
        sc = self.scenario
        return np.isin(host, sc.partition_hosts) & (s >= sc.partition_start) & (s < sc.partition_end)


@dataclass(frozen=True)
class _Moment:
    """Everything a feature's generator needs at the requested times, as [hosts, times] arrays."""

    host: np.ndarray
    t: np.ndarray
    daily: np.ndarray
    leak: np.ndarray
    swapping: np.ndarray
    partitioned: np.ndarray


def _cpu(m: _Moment) -> np.ndarray:
    base = 0.2 + 0.3 * _host_constant(m.host, 1)
    cpu = base + 0.12 * m.daily + 0.05 * _wander(m.host, 1, m.t) + 0.02 * gaussian(m.host, 1, m.t)
    return np.clip(np.where(m.swapping, 0.93 + 0.02 * gaussian(m.host, 6, m.t), cpu), 0.0, 1.0)


def _memory(m: _Moment) -> np.ndarray:
    base = 0.45 + 0.2 * _host_constant(m.host, 2)
    memory = base + 0.02 * _wander(m.host, 2, m.t) + 0.004 * gaussian(m.host, 2, m.t)
    return np.clip(memory + (1.0 - memory) * m.leak, 0.0, 0.999)


def _net_rx(m: _Moment) -> np.ndarray:
    base = 1e6 + 4e6 * _host_constant(m.host, 3)
    rx = base * (1 + 0.35 * m.daily + 0.1 * _wander(m.host, 3, m.t)) * (1 + 0.05 * gaussian(m.host, 3, m.t))
    return np.where(m.partitioned, base * 0.01 * (1 + 0.3 * uniform(m.host, 7, m.t)), rx)


def _conns(m: _Moment) -> np.ndarray:
    base = 100 + 300 * _host_constant(m.host, 4)
    conns = np.round(base * (1 + 0.25 * m.daily + 0.1 * _wander(m.host, 4, m.t)) + 6 * gaussian(m.host, 4, m.t))
    return np.where(m.partitioned, np.round(3 + 3 * uniform(m.host, 8, m.t)), np.maximum(conns, 0.0))


def _p99(m: _Moment) -> np.ndarray:
    base = 0.05 + 0.1 * _host_constant(m.host, 5)
    load = np.clip(0.2 + 0.3 * _host_constant(m.host, 1) + 0.12 * m.daily, 0, 1)
    p99 = base * (1 + 0.8 * load**3) * np.exp(0.05 * gaussian(m.host, 5, m.t))
    return p99 * np.where(m.swapping, 12.0, 1.0) * np.where(m.partitioned, 6.0, 1.0)


_GENERATORS = {"cpu": _cpu, "memory": _memory, "net_rx": _net_rx, "conns": _conns, "p99": _p99}


class ReplaySource:
    """The Source of the replay fleet; a feature is found by its name in the config."""

    def __init__(self, fleet: ReplayFleet):
        self.fleet = fleet

    async def query_range(self, analysis: AnyAnalysis, feature: Feature, start: float, end: float,
                          step: float | None = None) -> RangeResult:
        step = step or analysis.step
        # Off the event loop: 10,000 hosts' series take a tenth of a second to build; scrapes would wait.
        return await asyncio.get_running_loop().run_in_executor(None, self.range_now, analysis, feature,
                                                                np.arange(start, end + step / 2, step))

    def range_now(self, analysis: AnyAnalysis, feature: Feature, timestamps: np.ndarray) -> RangeResult:
        """The answer for explicit timestamps, synchronously (for history and tests)."""
        if isinstance(analysis, GraphAnalysis):
            scenario = self.fleet.scenario
            graph = ReplayServiceGraph(self.fleet.origin, scenario.period, (scenario.loop_start, scenario.loop_end),
                                       (scenario.cut_start, scenario.cut_end))
            return graph.answer(analysis.graph, timestamps)
        if feature.name not in FEATURES:
            raise QueryError("bad_request", f"the replay fleet has no feature {feature.name!r} "
                                            f"(it has {', '.join(FEATURES)})")
        values = self.fleet.values(feature.name, timestamps)
        series = tuple(
            Series(labels={"instance": host_name(h), "job": "node"}, timestamps=timestamps, values=values[h])
            for h in range(self.fleet.hosts)
        )
        return RangeResult(feature=feature.name, series=series)

    async def close(self) -> None:
        return None
