"""The PromQL source against a real Prometheus, and against a loopback server for faults
a real Prometheus cannot be made to produce on demand (503s, hangs, header capture)."""

from __future__ import annotations

import asyncio
import base64
import time

import numpy as np
import pytest
from aiohttp import web
from conftest import free_port, wait_for

from aura_exporter.config import Analysis, BasicAuth, Feature, PrometheusConfig, TLSConfig
from aura_exporter.sources.base import QueryError
from aura_exporter.sources.promql import PromQLSource
from aura_exporter.sources.wire import split_range

ANALYSIS = Analysis(name="a", entity_labels=("instance",), step=1, window=10, interval=2,
                    features=(Feature("cpu", 'test_cpu{job="target"}', "resources"),))
FEATURE = ANALYSIS.features[0]


async def no_sleep(_: float) -> None:
    return None


def query(config: PrometheusConfig, analysis: Analysis = ANALYSIS, start=None, end=None):
    async def run():
        source = PromQLSource(config, sleep=no_sleep)
        try:
            now = time.time()
            return await source.query_range(analysis, analysis.features[0], start or now - 9, end or now)
        finally:
            await source.close()

    return asyncio.run(run())


def test_split_range_respects_the_point_limit():
    pieces = split_range(0, 100, 1, 11)
    assert pieces[0] == (0, 10) and pieces[-1] == (99, 100) and len(pieces) == 10
    assert sum(int(e - s) + 1 for s, e in pieces) == 101


@pytest.mark.prometheus
def test_real_prometheus_behind_a_path_prefix_with_split_ranges(target, prometheus_servers):
    prometheus = prometheus_servers(scrape_targets={"target": f"127.0.0.1:{target.port}"},
                                    route_prefix="/prometheus")
    wait_for(lambda: len(prometheus.query('test_cpu[10s]')) == 6
             and min(len(s["values"]) for s in prometheus.query('test_cpu[10s]')) >= 8, 30, what="data")
    end = float(int(time.time()))
    whole = query(PrometheusConfig(url=prometheus.url), start=end - 7, end=end)
    split = query(PrometheusConfig(url=prometheus.url, max_points_per_query=3), start=end - 7, end=end)
    assert len(whole.series) == 6
    by_labels = {tuple(sorted(s.labels.items())): s for s in whole.series}
    for piece in split.series:
        twin = by_labels[tuple(sorted(piece.labels.items()))]
        np.testing.assert_array_equal(piece.timestamps, twin.timestamps)
        np.testing.assert_array_equal(piece.values, twin.values)

    capped = Analysis(**{**ANALYSIS.__dict__, "max_series": 5})
    with pytest.raises(QueryError) as caught:
        query(PrometheusConfig(url=prometheus.url), analysis=capped)
    assert caught.value.reason == "too_many_series"

    bad = Analysis(**{**ANALYSIS.__dict__, "features": (Feature("cpu", "rate(test_cpu)", "resources"),)})
    with pytest.raises(QueryError) as caught:
        query(PrometheusConfig(url=prometheus.url), analysis=bad)
    assert caught.value.reason == "bad_request"


