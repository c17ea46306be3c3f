"""Service graphs end to end: Istio- and Tempo-shaped edge counters scraped by a real Prometheus, two
graph analyses reading them through PromQL, the shipped graph alerts evaluated by that Prometheus.

The mesh starts healthy (one known loop, auth ⇄ session); then a retry path closes a new loop
(ledger → checkout) and the stock services are cut off (the gateway stops calling them; they keep
talking to each other). Both analyses must name the loop, the part and the new edge, and the alerts
must fire with the services in their descriptions."""

from __future__ import annotations

import json
import threading
import time

import pytest
from conftest import ScrapeTarget, http_get, rules_for_test, sample_value, wait_for

HEALTHY = {
    ("gateway", "web"): 50.0, ("web", "session"): 40.0, ("session", "auth"): 10.0, ("auth", "session"): 5.0,
    ("web", "checkout"): 8.0, ("checkout", "payments"): 8.0, ("payments", "ledger"): 8.0,
    ("ledger", "ledger-db"): 20.0, ("checkout", "cart"): 6.0, ("web", "cart"): 12.0, ("cart", "redis"): 30.0,
    ("gateway", "stock"): 6.0, ("stock", "stock-db"): 12.0,
}


class MeshTarget(ScrapeTarget):
    """Counters of calls per edge, as Istio's sidecars and Tempo's service-graph processor export them,
    plus the odd series a real mesh has (a self-call, an edge whose callee is unknown to Tempo)."""

    def __init__(self):
        self.rates = dict(HEALTHY)
        self.counts: dict[tuple[str, str], float] = {}
        self.started = self.last = time.time()
        self.lock = threading.Lock()
        super().__init__()

    def exposition(self) -> str:
        with self.lock:
            now = time.time()
            for edge, rate in self.rates.items():
                self.counts[edge] = self.counts.get(edge, 0.0) + rate * (now - self.last)
            self.last = now
            counts = dict(self.counts)
        lines = ["# TYPE istio_requests_total counter", "# TYPE traces_service_graph_request_total counter"]
        for (caller, callee), count in sorted(counts.items()):
            lines.append(f'istio_requests_total{{reporter="source",source_workload="{caller}",'
                         f'destination_workload="{callee}",response_code="200"}} {count}')
            lines.append(f'traces_service_graph_request_total{{client="{caller}",server="{callee}"}} {count}')
        elapsed = now - self.started
        lines.append(f'istio_requests_total{{reporter="source",source_workload="web",destination_workload="web",'
                     f'response_code="200"}} {3 * elapsed}')
        lines.append(f'traces_service_graph_request_total{{client="web"}} {2 * elapsed}')
        return "\n".join(lines) + "\n"

    def steer(self, **changes: float) -> None:
        with self.lock:
            for name, rate in changes.items():
                self.rates[tuple(name.split("__"))] = rate


CONFIG = """
prometheus: {url: "%s"}
analyses:
  - name: istio
    kind: graph
    step: 1s
    window: 3s
    interval: 1s
    graph:
      query: 'sum by (source_workload, destination_workload) (rate(istio_requests_total{reporter="source"}[4s]))'
      caller: source_workload
      callee: destination_workload
    baseline: {refresh_interval: 1h}
  - name: tempo
    kind: graph
    step: 1s
    window: 3s
    interval: 1s
    graph:
      query: 'sum by (client, server) (rate(traces_service_graph_request_total[4s]))'
      caller: client
      callee: server
    baseline: {refresh_interval: 1h}
"""


@pytest.fixture
def mesh():
    target = MeshTarget()
    yield target
    target.close()


