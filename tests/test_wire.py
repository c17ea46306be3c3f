"""Both PromQL clients (the live cycles' aiohttp source, history's prometheus-api-client) talk to the API
the same way: headers, credentials, TLS with `server_name`, retries after Retry-After, range pieces.
Loopback servers stand in for the faults a real Prometheus cannot be made to produce on demand."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from test_promql import ANALYSIS, make_certificates

from aura_exporter.config import PrometheusConfig, TLSConfig
from aura_exporter.history import prometheus_history
from aura_exporter.sources.base import QueryError
from aura_exporter.sources.promql import PromQLSource
from aura_exporter.sources.wire import RETRY_AFTER_MOST, retry_delay


def matrix(start: float, end: float) -> dict:
    """One series with a value at each whole second of [start, end]."""
    return {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"instance": "x"}, "values": [[t, "1"] for t in range(int(start), int(end) + 1)]}]}}


class ScriptedPrometheus:
    """A loopback query_range endpoint (GET and POST) answering with scripted (status, headers), then 200."""

    def __init__(self, script: list[tuple[int, dict[str, str]]] | None = None, tls: ssl.SSLContext | None = None):
        self.script = list(script or [])
        self.requests: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode()) if length else {}
                params = {**parse_qs(urlparse(self.path).query), **form}
                owner.requests.append({"headers": dict(self.headers), "time": time.monotonic(), "params": params})
                status, headers = owner.script.pop(0) if owner.script else (200, {})
                answer = matrix(float(params["start"][0]), float(params["end"][0])) if status == 200 else {}
                body = json.dumps(answer or {"status": "error"}).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer  # noqa: N815 - http.server's naming

            def log_message(self, *args):
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted():
    servers = []

    def start(*args, **kwargs) -> ScriptedPrometheus:
        servers.append(ScriptedPrometheus(*args, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def live(config: PrometheusConfig, delays: list[float] | None = None):
    """The live source's answer over [0, 10] (its retry waits recorded in `delays` instead of slept)."""
    async def sleep(seconds: float) -> None:
        (delays if delays is not None else []).append(seconds)

    async def run():
        source = PromQLSource(config, sleep=sleep)
        try:
            return await source.query_range(ANALYSIS, ANALYSIS.features[0], 0, 10)
        finally:
            await source.close()

    return asyncio.run(run())


def history(config: PrometheusConfig):
    return prometheus_history(config, ANALYSIS, 0, 10)


def test_retry_after_in_seconds_or_as_a_date_is_honoured_up_to_a_cap():
    assert retry_delay(0, "3") == 3.0
    assert retry_delay(0, formatdate(1000.0 + 7, usegmt=True), now=1000.0) == pytest.approx(7.0)
    assert retry_delay(0, "86400") == RETRY_AFTER_MOST
    assert 0.125 <= retry_delay(0, "soon") <= 0.375  # unreadable: the usual backoff
    assert 0.125 <= retry_delay(0) <= 0.375 and retry_delay(10) <= 15.0


def test_the_live_source_waits_as_long_as_the_server_asks(scripted):
    server = scripted([(429, {"Retry-After": "2"}), (503, {})])
    delays: list[float] = []
    result = live(PrometheusConfig(url=server.url, retries=3), delays)
    assert len(result.series) == 1 and len(server.requests) == 3
    assert delays[0] == 2.0 and delays[1] < 1.0


def test_history_waits_as_long_as_the_server_asks(scripted):
    server = scripted([(503, {"Retry-After": "1"})])
    found = history(PrometheusConfig(url=server.url, retries=2))
    assert found.values.shape == (1, 11, 1) and len(server.requests) == 2
    assert server.requests[1]["time"] - server.requests[0]["time"] >= 0.95


@pytest.mark.parametrize("client", [live, history])
def test_both_clients_give_up_after_the_retries_and_never_retry_a_bad_query(scripted, client):
    server = scripted([(503, {})] * 5)
    with pytest.raises(QueryError) as caught:
        client(PrometheusConfig(url=server.url, retries=2))
    assert caught.value.reason == "server_error" and len(server.requests) == 3
    server = scripted([(404, {})])
    with pytest.raises(QueryError) as caught:
        client(PrometheusConfig(url=server.url, retries=2))
    assert caught.value.reason == "bad_request" and len(server.requests) == 1


@pytest.mark.parametrize("client", [live, history])
def test_both_clients_send_the_same_headers_and_split_ranges_at_one_limit(scripted, tmp_path, client):
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    server = scripted()
    found = client(PrometheusConfig(url=server.url, bearer_token_file=str(token), max_points_per_query=4,
                                    headers=(("X-Scope-OrgID", "tenant-1"),)))
    assert len(server.requests) == 3  # 11 points, at most 4 a piece
    for request in server.requests:
        assert request["headers"]["Authorization"] == "Bearer s3cret"
        assert request["headers"]["X-Scope-OrgID"] == "tenant-1"
        assert request["headers"]["User-Agent"] == "aura-exporter"
        assert request["params"]["timeout"] == ["30s"]
    starts = sorted(float(r["params"]["start"][0]) for r in server.requests)
    assert starts == [0.0, 4.0, 8.0]
    values = found.values[0, :, 0] if client is history else np.concatenate([s.values for s in found.series])
    assert len(values) == 11 and np.isfinite(values).all()


@pytest.mark.parametrize("client", [live, history])
def test_both_clients_check_the_certificate_against_server_name(scripted, tmp_path, client):
    """The certificate names prometheus.test, not the address dialled: only server_name makes it match."""
    certs = make_certificates(tmp_path, san="DNS:prometheus.test")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs["server.crt"], certs["server.key"])
    server = scripted(tls=context)
    named = PrometheusConfig(url=server.url, retries=0, tls=TLSConfig(ca_file=certs["ca.crt"],
                                                                      server_name="prometheus.test"))
    assert client(named) is not None
    with pytest.raises(QueryError) as caught:
        client(PrometheusConfig(url=server.url, retries=0, tls=TLSConfig(ca_file=certs["ca.crt"])))
    assert caught.value.reason == "unreachable"
