"""The service graph: its homology on known graphs, its findings against the baseline, bad edge series,
and what the council, the exposition and the UI make of it. End to end: test_graph_end_to_end.py."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from types import MappingProxyType

import numpy as np
import pytest
from conftest import REPO
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from aura_exporter.config import ConfigError, GraphAnalysis, parse_config
from aura_exporter.council import CouncilStage
from aura_exporter.council.explanation import explain
from aura_exporter.exposition.collector import SnapshotCollector, text_exposition
from aura_exporter.exposition.ui import graph_page
from aura_exporter.exposition.views import graph_detail
from aura_exporter.graph import GraphStage
from aura_exporter.graph.edges import GraphTooLarge, ServiceGraph, build_graph, filtration_levels
from aura_exporter.graph.homology import betti, bottleneck_paths, cyclic_levels, persistence
from aura_exporter.snapshot import GraphResult, Snapshot
from aura_exporter.sources.base import RangeResult, Series
from aura_exporter.topology import TopologyStage
from aura_exporter.windows import build_windows, step_grid

CONFIG = """
prometheus: {url: "http://prometheus:9090"}
analyses:
  - name: mesh
    kind: graph
    step: 30s
    window: 2m
    interval: 1m
    graph:
      query: 'sum by (source_workload, destination_workload) (rate(istio_requests_total[5m]))'
      caller: source_workload
      callee: destination_workload
      %s
    baseline: {refresh_interval: 1h}
  - name: services
    entity_labels: [service]
    step: 30s
    window: 8m
    interval: 1m
    features:
      rps: {query: 'sum by (service) (rate(requests_total[1m]))', role: performance}
    council: {graph: {analysis: mesh, label: service}}
    forecast: {enabled: false}