class FaultyPrometheus:
    """A loopback HTTP server answering query_range with scripted statuses, recording requests."""

    def __init__(self, statuses: list[int], delay: float = 0.0):
        self.statuses = statuses
        self.delay = delay
        self.requests: list[dict] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append({"headers": dict(request.headers), "form": dict(await request.post()),
                              "path": request.path})
        await asyncio.sleep(self.delay)
        status = self.statuses[min(len(self.requests), len(self.statuses)) - 1]
        if status != 200:
            return web.Response(status=status, text="overloaded")
        return web.json_response({"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"instance": "x"}, "values": [[1, "1"]]}]}})

    def run(self, config_for, analysis: Analysis = ANALYSIS, ssl_context=None):
        async def main():
            app = web.Application()
            app.router.add_post("/{tail:.*}", self.handle)
            runner = web.AppRunner(app)
            await runner.setup()
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context).start()
            source = PromQLSource(config_for(f"http://127.0.0.1:{port}"), sleep=no_sleep)
            try:
                return await source.query_range(analysis, analysis.features[0], 0, 5)
            finally:
                await source.close()
                await runner.cleanup()

        return asyncio.run(main())


def test_retries_5xx_then_succeeds():
    server = FaultyPrometheus([503, 502, 200])
    result = server.run(lambda url: PrometheusConfig(url=url, retries=3))
    assert len(result.series) == 1 and len(server.requests) == 3


def test_gives_up_after_the_retries():
    server = FaultyPrometheus([503])
    with pytest.raises(QueryError) as caught:
        server.run(lambda url: PrometheusConfig(url=url, retries=2))
    assert caught.value.reason == "server_error" and len(server.requests) == 3


def test_does_not_retry_4xx():
    server = FaultyPrometheus([404])
    with pytest.raises(QueryError) as caught:
        server.run(lambda url: PrometheusConfig(url=url, retries=3))
    assert caught.value.reason == "bad_request" and len(server.requests) == 1


def test_timeout_is_retried_and_counted():
    server = FaultyPrometheus([200], delay=2.0)
    with pytest.raises(QueryError) as caught:
        server.run(lambda url: PrometheusConfig(url=url, timeout=0.2, retries=1))
    assert caught.value.reason == "timeout" and len(server.requests) == 2


def test_auth_headers_and_path_prefix(tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    server = FaultyPrometheus([200])
    server.run(lambda url: PrometheusConfig(url=url + "/prometheus", bearer_token_file=str(token),
                                            headers=(("X-Scope-OrgID", "tenant-1"),)))
    request = server.requests[0]
    assert request["path"] == "/prometheus/api/v1/query_range"
    assert request["headers"]["Authorization"] == "Bearer s3cret"
    assert request["headers"]["X-Scope-OrgID"] == "tenant-1"
    assert request["form"]["query"] == 'test_cpu{job="target"}' and request["form"]["step"] == "1"

    server = FaultyPrometheus([200])
    server.run(lambda url: PrometheusConfig(url=url, basic_auth=BasicAuth("ops", "pw")))
    expected = "Basic " + base64.b64encode(b"ops:pw").decode()
    assert server.requests[0]["headers"]["Authorization"] == expected


def test_unreachable_is_an_error_not_a_crash():
    with pytest.raises(QueryError) as caught:
        query(PrometheusConfig(url=f"http://127.0.0.1:{free_port()}", retries=1))
    assert caught.value.reason == "unreachable"


def test_query_errors_never_carry_a_urls_password():
    port = free_port()
    with pytest.raises(QueryError) as caught:
        query(PrometheusConfig(url=f"http://ops:hunter2@127.0.0.1:{port}", retries=1))
    assert "hunter2" not in str(caught.value) and f"ops:<secret>@127.0.0.1:{port}" in str(caught.value)
    error = QueryError("bad_request", "history query failed: https://a:b%40c@x/api and http://u@y/ and s://:p@z")
    assert str(error) == "history query failed: https://a:<secret>@x/api and http://u@y/ and s://:<secret>@z"


def make_certificates(directory, san: str = "IP:127.0.0.1") -> dict[str, str]:
    """A CA, a server certificate for `san` (127.0.0.1) and a client certificate, made with openssl."""
    import subprocess

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
            "-days", "2", "-subj", "/CN=aura-test-ca")
    (directory / "san.ext").write_text(f"subjectAltName={san}\n")
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.crt", "-days", "2", "-extfile", "san.ext")
    return {name: str(directory / name) for name in
            ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")}


def test_tls_with_ca_client_certificate_and_skip_verify(tmp_path):
    import ssl

    certs = make_certificates(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=certs["ca.crt"])
    server_context.load_cert_chain(certs["server.crt"], certs["server.key"])
    server_context.verify_mode = ssl.CERT_REQUIRED  # the server insists on a client certificate

    def run(tls: TLSConfig):
        server = FaultyPrometheus([200])
        return server.run(lambda url: PrometheusConfig(url=url.replace("http:", "https:"), tls=tls, retries=0),
                          ssl_context=server_context)

    ok = run(TLSConfig(ca_file=certs["ca.crt"], cert_file=certs["client.crt"], key_file=certs["client.key"]))
    assert len(ok.series) == 1
    with pytest.raises(QueryError) as caught:  # the server's certificate is not trusted
        run(TLSConfig(cert_file=certs["client.crt"], key_file=certs["client.key"]))
    assert caught.value.reason == "unreachable"
    skipped = run(TLSConfig(insecure_skip_verify=True, cert_file=certs["client.crt"], key_file=certs["client.key"]))
    assert len(skipped.series) == 1
    with pytest.raises(QueryError):  # no client certificate: the server refuses the handshake
        run(TLSConfig(ca_file=certs["ca.crt"]))
