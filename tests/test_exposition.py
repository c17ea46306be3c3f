"""Exposition: the collector, rendering, content negotiation, and a server that never waits on a cycle."""

from __future__ import annotations

import asyncio
import gzip
import logging
import socket
import ssl
import subprocess
import time

import numpy as np
import pytest
from conftest import sample_value, serve_in_process
from prometheus_client import CollectorRegistry, Gauge
from test_promql import make_certificates

from aura_exporter.config import parse_config
from aura_exporter.council import CouncilStage
from aura_exporter.exposition.collector import SnapshotCollector
from aura_exporter.exposition.render import render_snapshot
from aura_exporter.snapshot import AnalysisResult, SnapshotHolder
from aura_exporter.sources.replay import ReplayFleet, ReplaySource
from aura_exporter.topology import TopologyStage
from aura_exporter.windows import Windows

DEMO = parse_config(open("aura_exporter/examples/demo.yml").read())
ANALYSIS = DEMO.analyses[0]


def result_for(entities: list[str]) -> AnalysisResult:
    rng = np.random.default_rng(3)
    windows = Windows(ANALYSIS.name, ("instance",), tuple((e,) for e in entities),
                      tuple(f.name for f in ANALYSIS.features), np.arange(120.0),
                      rng.normal(size=(len(entities), 120, 5)), {"missing_data": 2})
    topology = TopologyStage(ANALYSIS).run(windows, now=0.0)
    verdict = CouncilStage(ANALYSIS).run(windows, topology, None, now=0.0)
    return AnalysisResult(ANALYSIS, 0.0, time.time(), windows, topology, verdict)


def test_registering_the_collector_computes_nothing():
    def explode():
        raise AssertionError("describe() must not read the snapshot")

    CollectorRegistry(auto_describe=True).register(SnapshotCollector(explode))


def test_vanished_entities_leave_the_next_scrape():
    holder = SnapshotHolder()
    first = render_snapshot(holder.publish(result_for(["a", "b"]), "node", time.time())).text.decode()
    second = render_snapshot(holder.publish(result_for(["a"]), "node", time.time())).text.decode()
    assert sample_value(first, "aura_drift_zscore", {"instance": "b"}) is not None
    assert sample_value(second, "aura_drift_zscore", {"instance": "b"}) is None
    assert sample_value(second, "aura_drift_zscore", {"instance": "a"}) is not None
    assert sample_value(second, "aura_entities_skipped", {"reason": "missing_data"}) == 2


def test_hostile_label_values_are_escaped_and_promtool_accepts_them():
    hostile = 'evil"} 1\naura_fake{x="<img src=x onerror=alert(1)>\\'
    text = render_snapshot(SnapshotHolder().publish(result_for([hostile]), "node", time.time())).text
    assert b"\naura_fake" not in text
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr


class SlowSource(ReplaySource):
    """The replay fleet behind a slow network: every query takes `delay` seconds."""

    def __init__(self, delay: float):
        super().__init__(ReplayFleet(hosts=10))
        self.delay = delay
        self.started = asyncio.Event()

    async def query_range(self, analysis, feature, start, end, step=None):
        self.started.set()
        await asyncio.sleep(self.delay)
        return await super().query_range(analysis, feature, start, end, step)


def serve_and(scenario, source) -> None:
    serve_in_process(scenario, source, DEMO.analyses)


def test_metrics_answer_while_a_cycle_computes():
    source = SlowSource(delay=3.0)

    async def scenario(exporter, session):
        await source.started.wait()
        async with session.get("/metrics") as response:
            assert response.status == 200
            assert "aura_analysis_cycles_total" in await response.text()
        assert exporter.state.status.succeeded == set()  # the cycle is still running
        async with session.get("/-/ready") as response:
            assert response.status == 503 and "node" in await response.text()

    serve_and(scenario, source)