"""


def config(extra: str = ""):
    return parse_config(CONFIG % extra)


def mesh(extra: str = ""):
    return config(extra).analyses[0]


def answer(edges, analysis=None, samples: int = 4) -> list[RangeResult]:
    """One query_range answer with a series per (caller, callee, value or [values]) edge."""
    settings = (analysis or mesh()).graph
    series = []
    for caller, callee, value in edges:
        labels = {k: v for k, v in ((settings.caller, caller), (settings.callee, callee)) if v is not None}
        values = np.asarray(value if isinstance(value, list) else [value] * samples, dtype=float)
        series.append(Series(labels, np.arange(values.size, dtype=float) * 30, values))
    return [RangeResult("edges", tuple(series))]


def graph_of(edges, extra: str = "") -> ServiceGraph:
    analysis = mesh(extra)
    return build_graph(analysis, answer(edges, analysis))


def homology(edges, weight: str = "strength"):
    graph = graph_of(edges, f"weight: {weight}")
    levels = filtration_levels(graph, weight)
    cyclic = cyclic_levels(graph, levels, bottleneck_paths(len(graph.services), graph.caller, graph.callee, levels))
    diagrams = persistence(graph, levels, cyclic)
    return betti(diagrams, len(graph.services), 0.0), diagrams


TRIANGLE = [("a", "b", 10.0), ("b", "c", 10.0), ("c", "a", 10.0)]


# --- homology of known graphs ------------------------------------------------------------------------


def test_a_directed_triangle_is_one_loop_in_one_part():
    numbers, diagrams = homology(TRIANGLE)
    assert numbers.tolist() == [1, 1]
    assert diagrams.h1.tolist() == [[0.0, math.inf]]


def test_dropping_one_edge_breaks_the_loop():
    numbers, diagrams = homology(TRIANGLE[:2])
    assert numbers.tolist() == [1, 0] and diagrams.h1.size == 0


def test_two_disconnected_groups_are_two_parts():
    numbers, diagrams = homology([*TRIANGLE, ("x", "y", 5.0), ("y", "z", 5.0)])
    assert numbers.tolist() == [2, 1]
    assert np.isinf(diagrams.h0[:, 1]).sum() == 1  # reduced H0: one part more than infinite bars


def test_a_mutual_call_is_a_loop():
    assert homology([("a", "b", 1.0), ("b", "a", 1.0)])[0].tolist() == [1, 1]


def test_diamonds_and_common_callers_are_no_loops():
    diamond = [("web", "cart", 5.0), ("web", "search", 5.0), ("cart", "db", 5.0), ("search", "db", 5.0)]
    assert homology(diamond)[0].tolist() == [1, 0]  # an undirected cycle, no request loop
    transitive = [("a", "b", 1.0), ("b", "c", 1.0), ("a", "c", 1.0)]
    assert homology(transitive)[0].tolist() == [1, 0]
    # a gateway calling every service of a loop would fill it in the flag complex of the whole graph
    cone = [*TRIANGLE, ("gw", "a", 1.0), ("gw", "b", 1.0), ("gw", "c", 1.0)]
    assert homology(cone)[0].tolist() == [1, 1]


def test_weights_move_births_and_deaths():
    # strength: a loop is born when its weakest edge enters, log10(strongest / weakest) decades down
    weak_return = [("a", "b", 100.0), ("b", "c", 100.0), ("c", "a", 1.0)]
    assert homology(weak_return)[1].h1.tolist() == [[2.0, math.inf]]
    # a part joined by a weak bridge dies (merges) when the bridge enters
    bridged = [("a", "b", 100.0), ("x", "y", 100.0), ("b", "x", 0.1)]
    numbers, diagrams = homology(bridged)
    assert numbers.tolist() == [1, 0] and 3.0 in diagrams.h0[:, 1].round(9).tolist()
    # distance (latency): the value itself is the level, the slowest edge closes the loop
    slow = [("a", "b", 0.2), ("b", "c", 0.1), ("c", "a", 1.5)]
    assert homology(slow, "distance")[1].h1.tolist() == [[1.5, math.inf]]


def test_a_loop_closed_through_a_later_path_enters_when_the_path_does():
    # c → a closes the loop only through the weak c → d → a path: every loop edge enters at its level
    graph = graph_of([("a", "b", 100.0), ("b", "c", 100.0), ("c", "d", 1.0), ("d", "a", 100.0)])
    levels = filtration_levels(graph, "strength")
    cyclic = cyclic_levels(graph, levels, bottleneck_paths(4, graph.caller, graph.callee, levels))
    assert cyclic.tolist() == [2.0, 2.0, 2.0, 2.0]


# --- edge series as they come ---------------------------------------------------------------------


def test_odd_edge_series_are_left_out_and_counted():
    graph = graph_of([
        ("a", "b", 3.0),
        ("a", "a", 5.0),  # self-loop
        ("a", None, 1.0), ("", "b", 1.0),  # missing labels
        ("b", "c", [math.nan, 2.0, math.inf, 4.0]),  # some non-finite samples: the mean of the others
        ("c", "d", [math.nan] * 4),  # no value at all
        ("d", "e", -1.0),  # a negative rate is no rate
        ("e", "f", 0.0),  # traffic that stopped is no edge
    ])
    assert graph.edges == [("a", "b"), ("b", "c")]
    assert graph.weight.tolist() == [3.0, 3.0]
    assert graph.skipped == {"missing_label": 2, "self_loop": 1, "no_value": 2, "weak": 1}


def test_series_of_one_edge_combine_strengths_add_distances_keep_the_worst():
    edges = [("a", "b", 1.0), ("a", "b", 2.0)]
    assert graph_of(edges).weight.tolist() == [3.0]
    assert graph_of(edges, "weight: distance").weight.tolist() == [2.0]


def test_min_weight_drops_weak_edges():
    assert graph_of([("a", "b", 0.05), ("b", "c", 1.0)], "min_weight: 0.1").edges == [("b", "c")]


def test_a_graph_above_the_size_cap_is_refused_not_truncated():
    edges = [(f"s{i}", f"s{i + 1}", 1.0) for i in range(5)]
    with pytest.raises(GraphTooLarge, match="6 services, more than graph.max_services \\(5\\)"):
        graph_of(edges, "max_services: 5")


def test_an_empty_answer_is_an_empty_graph():
    numbers, diagrams = homology([])
    assert numbers.tolist() == [0, 0] and diagrams.h0.size == 0


# --- findings against the baseline ----------------------------------------------------------------

SHOP = [("web", "cart", 50.0), ("cart", "db", 80.0), ("web", "pay", 10.0), ("pay", "ledger", 10.0),
        ("ledger", "ledger-db", 30.0), ("web", "stock", 20.0), ("stock", "stock-db", 40.0)]


def run(stage: GraphStage, edges, now: float):
    return stage.run(answer(edges, stage.analysis), now)


def test_findings_name_the_new_loop_the_cut_off_part_and_the_changed_edges():
    stage = GraphStage(mesh())
    first = run(stage, SHOP, 0.0)
    assert not first.ready and first.findings.loops == () and first.findings.cuts == ()
    looping = [*SHOP, ("ledger", "pay", 2.0)]  # a retry path back
    second = run(stage, looping, 60.0)
    assert second.ready
    assert [(loop.services, loop.new, loop.weakest_link) for loop in second.findings.loops] == [
        (("ledger", "pay"), True, 2.0)]
    assert [(c.caller, c.callee, c.appeared) for c in second.findings.changes] == [("ledger", "pay", True)]
    cut = [e for e in SHOP if e[0] != "web" or e[1] != "stock"]  # stock and its db talk only to each other
    third = run(stage, cut, 120.0)
    assert [(c.services, c.vanished) for c in third.findings.cuts] == [(("stock", "stock-db"), False)]
    assert [(c.caller, c.callee, c.appeared) for c in third.findings.changes] == [("web", "stock", False)]
    assert third.betti.tolist() == [2, 0] and third.drift[0] > 0
    gone = [e for e in SHOP if "stock" not in e[0] and "stock" not in e[1]]  # no calls at all
    fourth = run(stage, gone, 180.0)
    assert [(c.services, c.vanished) for c in fourth.findings.cuts] == [(("stock",), True), (("stock-db",), True)]


def test_a_known_loop_is_no_news():
    stage = GraphStage(mesh())
    with_loop = [*SHOP, ("ledger", "pay", 2.0)]
    run(stage, with_loop, 0.0)
    assert [loop.new for loop in run(stage, with_loop, 60.0).findings.loops] == [False]


def test_the_baseline_waits_while_something_is_unusual_then_learns_the_new_norm():
    stage = GraphStage(mesh())  # refresh_interval: 1h
    run(stage, SHOP, 0.0)
    calm = [*SHOP, ("web", "ads", 5.0)]  # a new edge alone is no reason to wait
    run(stage, calm, 3600.0)
    assert ("web", "ads") in stage.baseline.weights
    looping = [*calm, ("ledger", "pay", 2.0)]
    for now in (7200.0, 9000.0, 10700.0):  # the loop is news for a whole refresh_interval...
        assert run(stage, looping, now).findings.loops[0].new
    assert run(stage, looping, 10800.0).findings.loops[0].new  # ...compared with the old baseline one last time
    assert not run(stage, looping, 10860.0).findings.loops[0].new  # then it is the norm


# --- the council, the exposition, the API and the UI -----------------------------------------------


def services_windows(analysis, names, now):
    grid = step_grid(analysis, now)
    series = tuple(Series({"service": name}, grid, 10 + np.sin(grid / 300 + i)) for i, name in enumerate(names))
    return build_windows(analysis, [RangeResult("rps", series)], grid)


def test_the_council_weighs_the_linked_graphs_findings():
    cfg = config()
    graph_analysis, services = cfg.analyses
    stage = GraphStage(graph_analysis)
    run(stage, SHOP, 0.0)
    cut = [e for e in SHOP if e[:2] != ("web", "stock")]
    outcome = run(stage, [*cut, ("ledger", "pay", 2.0), ("web", "ledger", 1.0)], 60.0)
    windows = services_windows(services, ["web", "pay", "ledger", "stock", "cart"], 3600.0)
    names = [key[0] for key in windows.entities]
    topology = TopologyStage(services).run(windows, 3600.0)
    council = CouncilStage(services)
    verdict = council.run(windows, topology, None, 3600.0, outcome)
    score = {agent: dict(zip(names, verdict.scores[:, a], strict=True)) for a, agent in enumerate(verdict.agents)}
    assert score["network"]["pay"] == pytest.approx(0.5) and score["network"]["ledger"] == pytest.approx(0.5)
    assert score["network"]["stock"] > 0.85  # cut off: an outage
    assert score["security"]["ledger"] == pytest.approx(0.5)  # web is a new caller of ledger
    assert score["network"]["cart"] < 0.05 and score["security"]["cart"] < 0.05
    texts = [c.text for c in explain(verdict, topology.critical[3], {}, 3600.0, names.index("stock")).contributions]
    assert "it is cut off from the main part of mesh" in texts
    texts = [c.text for c in explain(verdict, topology.critical[2], {}, 3600.0, names.index("ledger")).contributions]
    assert "it is in a new request loop of mesh: ledger, pay" in texts and "new callers in mesh: web" in texts
    # without a graph result (not run yet) the columns are there and say nothing
    quiet = CouncilStage(services).run(windows, topology, None, 3600.0, None)
    assert np.nanmax(quiet.scores) < 0.4


HOSTILE = 'pay"\n{x="1"}\\'


def hostile_result():
    stage = GraphStage(mesh())
    edges = [("web", HOSTILE, 5.0), (HOSTILE, "<script>alert(1)</script>", 5.0)]
    run(stage, edges, 0.0)
    outcome = run(stage, [*edges, ("<script>alert(1)</script>", "web", 1.0)], 60.0)
    return GraphResult(mesh(), 60.0, time.time(), outcome)


def test_graph_series_are_byte_identical_to_prometheus_client_and_pass_promtool(tmp_path):
    result = hostile_result()
    snapshot = Snapshot(graphs=MappingProxyType({"mesh": result}))
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(lambda: snapshot))
    text = text_exposition(snapshot)
    assert text == generate_latest(registry)
    assert text + b"# EOF\n" == openmetrics_latest(registry)  # the same bytes serve OpenMetrics
    exposition = text.decode()
    assert 'aura_graph_betti{analysis="mesh",homology_dimension="1"} 1.0' in exposition
    assert 'aura_graph_cycle_services{analysis="mesh",cycle="<script>alert(1)</script>",service="pay\\"\\n{x=\\"1\\"}\\\\"} 1.0' \
        in exposition
    checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert checked.returncode == 0, checked.stderr + checked.stdout


def test_the_graph_page_and_json_escape_service_names():
    result = hostile_result()
    page = graph_page(result)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    detail = graph_detail(result)
    assert detail["loops"][0]["services"] == tuple(sorted([HOSTILE, "<script>alert(1)</script>", "web"]))
    assert [death for _, death in detail["diagrams"]["1"]] == [None]  # never dies: null in JSON


# --- configuration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "message"), [
    (lambda t: t.replace("kind: graph", "kind: tree"), "analyses[0].kind: 'tree' is not one of metrics, graph"),
    (lambda t: t.replace("callee: destination_workload", "callee: source_workload"), "duplicate label"),
    (lambda t: t.replace("      caller: source_workload\n", ""), "analyses[0].graph.caller: required key is missing"),
    (lambda t: t.replace("%s", "weight: bandwidth"), "analyses[0].graph.weight: 'bandwidth' is not one of"),
    (lambda t: t.replace("analysis: mesh, label", "analysis: services, label"),
     "analyses[1].council.graph.analysis: 'services' is not the name of an analysis of kind graph"),
    (lambda t: t.replace("label: service}", "label: pod}"),
     "analyses[1].council.graph.label: 'pod' is not one of the analysis' entity_labels"),
    (lambda t: t.replace("rate(istio_requests_total[5m])", "rate(istio_requests_total[5m]"), "PromQL does not parse"),
])
def test_bad_graph_configuration_is_refused_with_its_key(change, message):
    with pytest.raises(ConfigError) as refused:
        parse_config(change(CONFIG).replace("%s", ""))
    assert any(message in problem for problem in refused.value.problems), refused.value.problems


def test_a_graph_analysis_reads_with_its_defaults():
    analysis = mesh()
    assert analysis.graph.weight == "strength" and analysis.graph.max_services == 500
    assert analysis.entity_labels == ("source_workload", "destination_workload")
    assert isinstance(analysis, GraphAnalysis) and not hasattr(analysis, "forecast")  # no forecaster, no council
    assert analysis.max_series == 500 * 500 and analysis.features[0].query == analysis.query
    assert config().analyses[1].graph_link.analysis == "mesh"


@pytest.mark.parametrize("path", sorted(str(p.relative_to(REPO)) for p in (REPO / "deploy" / "graphs").glob("*.yml")))
def test_the_shipped_graph_configurations_check(path):
    checked = subprocess.run([sys.executable, "-m", "aura_exporter", "check-config", f"--config.file={path}"],
                             capture_output=True, text=True, timeout=60, cwd=REPO)
    assert checked.returncode == 0 and "service graph" in checked.stdout, checked.stderr


# --- the baseline graph across restarts ------------------------------------------------------------


def graph_cycle(storage, extra: str = ""):
    from aura_exporter.graph_cycle import GraphCycle
    from aura_exporter.telemetry import SelfMetrics

    analysis = mesh(extra)
    return GraphCycle(analysis, source=None, metrics=SelfMetrics([analysis.name]), executor=None, storage=storage)


def baseline_errors(cycle, reason: str) -> float:
    return cycle.metrics.registry.get_sample_value("aura_baseline_errors_total",
                                                   {"analysis": "mesh", "reason": reason})


def test_a_restart_during_an_incident_does_not_learn_the_incident(tmp_path):
    before = graph_cycle(tmp_path)
    before.restore(0.0)
    run(before.stage, [*SHOP, ("ledger", "pay", 2.0)], 0.0)  # a known loop, stock joined to the rest
    before.save()
    assert (tmp_path / "graph-mesh.json").exists()
    after = graph_cycle(tmp_path)
    after.restore(60.0)
    saved, loaded = before.stage.baseline, after.stage.baseline
    assert loaded.weights == saved.weights and loaded.parts == saved.parts and loaded.loops == saved.loops
    np.testing.assert_array_equal(loaded.diagrams.h1, saved.diagrams.h1)  # never-dying bars survive JSON
    # the exporter comes back while stock is cut off and a new loop runs: both are news, not the norm
    incident = [e for e in SHOP if e[:2] != ("web", "stock")] + [("ledger", "pay", 2.0), ("cart", "web", 1.0)]
    outcome = run(after.stage, incident, 120.0)
    assert outcome.ready and [c.services for c in outcome.findings.cuts] == [("stock", "stock-db")]
    assert [loop.services for loop in outcome.findings.loops if loop.new] == [("cart", "web")]


@pytest.mark.parametrize(("damage", "reason"), [
    (lambda path: path.write_bytes(b'{"format": "aura-graph-baseline", "vers'), "corrupt"),
    (lambda path: path.write_text(path.read_text().replace('"version":1', '"version":7')), "version"),
    (lambda path: path.write_text(path.read_text().replace('"edges":[[', '"edges":[["x",')), "corrupt"),
])
def test_an_unusable_graph_baseline_is_counted_and_relearned(tmp_path, damage, reason):
    first = graph_cycle(tmp_path)
    first.restore(0.0)
    run(first.stage, SHOP, 0.0)
    first.save()
    damage(tmp_path / "graph-mesh.json")
    second = graph_cycle(tmp_path)
    second.restore(60.0)
    assert second.stage.baseline is None and baseline_errors(second, reason) == 1.0


def test_a_graph_baseline_of_another_query_or_from_the_future_is_foreign(tmp_path):
    first = graph_cycle(tmp_path)
    first.restore(0.0)
    run(first.stage, SHOP, 3600.0)
    first.save()
    other = graph_cycle(tmp_path, "weight: distance")
    other.restore(7200.0)
    assert other.stage.baseline is None and baseline_errors(other, "foreign") == 1.0
    earlier = graph_cycle(tmp_path)
    earlier.restore(0.0)  # a replay restarted, or a clock set back
    assert earlier.stage.baseline is None and baseline_errors(earlier, "foreign") == 1.0
