"""Shipped dashboards: generated from code (committed as generated), every query valid PromQL that returns
data from a real Prometheus scraping the exporter on the replay scenario, and only exported metrics."""

from __future__ import annotations

import json
import re
import urllib.parse

import promql_parser
import pytest
import yaml
from conftest import REPLAY_CONFIG, REPO, SPEED, http_get, rules_for_test, storage_with, wait_for
from test_rules import metric_names

from aura_exporter.mixin import settings
from aura_exporter.mixin.__main__ import outputs, render_dashboards
from aura_exporter.sources.replay import SCENARIO

DASHBOARDS = REPO / "dashboards"
JOB = "aura-exporter"  # the test Prometheus' job scraping the exporter
VALUES = {"analysis": "node", "entity": "host-07", "feature": "memory|cpu", "datasource": "prometheus"}
GRAPH_BOARD, GRAPH_RULES = "aura-service-graph.json", "aura-exporter.graph"
GRAPH_VALUES = {**VALUES, "analysis": "mesh"}  # the service graph dashboard is about graph analyses
GRAFANA = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.*),\s*(?P<label>\w+)\)$")


def committed() -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def substitute(text: str, board: str) -> str:
    values = {**(GRAPH_VALUES if board == GRAPH_BOARD else VALUES), **GRAFANA}
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values[m.group(1)], text)


def panel_queries(graph: bool | None = None) -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expression with variables substituted) for every panel target (of the
    service graph dashboard only, or of the others only, when `graph` says so)."""
    found = []
    for name, board in committed().items():
        if graph is not None and graph != (name == GRAPH_BOARD):
            continue
        for panel in board["panels"]:
            for target in panel.get("targets") or []:
                found.append((name, panel["title"], substitute(target["expr"], name)))
    return found


def variable_queries(graph: bool | None = None) -> list[tuple[str, str, str]]:
    """(dashboard, variable, label) of every label_values() variable, its selector substituted."""
    found = []
    for name, board in committed().items():
        if graph is not None and graph != (name == GRAPH_BOARD):
            continue
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                match = LABEL_VALUES.match(variable["query"])
                assert match, variable["query"]
                found.append((name, substitute(match["selector"], name), match["label"]))
    return found


def exported_names(prometheus) -> set[str]:
    """Every metric name Prometheus stored from the exporter while the test ran: a family absent from the last
    scrape (a time to breach no longer in sight) was exported all the same."""
    query = urllib.parse.urlencode({"match[]": f'{{job="{JOB}"}}'})
    status, _, body = http_get(f"{prometheus.url}/api/v1/label/__name__/values?{query}")
    assert status == 200, body
    return set(json.loads(body)["data"])


def check_against(prometheus, graph: bool) -> None:
    """Every panel (and variable) of the dashboards returns data, and they and the rules name only series
    the exporter exports; for the service graph dashboard and rules, or for the others."""
    empty = [(name, title, expr) for name, title, expr in panel_queries(graph) if not prometheus.query(expr)]
    assert empty == [], empty
    for name, selector, label in variable_queries(graph):
        assert any(label in s["metric"] for s in prometheus.query(selector)), (name, selector, label)
    exported = exported_names(prometheus) | {"ALERTS", "up"}  # and Prometheus' own
    for name, title, expr in panel_queries(graph):
        assert metric_names(promql_parser.parse(expr)) <= exported, (name, title)
    for group in yaml.safe_load((REPO / "rules" / "aura-alerts.yml").read_text())["groups"]:
        for rule in group["rules"] if graph == (group["name"] == GRAPH_RULES) else []:
            assert metric_names(promql_parser.parse(rule["expr"])) <= exported, rule


def test_committed_dashboards_are_what_the_code_generates():
    generated = outputs("dashboards")
    names = {path.split("/")[-1] for path in generated if path.startswith("dashboards/")}
    assert names == {p.name for p in DASHBOARDS.glob("*.json")}, "run `make dashboards`"
    for path, text in generated.items():
        assert (REPO / path).read_text() == text, f"{path}: run `make dashboards` and commit the result"
    assert render_dashboards() == render_dashboards()  # deterministic


def test_every_query_parses_and_every_target_has_its_own_ref_id():
    for name, title, expr in panel_queries():
        try:
            promql_parser.parse(expr)
        except ValueError as err:
            raise AssertionError(f"{name} / {title}: {expr}") from err
    for _, selector, _ in variable_queries():
        promql_parser.parse(selector)
    for board in committed().values():
        for panel in board["panels"]:
            refs = [t["refId"] for t in panel.get("targets") or []]
            assert len(set(refs)) == len(refs) and all(refs), panel["title"]


def test_links_join_the_two_dashboards():
    boards = committed()
    fleet, entity = boards["aura-fleet-overview.json"], boards["aura-entity.json"]
    assert fleet["uid"] == settings.FLEET_DASHBOARD_UID and entity["uid"] == settings.ENTITY_DASHBOARD_UID
    fleet_links = json.dumps(fleet)
    assert f"/d/{settings.ENTITY_DASHBOARD_UID}/" in fleet_links and "var-entity=" in fleet_links
    assert any(f"/d/{settings.FLEET_DASHBOARD_UID}/" in link["url"] for link in entity["links"])


@pytest.mark.prometheus
def test_every_panel_returns_data_from_the_replay_and_names_only_exported_metrics(
        tmp_path, trained, exporters, prometheus_servers):
    exporter = exporters(["demo", f"--config.file={REPLAY_CONFIG}", f"--replay.speed={SPEED:g}",
                          "--replay.offset=100m", f"--storage.path={storage_with(trained, tmp_path / 'store')}"])
    prometheus = prometheus_servers(scrape_targets={JOB: f"127.0.0.1:{exporter.port}"},
                                    rule_files=[rules_for_test(exporter.url, tmp_path / "rules.yml")])
    # Baselines warm up (40 scenario minutes), then the leak and the partition fire the shipped alerts; the leak's
    # time to breach is exported once its median path reaches the limit, which the breach odds may precede.
    # The residual z-score comes a cycle after the first forecast (its nowcast must come due): waited for too, or a
    # check right after the first forecasts finds its panel empty.
    wait_for(lambda: prometheus.query('ALERTS{alertstate="firing", alertname=~"Aura.*"}')
             and prometheus.query('aura_time_to_breach_seconds{instance="host-07"}')
             and prometheus.query('aura_forecast_residual_zscore{instance="host-07"}'), 150, interval=2,
             what="a firing AURA alert, the leak's time to breach and its residual z-score")
    check_against(prometheus, graph=False)


@pytest.mark.prometheus
def test_the_service_graph_dashboard_returns_data_while_services_are_cut_off(
        tmp_path, exporters, prometheus_servers):
    # five scenario minutes before the cut: the baseline is whole, then the inventory services go
    start = f"{(SCENARIO.cut_start - 300) / 60:g}m"
    exporter = exporters(["demo", "--config.file=tests/fixtures/replay-graph.yml", f"--replay.speed={SPEED:g}",
                          f"--replay.offset={start}", f"--storage.path={tmp_path / 'store'}"])
    prometheus = prometheus_servers(scrape_targets={JOB: f"127.0.0.1:{exporter.port}"})
    wait_for(lambda: prometheus.query('aura_graph_partition_services{analysis="mesh"}'), 60, interval=1,
             what="services cut off")
    check_against(prometheus, graph=True)
