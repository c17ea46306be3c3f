"""The replay fleet: deterministic, and its scripted failures are where the scenario says."""

from __future__ import annotations

import asyncio

import numpy as np

from aura_exporter.config import GraphAnalysis, parse_config
from aura_exporter.sources.replay import FEATURES, HEALTHY, SCENARIO, ReplayFleet, ReplaySource

ORIGIN = 1_700_000_000.0


def test_values_are_a_pure_function_of_time():
    fleet = ReplayFleet(hosts=5, origin=ORIGIN)
    t = ORIGIN + np.arange(0, 3600, 15.0)
    for feature in FEATURES:
        whole = fleet.values(feature, t)
        halves = np.concatenate([fleet.values(feature, t[:100]), fleet.values(feature, t[100:])], axis=1)
        np.testing.assert_array_equal(whole, halves)
        np.testing.assert_array_equal(whole, ReplayFleet(hosts=5, origin=ORIGIN).values(feature, t))
        assert np.all(np.isfinite(whole))


def test_the_leak_saturates_memory_on_schedule():
    fleet = ReplayFleet(hosts=50, origin=ORIGIN)
    at = lambda seconds: fleet.values("memory", np.array([ORIGIN + seconds]))[:, 0]  # noqa: E731
    before, late, saturated = at(SCENARIO.leak_start - 60), at(SCENARIO.saturation - 1800), at(SCENARIO.saturation + 60)
    leak = SCENARIO.leak_host
    assert before[leak] < 0.7 and late[leak] > 0.85 and saturated[leak] > 0.99
    others = np.delete(saturated, leak)
    assert others.max() < 0.75


def test_the_partition_cuts_traffic_of_its_hosts_only():
    fleet = ReplayFleet(hosts=50, origin=ORIGIN)
    during = fleet.values("net_rx", np.array([ORIGIN + SCENARIO.partition_start + 60]))[:, 0]
    before = fleet.values("net_rx", np.array([ORIGIN + SCENARIO.partition_start - 60]))[:, 0]
    cut = list(SCENARIO.partition_hosts)
    assert np.all(during[cut] < 0.05 * before[cut])
    healthy = np.setdiff1d(np.arange(50), cut)
    assert np.all(during[healthy] > 0.5 * before[healthy])


def test_source_answers_the_demo_config_on_its_grid():
    analysis = parse_config(open("aura_exporter/examples/demo.yml").read()).analyses[0]
    source = ReplaySource(ReplayFleet(hosts=3, origin=ORIGIN))
    result = asyncio.run(source.query_range(analysis, analysis.features[0], ORIGIN, ORIGIN + 150))
    assert [s.labels["instance"] for s in result.series] == ["host-00", "host-01", "host-02"]
    assert result.series[0].timestamps.tolist() == [ORIGIN + 15 * k for k in range(11)]


def replay_graph_findings(scenario) -> dict[float, tuple]:
    """What the demo's graph analysis finds at scenario minutes, cycle after cycle from the origin."""
    from aura_exporter.graph import GraphStage

    mesh = next(a for a in parse_config(open("aura_exporter/examples/demo.yml").read()).analyses if isinstance(a, GraphAnalysis))
    source = ReplaySource(ReplayFleet(hosts=1, origin=ORIGIN, scenario=scenario))
    stage = GraphStage(mesh)
    found = {}
    for minute in range(0, 360, 5):
        now = ORIGIN + minute * 60.0
        grid = np.arange(now - mesh.window + mesh.step, now + 1, mesh.step)
        findings = stage.run([source.range_now(mesh, mesh.features[0], grid)], now).findings
        found[minute] = (tuple(loop.services for loop in findings.loops if loop.new),
                         tuple(cut.services for cut in findings.cuts))
    return found


def test_the_service_graph_loops_and_splits_on_schedule():
    found = replay_graph_findings(SCENARIO)
    loop, cut = ("checkout", "ledger", "payments"), ("inventory", "postgres-inventory")
    window = np.arange(-270.0, 1, 30.0)  # the demo graph's window: 5m of 30s steps
    for minute, (loops, cuts) in found.items():
        seconds = minute * 60 + window
        # a loop shows as soon as one sample of the window has its edge; a cut once none has the lost edges
        in_loop = np.any((seconds >= SCENARIO.loop_start) & (seconds < SCENARIO.loop_end))
        in_cut = np.all((seconds >= SCENARIO.cut_start) & (seconds < SCENARIO.cut_end))
        assert loops == ((loop,) if in_loop else ()), minute
        assert cuts == ((cut,) if in_cut else ()), minute
    assert not any(loops or cuts for loops, cuts in replay_graph_findings(HEALTHY).values())
