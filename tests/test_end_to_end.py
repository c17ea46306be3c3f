"""The sidecar against a REAL Prometheus: pull, analyse, get scraped back with honor_labels."""

from __future__ import annotations

import subprocess
import time
import urllib.parse

import pytest
from conftest import free_port, http_get, sample_value, wait_for

from aura_exporter.sources.parse import _parse_fast, _parse_objects

pytestmark = pytest.mark.prometheus

HOSTS = [f"host-{c}" for c in "abcdef"]


def sidecar_config(prometheus_url: str) -> str:
    return f"""
prometheus:
  url: {prometheus_url}
  timeout: 5s
  retries: 1
analyses:
  - name: hosts
    entity_labels: [instance]
    step: 1s
    window: 12s
    interval: 2s
    features:
      cpu: {{query: 'test_cpu{{job="target"}}', role: resources}}
      mem: {{query: 'test_mem{{job="target"}}', role: resources, limit: 100}}
      net: {{query: 'test_net{{job="target"}}', role: network}}
"""


def wait_until_every_host_analysed(exporter) -> None:
    def every_host_analysed():
        text = exporter.metrics()
        return all(sample_value(text, "aura_betti", {"instance": h, "homology_dimension": "0"}) for h in HOSTS)

    wait_for(every_host_analysed, 90, interval=1, what="every host analysed once the window filled")


def test_sidecar_round_trip_through_real_prometheus(tmp_path, target, prometheus_servers, exporters):
    prometheus_port = free_port()
    config = tmp_path / "aura.yml"
    config.write_text(sidecar_config(f"http://127.0.0.1:{prometheus_port}"))
    exporter = exporters(["run", f"--config.file={config}"])
    prometheus = prometheus_servers(
        port=prometheus_port,
        scrape_targets={"target": f"127.0.0.1:{target.port}", "aura": f"127.0.0.1:{exporter.port}"},
    )

    def every_host_scraped_back():
        found = {s["metric"].get("instance") for s in prometheus.query('aura_betti{homology_dimension="0"}')}
        return found >= set(HOSTS)

    wait_for(every_host_scraped_back, 90, interval=1, what="aura_betti for every host in Prometheus")
    for metric in ("aura_betti", "aura_wasserstein_drift", "aura_persistence_entropy"):
        series = prometheus.query(f'{metric}{{job="aura", analysis="hosts"}}')
        by_host = {(s["metric"]["instance"], s["metric"]["homology_dimension"]) for s in series}
        assert by_host >= {(h, d) for h in HOSTS for d in ("0", "1")}, metric
        # honor_labels kept the entity's own instance label; nothing was renamed exported_instance
        assert all("exported_instance" not in s["metric"] for s in series)
    betti0 = prometheus.query('aura_betti{homology_dimension="0", analysis="hosts"}')
    assert all(float(s["value"][1]) >= 1 for s in betti0)  # every non-empty window has a component
    assert prometheus.query('aura_entities_analysed{analysis="hosts"}')[0]["value"][1] == "6"


def test_prometheus_down_at_start_then_recovers(tmp_path, target, prometheus_servers, exporters):
    prometheus_port = free_port()
    config = tmp_path / "aura.yml"
    config.write_text(sidecar_config(f"http://127.0.0.1:{prometheus_port}"))
    exporter = exporters(["run", f"--config.file={config}"])

    def unreachable_errors():
        return sample_value(exporter.metrics(), "aura_query_errors_total",
                            {"analysis": "hosts", "reason": "unreachable"}) or 0

    wait_for(lambda: unreachable_errors() > 0, 30, what="unreachable errors counted")
    assert exporter.get("/-/healthy")[0] == 200
    assert exporter.get("/-/ready")[0] == 503
    assert exporter.process.poll() is None
    assert "query failed" in exporter.log()

    prometheus_servers(port=prometheus_port, scrape_targets={"target": f"127.0.0.1:{target.port}"})
    wait_for(lambda: exporter.get("/-/ready")[0] == 200, 90, interval=1, what="exporter ready after recovery")
    wait_until_every_host_analysed(exporter)
    text = exporter.metrics()
    assert sample_value(text, "aura_analysis_cycles_total", {"analysis": "hosts", "result": "success"}) >= 1


def test_own_metrics_pass_promtool(tmp_path, target, prometheus_servers, exporters):
    prometheus_port = free_port()
    config = tmp_path / "aura.yml"
    config.write_text(sidecar_config(f"http://127.0.0.1:{prometheus_port}"))
    prometheus_servers(port=prometheus_port, scrape_targets={"target": f"127.0.0.1:{target.port}"})
    exporter = exporters(["run", f"--config.file={config}"])
    wait_until_every_host_analysed(exporter)
    text = exporter.metrics()
    check = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    assert check.returncode == 0 and not check.stdout and not check.stderr, check.stdout + check.stderr


def test_real_prometheus_answers_take_the_fast_parser(target, prometheus_servers):
    prometheus = prometheus_servers(scrape_targets={"target": f"127.0.0.1:{target.port}"})
    wait_for(lambda: len(prometheus.query("test_cpu")) == len(HOSTS), 30, what="the target scraped")
    time.sleep(2)
    end = time.time()
    query = urllib.parse.urlencode({"query": "test_cpu", "start": end - 3, "end": end, "step": 1})
    status, _, body = http_get(f"{prometheus.url}/api/v1/query_range?{query}")
    assert status == 200
    fast = _parse_fast(body)
    assert fast is not None  # Prometheus' own compact JSON is what the fast path reads
    assert [(s.labels, s.values.size) for s in fast] == [(s.labels, s.values.size) for s in _parse_objects(body)]
    assert sum(s.values.size for s in fast) >= len(HOSTS)
