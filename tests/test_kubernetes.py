"""Kubernetes topology enrichment, against API objects in the shape `kubectl get -o json` returns them
(deserialised by the `kubernetes` client itself; no API server runs here)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time

import numpy as np
import pytest
from conftest import FIXTURES

from aura_exporter.config import ConfigError, KubernetesConfig, parse_config
from aura_exporter.council import CouncilStage
from aura_exporter.exposition.views import entity_detail
from aura_exporter.snapshot import AnalysisResult
from aura_exporter.sources.kubernetes import ClusterWatcher, Placement, cluster_from, read_cluster
from aura_exporter.topology import TopologyStage
from aura_exporter.windows import Windows

CONFIG = """
prometheus: {url: "http://prometheus:9090"}
kubernetes: {enabled: true, refresh_interval: 1m}
analyses:
  - name: pods
    entity_labels: [namespace, pod]
    step: 15s
    window: 30m
    kubernetes: %s
    features:
      cpu: {query: 'rate(container_cpu_usage_seconds_total[2m])', role: resources}
      net: {query: 'rate(container_network_receive_bytes_total[2m])', role: network}
"""


def listed(kind: str):
    from kubernetes.client import ApiClient

    model = {"pods": "V1PodList", "nodes": "V1NodeList", "replicasets": "V1ReplicaSetList"}[kind]
    return ApiClient().deserialize((FIXTURES / "kubernetes" / f"{kind}.json").read_text(), model, "application/json")


class RecordedApi:
    """CoreV1Api and AppsV1Api answering with the recorded lists."""

    def list_pod_for_all_namespaces(self):
        return listed("pods")

    def list_node(self):
        return listed("nodes")

    def list_replica_set_for_all_namespaces(self):
        return listed("replicasets")


def cluster():
    return read_cluster(RecordedApi(), RecordedApi())


def test_pods_are_placed_on_their_nodes_with_their_controlling_owner():
    found = cluster()
    assert found.pods[("shop", "payments-7d9f8c6b5-x2x9k")] == Placement(
        "node-a", "Deployment/payments", "shop/payments-7d9f8c6b5-x2x9k")  # through its ReplicaSet
    assert found.pods[("shop", "db-0")] == Placement("node-b", "StatefulSet/db", "shop/db-0")
    assert ("jobs", "batch-5xk2l") not in found.pods  # pending: on no node yet
    assert found.nodes == {"node-a": "node-a", "10.0.0.5": "node-a", "node-b": "node-b", "10.0.0.6": "node-b"}


def test_entities_are_found_by_their_labels():
    analysis = parse_config(CONFIG % "{pod: pod, namespace: namespace}").analyses[0]
    found = cluster()
    assert found.place(analysis.kubernetes, {"namespace": "shop", "pod": "db-0"}).node == "node-b"
    assert found.place(analysis.kubernetes, {"namespace": "other", "pod": "db-0"}) is None
    nodes = parse_config(CONFIG % "{node: pod}").analyses[0].kubernetes
    assert found.place(nodes, {"pod": "10.0.0.5:9100"}) == Placement("node-a")  # instance="host:port"
    assert found.place(nodes, {"pod": "node-b"}) == Placement("node-b")


@pytest.mark.parametrize("mapping", ["{pod: pod}", "{node: pod, pod: pod, namespace: namespace}",
                                     "{pod: pod, namespace: ns}", "{node: [pod]}"])
def test_bad_mappings_are_refused_with_their_path(mapping):
    with pytest.raises(ConfigError) as caught:
        parse_config(CONFIG % mapping)
    assert any(p.startswith("analyses[0].kubernetes") for p in caught.value.problems), caught.value.problems


def test_enrichment_is_off_unless_enabled():
    assert parse_config(CONFIG % "{node: pod}").kubernetes == KubernetesConfig(True, None, 60.0)
    assert not parse_config((CONFIG % "{node: pod}").replace("enabled: true", "enabled: false")).kubernetes.enabled


def pods_result(decisions: list[int]) -> AnalysisResult:
    analysis = parse_config(CONFIG % "{pod: pod, namespace: namespace}").analyses[0]
    entities = (("shop", "payments-7d9f8c6b5-x2x9k"), ("shop", "payments-7d9f8c6b5-q7wzp"), ("shop", "db-0"))
    values = np.random.default_rng(1).normal(size=(3, 120, 2))
    windows = Windows("pods", ("namespace", "pod"), entities, ("cpu", "net"), np.arange(120.0), values, {})
    topology = TopologyStage(analysis).run(windows, 0.0)
    verdict = CouncilStage(analysis).run(windows, topology, None, 0.0)
    risky = dataclasses.replace(verdict, decision=np.array(decisions),
                                risk=np.array([0.9 if d else 0.0 for d in decisions]))
    return AnalysisResult(analysis, 0.0, time.time(), windows, topology, risky)


def test_flagged_pods_of_one_node_point_at_the_node():
    detail = entity_detail(pods_result([2, 1, 0]), 0, cluster())
    placement = detail["kubernetes"]
    assert placement["node"] == "node-a" and placement["owner"] == "Deployment/payments"
    assert placement["flagged_on_node"] == ["namespace=shop, pod=payments-7d9f8c6b5-q7wzp"]
    assert "node node-a" in detail["explanation"]["actions"][0]

    alone = entity_detail(pods_result([2, 0, 2]), 0, cluster())  # db-0 is flagged, but on node-b
    assert alone["kubernetes"]["flagged_on_node"] == []
    assert not any("node-a" in action for action in alone["explanation"]["actions"])
    assert entity_detail(pods_result([2, 1, 0]), 0, None)["kubernetes"] is None  # enrichment off


def test_the_fleet_table_shows_the_riskiest_rows_and_points_at_the_api_for_the_rest(monkeypatch):
    from aura_exporter.exposition import ui
    from aura_exporter.exposition.ui import fleet_section

    monkeypatch.setattr(ui, "TABLE_ROWS", 2)
    page = fleet_section(pods_result([0, 2, 1]), None)
    table = page[page.index('<table class="entities"'):]
    assert table.count("<tr data-id=") == 2 and "db-0" in table and "x2x9k" not in table  # the calm one is left out
    assert "3 entities" in page and "the 2 riskiest" in page and "/api/v1/entities?analysis=pods" in page
    monkeypatch.setattr(ui, "TABLE_ROWS", 3)
    whole = fleet_section(pods_result([0, 2, 1]), None)
    assert whole.count("<tr data-id=") == 3 and "riskiest" not in whole


def test_the_watcher_keeps_the_last_reading_when_the_api_fails():
    errors: list[int] = []
    calls: list[int] = []

    def clients(config):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("401 Unauthorized")  # a fault no API server here can produce on demand
        return RecordedApi(), RecordedApi()

    watcher = ClusterWatcher(KubernetesConfig(True, None, 0.01), lambda: errors.append(1), clients)

    async def until_two_failures():
        task = asyncio.create_task(watcher.run())
        while len(errors) < 2:
            await asyncio.sleep(0.005)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(until_two_failures(), 10))
    assert watcher.latest is not None and ("shop", "db-0") in watcher.latest.pods  # the good reading stays


def test_cluster_from_accepts_empty_lists():
    class Empty:
        items = None

    assert cluster_from(Empty(), Empty(), Empty()).pods == {}
    assert json.dumps(sorted(cluster().pods))  # keys are plain strings


def test_the_fleet_page_joins_flagged_entities_of_one_node_and_names_the_node():
    from aura_exporter.exposition.ui import fleet_section

    page = fleet_section(pods_result([2, 1, 0]), cluster())
    assert '<ul class="shared-nodes"><li>node-a: 2 flagged</li></ul>' in page
    assert page.count('class="shared-node"') == 1 and "on node node-a" in page
    calm = fleet_section(pods_result([2, 0, 2]), cluster())  # flagged, but on different nodes
    assert "shared-nodes" not in calm and 'class="shared-node"' not in calm
    assert "on node" not in fleet_section(pods_result([2, 1, 0]), None)