def test_negotiation_gzip_landing_and_health(monkeypatch):
    """Also: over plain TCP the snapshot's part of each body goes from its file to the socket by sendfile."""
    from aura_exporter.exposition import server

    sent_by_kernel = []
    real_sendfile = server._sendfile

    async def sendfile(*args):
        sent_by_kernel.append(await real_sendfile(*args))
        return sent_by_kernel[-1]

    monkeypatch.setattr(server, "_sendfile", sendfile)

    async def scenario(exporter, session):
        while "node" not in exporter.state.status.succeeded:
            await asyncio.sleep(0.05)
        exporter.state.status = exporter.state.status.failed("node", "<script>alert(1)</script>")
        async with session.get("/metrics", headers={"Accept-Encoding": "identity"}) as response:
            plain = await response.read()
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        async with session.get("/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            unzipped = gzip.decompress(await response.read())
        strip = lambda body: [s for s in body.decode().splitlines() if s.startswith("aura_betti")]  # noqa: E731
        assert strip(unzipped) == strip(plain) and strip(plain)
        async with session.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}) as response:
            body = await response.text()
            assert response.headers["Content-Type"].startswith("application/openmetrics-text")
            assert body.endswith("# EOF\n") and body.count("# EOF") == 1
        async with session.get("/") as response:
            page = await response.text()
            assert "&lt;script&gt;" in page and "<script>" not in page
        async with session.get("/-/healthy") as response:
            assert response.status == 200
        async with session.get("/-/ready") as response:
            assert response.status == 200

    serve_and(scenario, ReplaySource(ReplayFleet(hosts=10)))
    assert sent_by_kernel and all(sent_by_kernel)


@pytest.mark.parametrize("stored", [True, False], ids=["sendfile", "bytes"])
def test_a_client_that_never_reads_is_dropped_and_scrapes_go_on(monkeypatch, caplog, tmp_path, stored):
    """Whether the kernel sends the body from its file (rendered snapshots) or the exporter writes it (the
    live part, TLS)."""
    from aura_exporter.exposition import server
    from aura_exporter.exposition.render import Stored

    monkeypatch.setattr(server, "SLOW_READER_SECONDS", 1.0)
    big = b"# a body larger than the kernel's socket buffers\n" * 800_000  # 40 MB
    body = (big,)
    if stored:
        file = (tmp_path / "body").open("w+b")
        file.write(big)
        file.flush()
        body = (Stored(file, 0, len(big)),)

    async def scenario(exporter, session):
        while "node" not in exporter.state.status.succeeded:
            await asyncio.sleep(0.05)
        exporter.state.scrapes.ttl = 120.0
        exporter.state.scrapes.put(exporter.state.rendered, False, False, body)  # what a plain text scrape gets
        loop = asyncio.get_running_loop()
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.setblocking(False)
        await loop.sock_connect(stalled, ("127.0.0.1", exporter.port))
        await loop.sock_sendall(stalled, b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n")
        received = 0
        try:
            started = time.monotonic()
            while not any("did not read" in r.getMessage() for r in caplog.records):
                async with session.get("/metrics", headers={"Accept-Encoding": "gzip"}) as response:
                    assert response.status == 200  # other scrapes are served meanwhile
                assert time.monotonic() - started < 20, "the stalled client was never dropped"
                await asyncio.sleep(0.2)
            received = 0
            while chunk := await asyncio.wait_for(loop.sock_recv(stalled, 1 << 20), 5):
                received += len(chunk)
        except ConnectionResetError:
            pass
        finally:
            stalled.close()
        assert received < len(big)  # cut off, not served whole

    with caplog.at_level(logging.WARNING, logger="aura_exporter"):
        serve_and(scenario, ReplaySource(ReplayFleet(hosts=10)))
    for part in body:
        if isinstance(part, Stored):
            part.file.close()


def test_a_head_request_gets_the_headers_and_no_body():
    """HEAD /metrics on a kept-alive connection: a body would be read as the start of the next answer."""
    async def scenario(exporter, session):
        while "node" not in exporter.state.status.succeeded:
            await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", exporter.port))
        await loop.sock_sendall(sock, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
                                      b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = b""
        while chunk := await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), 5):
            received += chunk
        sock.close()
        head, rest = received.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200") and b"Content-Length:" in head
        assert rest.startswith(b"HTTP/1.1 200") and rest.endswith(b"Healthy.\n")

    serve_and(scenario, ReplaySource(ReplayFleet(hosts=10)))