def test_a_new_loop_a_partition_and_a_new_dependency_are_named_and_alerted(
        tmp_path, mesh, prometheus_servers, exporters):
    source = prometheus_servers(scrape_targets={"mesh": f"127.0.0.1:{mesh.port}"})
    # the baseline is the first graph the exporter sees: let every edge have a rate first
    wait_for(lambda: len(source.query('rate(istio_requests_total{reporter="source"}[4s]) > 0')) == len(HEALTHY) + 1,
             30, what="a rate for every edge")
    config = tmp_path / "aura.yml"
    config.write_text(CONFIG % source.url)
    exporter = exporters(["run", f"--config.file={config}", f"--storage.path={tmp_path / 'state'}"])
    watcher = prometheus_servers(scrape_targets={"aura-exporter": f"127.0.0.1:{exporter.port}"},
                                 rule_files=[rules_for_test(exporter.url, tmp_path / "rules.yml")])

    def metric(name: str, **labels: str) -> float | None:
        return sample_value(exporter.metrics(), name, labels)

    for analysis in ("istio", "tempo"):
        wait_for(lambda a=analysis: metric("aura_model_ready", analysis=a) == 1.0, 60, what=f"{analysis} ready")
        assert metric("aura_graph_services", analysis=analysis) == 12.0
        assert metric("aura_graph_betti", analysis=analysis, homology_dimension="0") == 1.0
        assert metric("aura_graph_betti", analysis=analysis, homology_dimension="1") == 1.0  # auth ⇄ session
        assert metric("aura_graph_cycle_new", analysis=analysis, cycle="auth") == 0.0
    assert metric("aura_graph_edges_skipped", analysis="istio", reason="self_loop") == 1.0
    assert (tmp_path / "state" / "graph-istio.json").exists()  # a restart keeps the baseline graph
    assert metric("aura_graph_edges_skipped", analysis="tempo", reason="missing_label") == 1.0

    mesh.steer(ledger__checkout=3.0, gateway__stock=0.0)  # a retry loop closes; stock is cut off

    for analysis in ("istio", "tempo"):
        wait_for(lambda a=analysis: metric("aura_graph_cycle_new", analysis=a, cycle="checkout") == 1.0
                 and metric("aura_graph_partition_services", analysis=a, part="stock", service="stock-db") == 1.0,
                 30, what=f"{analysis}: the loop and the partition")
        exposition = exporter.metrics()
        for service in ("checkout", "ledger", "payments"):
            assert sample_value(exposition, "aura_graph_cycle_services",
                                {"analysis": analysis, "cycle": "checkout", "service": service}) == 1.0
        assert sample_value(exposition, "aura_graph_edge_change", {"analysis": analysis, "caller": "ledger",
                                                                   "callee": "checkout", "change": "appeared"}) > 0
        assert sample_value(exposition, "aura_graph_edge_change", {"analysis": analysis, "caller": "gateway",
                                                                   "callee": "stock", "change": "vanished"}) > 0
        assert sample_value(exposition, "aura_graph_betti", {"analysis": analysis, "homology_dimension": "0"}) == 2.0
        assert sample_value(exposition, "aura_graph_betti", {"analysis": analysis, "homology_dimension": "1"}) == 2.0

    status, _, body = http_get(f"{exporter.url}/api/v1/graphs/istio")
    detail = json.loads(body)["data"]
    assert status == 200
    assert {(tuple(loop["services"]), loop["new"]) for loop in detail["loops"]} == {
        (("checkout", "ledger", "payments"), True), (("auth", "session"), False)}
    assert [cut["services"] for cut in detail["cuts"]] == [["stock", "stock-db"]]
    assert "cut off from the rest of istio: stock, stock-db" in detail["summary"]

    def firing() -> dict[tuple[str, str], dict]:
        alerts = json.loads(http_get(f"{watcher.url}/api/v1/alerts")[2])["data"]["alerts"]
        return {(a["labels"]["alertname"], a["labels"]["analysis"]): a for a in alerts if a["state"] == "firing"}

    wanted = {(name, analysis) for name in ("AuraDependencyCycle", "AuraServicePartition", "AuraNewDependency")
              for analysis in ("istio", "tempo")}
    wait_for(lambda: wanted <= set(firing()), 60, interval=1, what="the graph alerts firing")
    alerts = firing()
    cycle = alerts[("AuraDependencyCycle", "tempo")]
    assert cycle["labels"]["cycle"] == "checkout"
    assert cycle["annotations"]["description"].endswith("in the making): checkout, ledger, payments.")
    partition = alerts[("AuraServicePartition", "istio")]
    assert partition["labels"]["severity"] == "critical" and partition["labels"]["part"] == "stock"
    assert partition["annotations"]["description"].endswith("(no calls either way): stock, stock-db.")
    assert alerts[("AuraNewDependency", "istio")]["labels"]["caller"] == "ledger"
    # the known loop is never news
    assert all(a["labels"].get("cycle") != "auth" for a in alerts.values())
