"""Faults survived, against the real Prometheus: each fault hits one analysis (or, when Prometheus
itself dies, all of them); the process stays up, /metrics keeps answering, the affected analysis
goes stale with its failures counted, the others carry on, and the next healthy cycle recovers
without a restart.

NaN/±Inf values, vanished series and 100× the series cap are produced for real (the scrape target
exposes them and Prometheus answers with them). Slow answers, 5xx and broken JSON are faults a
healthy Prometheus will not produce on demand, so a small proxy in front of it injects them, only
for the faulty analysis' queries.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import MetricsTarget, PrometheusServer, free_port, sample_value, wait_for

pytestmark = pytest.mark.prometheus

INTERVAL = 2.0
FAULTY_METRICS = ("test_net", "test_lat")  # the faulty analysis' queries; the steady one asks for cpu and mem


class FaultProxy:
    """Forwards the PromQL API to Prometheus; `fault` spoils the answers to the faulty analysis' queries."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.fault: str | None = None  # "slow", "5xx", "truncated", "not_json"
        self.in_flight = 0
        self.port = free_port()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                query = urllib.parse.parse_qs(body.decode()).get("query", [""])[0]
                fault = proxy.fault if any(m in query for m in FAULTY_METRICS) else None
                proxy.in_flight += 1
                try:
                    status, answer = proxy.answer(self.path, body, fault)
                finally:
                    proxy.in_flight -= 1
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:  # the client gave up first (the slow fault)
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path: str, body: bytes, fault: str | None) -> tuple[int, bytes]:
        if fault == "5xx":
            return 503, b"upstream overloaded"
        if fault == "not_json":
            return 200, b"<html><body>Login required</body></html>"
        if fault == "slow":
            time.sleep(3)  # past the exporter's 2 s timeout
        request = urllib.request.Request(self.upstream + path, data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, answer = response.status, response.read()
        except urllib.error.HTTPError as err:
            status, answer = err.code, err.read()
        except OSError:  # Prometheus is down: a gateway would say 502
            return 502, b"bad gateway"
        if fault == "truncated":
            answer = answer[: len(answer) // 2]
        return status, answer

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def config(proxy_url: str) -> str:
    window = f"step: 1s\n    window: 8s\n    interval: {INTERVAL:g}s"
    return f"""
prometheus:
  url: {proxy_url}
  timeout: 2s
  retries: 0
analyses:
  - name: steady
    entity_labels: [instance]
    {window}
    features:
      cpu: {{query: 'test_cpu{{job="target"}}', role: resources}}
      mem: {{query: 'test_mem{{job="target"}}', role: resources}}
  - name: faulty
    entity_labels: [instance]
    {window}
    max_series: 10
    features:
      net: {{query: 'test_net{{job="target"}}', role: network}}
      lat: {{query: 'test_lat{{job="target"}}', role: performance}}
"""


class Stack:
    def __init__(self, tmp, exporters):
        self.target = MetricsTarget(hosts=[f"host-{c}" for c in "abcdef"], features=["cpu", "mem", "net", "lat"])
        self.prometheus = PrometheusServer(tmp, scrape_targets={"target": f"127.0.0.1:{self.target.port}"}).start()
        self.proxy = FaultProxy(self.prometheus.url)
        (tmp / "aura.yml").write_text(config(f"http://127.0.0.1:{self.proxy.port}"))
        self.exporter = exporters(["run", f"--config.file={tmp / 'aura.yml'}", f"--storage.path={tmp / 'state'}"])
        self.pid = self.exporter.process.pid

    def value(self, name: str, **labels) -> float:
        status, _, body = self.exporter.get("/metrics")
        assert status == 200, "/metrics must answer whatever happens upstream"
        return sample_value(body.decode(), name, labels) or 0.0

    def cycles(self, analysis: str, result: str = "success") -> float:
        return self.value("aura_analysis_cycles_total", analysis=analysis, result=result)

    def fresh(self, analysis: str) -> bool:
        """Its last success is at most two intervals old."""
        return time.time() - self.value("aura_analysis_last_success_timestamp_seconds", analysis=analysis) < 2 * INTERVAL

    def close(self):
        self.proxy.close()
        self.prometheus.stop()
        self.target.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from conftest import ExporterProcess, stop_process

    tmp = tmp_path_factory.mktemp("faults")
    started: list[ExporterProcess] = []

    def start(args):
        started.append(ExporterProcess(tmp, args))
        return started[-1]

    built = Stack(tmp, start)
    wait_for(lambda: built.fresh("steady") and built.fresh("faulty"), 60, interval=0.5,
             what="both analyses succeeding")
    yield built
    for process in started:
        stop_process(process.process, grace=15)
    built.close()


def survive(stack: Stack, start_fault, end_fault, reason: str | None, affected=("faulty",)) -> None:
    """Start a fault, check what must hold during it and after it ends."""
    wait_for(lambda: all(stack.fresh(a) for a in ("steady", "faulty")), 60, interval=0.5, what="a healthy start")
    failures = {a: stack.cycles(a, "failure") for a in affected}
    errors = {a: stack.value("aura_query_errors_total", analysis=a, reason=reason) for a in affected} if reason else {}
    steady_before = stack.cycles("steady")
    start_fault()
    try:
        for analysis in affected:
            wait_for(lambda a=analysis: stack.cycles(a, "failure") >= failures[a] + 2 and not stack.fresh(a), 60,
                     interval=0.5, what=f"{analysis} failing and stale")
            if reason:
                assert stack.value("aura_query_errors_total", analysis=analysis, reason=reason) > errors[analysis]
        if "steady" not in affected:
            # while the fault lasts: two quick failures of the faulty analysis can fit in one steady interval
            wait_for(lambda: stack.cycles("steady") >= steady_before + 2 and stack.fresh("steady"), 60,
                     interval=0.5, what="the others carrying on")
            text = stack.exporter.get("/metrics")[2].decode()
            assert sample_value(text, "aura_betti", {"analysis": "steady", "homology_dimension": "0"}) is not None
        status, _, body = stack.exporter.get("/api/v1/status")
        assert status == 200
    finally:
        end_fault()
    recovered_from = {a: stack.cycles(a) for a in affected}
    for analysis in affected:
        wait_for(lambda a=analysis: stack.cycles(a) > recovered_from[a] and stack.fresh(a), 60, interval=0.5,
                 what=f"{analysis} recovering")
    assert stack.exporter.process.poll() is None and stack.exporter.process.pid == stack.pid  # never restarted


@pytest.mark.parametrize("fault, reason", [("slow", "timeout"), ("5xx", "server_error"),
                                           ("truncated", "invalid_response"), ("not_json", "invalid_response")])
def test_broken_answers(stack, fault, reason):
    def start():
        stack.proxy.fault = fault

    def end():
        stack.proxy.fault = None

    survive(stack, start, end, reason)


@pytest.mark.parametrize("fault", ["non_finite", "absent"])
def test_values_that_cannot_be_analysed(stack, fault):
    """NaN/±Inf samples and series that vanish leave no entity to analyse: the analysis fails
    visibly rather than exporting an empty, healthy-looking fleet."""

    def start():
        stack.target.faults.update(net=fault, lat=fault)

    def end():
        stack.target.faults.clear()

    survive(stack, start, end, reason=None)
    assert "no entity to analyse" in stack.exporter.log()


def test_a_hundred_times_the_series_cap(stack):
    before = stack.value("aura_cardinality_limit_hits_total", analysis="faulty", limit="series")

    def start():
        stack.target.faults["net"] = "wide"

    def end():
        stack.target.faults.clear()

    survive(stack, start, end, reason="too_many_series")
    assert stack.value("aura_cardinality_limit_hits_total", analysis="faulty", limit="series") > before


def test_prometheus_killed_mid_cycle_and_restarted(stack):
    def start():
        stack.proxy.fault = "slow"  # hold a query in flight, so that the kill lands inside a cycle
        wait_for(lambda: stack.proxy.in_flight > 0, 30, interval=0.05, what="a query in flight")
        os.kill(stack.prometheus.process.pid, signal.SIGKILL)
        stack.prometheus.process.wait()
        stack.proxy.fault = None

    def end():
        stack.prometheus.start()  # same port, same storage

    survive(stack, start, end, reason="server_error", affected=("steady", "faulty"))


def test_baselines_are_saved_when_the_exporter_stops(stack):
    """Last in this module: it stops the exporter that the cases above shared."""
    state = stack.exporter.stderr_path.parent / "state"
    stopping = time.time()
    assert stack.exporter.stop() == 0
    saved = {p.name: p.stat().st_mtime for p in state.glob("baselines-*.npz")}
    assert set(saved) == {"baselines-steady.npz", "baselines-faulty.npz"}
    assert min(saved.values()) >= stopping - 1  # written at shutdown, not only by the periodic save