async def answer(sock: socket.socket, request: bytes = b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n") -> bytes:
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, request)
    return await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)


async def connect(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


def with_listener(scenario, max_connections: int = 512, tls: ssl.SSLContext | None = None) -> None:
    """`await scenario(listener)` on an exporter's HTTP surface alone, on a loopback port."""
    from aura_exporter.exposition.server import ServerState, build_app, start_server
    from aura_exporter.exposition.status import AnalysesStatus

    async def main():
        state = ServerState(CollectorRegistry(), AnalysesStatus().running(["node"]))
        listener = await start_server(build_app(state), "127.0.0.1:0", tls, max_connections=max_connections)
        try:
            await scenario(listener)
        finally:
            await listener.close()

    asyncio.run(main())


def test_connections_beyond_the_cap_are_closed_as_they_open_and_served_again_once_one_leaves(caplog):
    async def scenario(listener):
        held = [await connect(listener.port) for _ in range(3)]
        try:
            for sock in held:  # kept alive, each holds its place
                assert (await answer(sock)).startswith(b"HTTP/1.1 200")
            extra = await connect(listener.port)
            try:
                assert await answer(extra) == b""  # closed at once
            except ConnectionResetError:
                pass
            extra.close()
            held.pop().close()
            await asyncio.sleep(0.2)  # the server notices the one that left
            held.append(await connect(listener.port))
            assert (await answer(held[-1])).startswith(b"HTTP/1.1 200")
        finally:
            for sock in held:
                sock.close()

    with caplog.at_level(logging.WARNING, logger="aura_exporter"):
        with_listener(scenario, max_connections=3)
    assert any("max-connections" in r.getMessage() for r in caplog.records)


def test_connections_that_never_finish_their_tls_handshake_count_against_the_cap(tmp_path):
    """aiohttp sees a TLS connection only once its handshake is over: clients that connect and stay silent
    would otherwise pass any cap (each held by asyncio for its handshake timeout)."""
    certs = make_certificates(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(certs["server.crt"], certs["server.key"])
    client_context = ssl.create_default_context(cafile=certs["ca.crt"])

    async def served(port: int) -> bool:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=client_context), 5)
        except (ssl.SSLError, ConnectionError):
            return False
        try:
            writer.write(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
            return (await asyncio.wait_for(reader.read(4096), 5)).startswith(b"HTTP/1.1 200")
        except (ssl.SSLError, ConnectionError):
            return False
        finally:
            writer.close()

    async def scenario(listener):
        silent = [await connect(listener.port) for _ in range(3)]  # TCP only: no handshake, ever
        await asyncio.sleep(0.2)
        assert not await served(listener.port)
        silent.pop().close()
        await asyncio.sleep(0.2)
        assert await served(listener.port)
        for sock in silent:
            sock.close()

    with_listener(scenario, max_connections=3, tls=server_context)


def test_the_kernel_holds_a_bounded_part_of_a_response_per_connection():
    """Left to itself Linux grows a connection's send buffer to 4 MB for a client that never reads."""
    from aura_exporter.exposition.server import SEND_BUFFER

    async def scenario(listener):
        sock = await connect(listener.port)
        try:
            assert (await answer(sock)).startswith(b"HTTP/1.1 200")
            (handler,) = listener.runner.server.connections
            accepted = handler.transport.get_extra_info("socket")
            assert accepted.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 2 * SEND_BUFFER  # Linux doubles it
        finally:
            sock.close()

    with_listener(scenario)


def test_a_snapshot_rendered_late_never_replaces_a_newer_one(monkeypatch):
    """Two analyses' cycles ending together: the older snapshot's render finishing last must not be served."""
    from aura_exporter import exporter as exporter_module

    async def scenario(exporter, session):
        while "node" not in exporter.state.status.succeeded:
            await asyncio.sleep(0.05)
        older = exporter.holder.latest
        newer = exporter.holder.publish(None, "node", time.time())  # a later publish: a newer version
        release = asyncio.Event()
        real = exporter_module.render_snapshot

        def render(snapshot, writer):
            if snapshot is older:  # the older one renders slowly
                asyncio.run_coroutine_threadsafe(release.wait(), loop).result(10)
            return real(snapshot, writer)

        loop = asyncio.get_running_loop()
        monkeypatch.setattr(exporter_module, "render_snapshot", render)
        slow = asyncio.create_task(exporter._render(older))
        assert await exporter._render(newer) is True
        release.set()
        assert await slow is False  # finished last, but older: not served
        assert exporter.state.rendered.snapshot is newer

    serve_and(scenario, ReplaySource(ReplayFleet(hosts=10)))


def test_a_snapshot_that_cannot_be_rendered_leaves_the_last_one_served(monkeypatch, caplog):
    """Out of file descriptors for the rendered file (a fault no real part produces on demand): the exporter
    logs it, keeps serving the snapshot before, and renders the next one."""
    import errno

    from aura_exporter.exposition import render

    async def scenario(exporter, session):
        while "node" not in exporter.state.status.succeeded:
            await asyncio.sleep(0.05)
        served = exporter.state.rendered
        real = render._anonymous_file

        def exhausted() -> int:
            raise OSError(errno.EMFILE, "Too many open files")

        monkeypatch.setattr(render, "_anonymous_file", exhausted)
        newer = exporter.holder.publish(None, "node", time.time())
        assert await exporter._render(newer) is False
        assert exporter.state.rendered is served
        async with session.get("/metrics") as response:
            assert response.status == 200 and "aura_risk_score" in await response.text()
        monkeypatch.setattr(render, "_anonymous_file", real)
        assert await exporter._render(exporter.holder.publish(None, "node", time.time())) is True

    with caplog.at_level(logging.ERROR, logger="aura_exporter"):
        serve_and(scenario, ReplaySource(ReplayFleet(hosts=10)))
    assert any("not rendered" in r.getMessage() for r in caplog.records)


def test_landing_page_lists_standouts_and_escapes_label_values():
    from aura_exporter.exposition.landing import render_landing

    hostile = "<img src=x onerror=alert(1)>"
    snapshot = SnapshotHolder().publish(result_for([hostile, "calm"]), "node", time.time())
    page = render_landing(snapshot, ["node", "other"], {"other": "<b>down</b>"}, "/metrics")
    assert hostile not in page and html_escaped(hostile) in page
    assert "&lt;b&gt;down&lt;/b&gt;" in page and "<b>" not in page
    assert "entities with the largest drift" in page and "calm" in page


def html_escaped(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def test_critical_features_read_as_the_plan_interprets_them():
    from aura_exporter.topology.summaries import describe_critical

    rows = np.array([[1, 0.2, 1.7], [0, 0.0, 0.9], [np.nan, np.nan, np.nan]])
    features = describe_critical(rows)
    assert [f.dimension for f in features] == [1, 0]
    assert features[0].persistence == pytest.approx(1.5)
    assert "circular dependency" in features[0].interpretation and "partition" in features[1].interpretation


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_the_fast_writer_matches_prometheus_client_byte_for_byte(openmetrics):
    """render_snapshot writes both formats itself (several times faster); prometheus_client's
    generate_latest over the same collector is the reference, on hostile labels, a forecast with NaN,
    ±Inf and values that Go prints with exponents, and two analyses; gzip gives the same bytes back."""
    import dataclasses

    from prometheus_client import exposition as text_format
    from prometheus_client.openmetrics import exposition as openmetrics_format

    from aura_exporter.exposition.render import _registry, body_bytes, exposition_body
    from aura_exporter.forecast.stage import Forecast

    hostile = 'evil"} 1\naura_fake{x="<img src=x onerror=alert(1)>\\'
    result = result_for(["a", hostile, "c"])
    rng = np.random.default_rng(5)
    quantiles = rng.normal(size=(3, 5, 4, 3)) * np.array([1.0, 1e9, 123456789.5, 1e-7, 42.0])[None, :, None, None]
    quantiles[0, 0, 0, :] = [np.nan, np.inf, -np.inf]
    forecast = Forecast((900.0, 3600.0, 7200.0, 14400.0), quantiles, np.full((3, 5), np.nan),
                        np.where(rng.random((3, 5)) > 0.5, 3600.0, np.nan), rng.random((3, 5)))
    with_forecast = dataclasses.replace(result, forecast=forecast, model_ready=True)
    other = dataclasses.replace(result_for(["x"]), analysis=dataclasses.replace(ANALYSIS, name="other"))
    holder = SnapshotHolder()
    holder.publish(with_forecast, "node", time.time())
    snapshot = holder.publish(other, "other", time.time())
    rendered = render_snapshot(snapshot)
    live = CollectorRegistry()
    Gauge("aura_live_example", "A live metric.", registry=live).set(1)
    fast = body_bytes(exposition_body(rendered, live, openmetrics, use_gzip=False))
    reference = (openmetrics_format if openmetrics else text_format).generate_latest
    assert fast == reference(_registry(snapshot))[: -len(b"# EOF\n") if openmetrics else None] + reference(live)
    assert gzip.decompress(body_bytes(exposition_body(rendered, live, openmetrics, use_gzip=True))) == fast
    assert b"e+09" in fast and b"aura_forecast{" in fast and b'analysis="other"' in fast


def test_a_writer_rewrites_only_the_analyses_whose_result_changed(monkeypatch):
    """The exporter's writer remembers each analysis' lines: its text is a fresh writer's for every snapshot
    (a result replaced, an analysis added, one gone), and an analysis whose result did not change is not
    written again."""
    import dataclasses

    from aura_exporter.exposition import collector
    from aura_exporter.exposition.collector import TextWriter, text_exposition

    written = []
    real = collector.result_lines
    monkeypatch.setattr(collector, "result_lines", lambda result: written.append(result.analysis.name) or real(result))
    other = lambda entities: dataclasses.replace(  # noqa: E731
        result_for(entities), analysis=dataclasses.replace(ANALYSIS, name="other"))
    holder, writer = SnapshotHolder(), TextWriter()
    steps = [(result_for(["a", "b"]), "node"), (other(["x"]), "other"), (result_for(["a"]), "node"),
             (other(["y", "z"]), "other"), (None, "other")]
    for result, name in steps:
        snapshot = holder.publish(result, name, time.time())
        if result is None:  # an analysis dropped by a reload
            snapshot = dataclasses.replace(snapshot, results={"node": snapshot.results["node"]})
        written.clear()
        assert writer.write(snapshot) == text_exposition(snapshot)
        assert written.count("node") == (2 if name == "node" else 1)  # the fresh writer's, and the writer's own
    assert b'instance="y"' not in writer.write(snapshot)


def test_scrapes_within_the_ttl_share_one_body_and_a_new_snapshot_is_never_served_late():
    from aura_exporter.exposition.render import ScrapeCache, exposition_body

    now = [100.0]
    cache = ScrapeCache(ttl=0.5, clock=lambda: now[0])
    live = CollectorRegistry()
    holder = SnapshotHolder()
    first = render_snapshot(holder.publish(result_for(["a"]), "node", time.time()))
    cache.put(first, False, True, exposition_body(first, live, False, True))
    assert cache.get(first, False, True) is not None and cache.get(first, False, False) is None
    now[0] += 0.5
    assert cache.get(first, False, True) is None  # the live part is at most ttl old
    second = render_snapshot(holder.publish(result_for(["b"]), "node", time.time()))
    assert cache.get(second, False, True) is None  # a new cycle's result is served at once


def test_a_status_a_handler_reads_never_changes_under_it():
    """The exporter publishes a new AnalysesStatus as cycles end; one a handler holds stays as it was."""
    from aura_exporter.exposition.status import AnalysesStatus

    status = AnalysesStatus().running(["a", "b"])
    failed = status.failed("a", "down")
    served = failed.served("a")
    assert status.last_errors == {} and failed.last_errors == {"a": "down"} and failed.succeeded == frozenset()
    assert served.succeeded == {"a"} and served.last_errors == {} and served.not_ready() == ["b"]
    assert served.running(["b"]).succeeded == frozenset() and served.running(["b"]).names == ("b",)
    with pytest.raises(TypeError):
        failed.last_errors["b"] = "x"  # type: ignore[index]
