"""The HTTP surface: /metrics, a landing page, /-/healthy, /-/ready and the /api/v1 JSON API, on aiohttp.

Handlers only read what the cycles already published; none of them computes an analysis.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CollectorRegistry

from aura_exporter.exposition.api import PREFIX, Api, json_errors
from aura_exporter.exposition.crosssite import cross_site, refusal
from aura_exporter.exposition.feed import DecisionFeed
from aura_exporter.exposition.landing import render_landing
from aura_exporter.exposition.render import (
    OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    Body,
    Rendered,
    ScrapeCache,
    Stored,
    exposition_body,
    render_snapshot,
    wants_openmetrics,
)
from aura_exporter.exposition.status import AnalysesStatus
from aura_exporter.exposition.ui import RiskHistory, Ui
from aura_exporter.exposition.webconfig import WebConfigFile, basic_auth
from aura_exporter.snapshot import Snapshot
from aura_exporter.sources.kubernetes import ClusterTopology, ClusterWatcher

log = logging.getLogger(__name__)

CHUNK = 64 * 1024  # aiohttp waits for the socket to drain past 64 KiB: one chunk per wait
SLOW_READER_SECONDS = 10.0  # Prometheus' default scrape timeout: a scrape slower than that has failed anyway
MAX_CONNECTIONS = 512  # Prometheus' --web.max-connections default
# Bytes of a response the kernel holds per connection (it doubles the figure for its bookkeeping). Left to
# itself it grows a connection's buffer to 4 MB, so a client that asks for a plain /metrics body and never
# reads pins all of it; with this, about 0.5 MB, while a reader on a LAN still gets hundreds of MB a second.
SEND_BUFFER = 256 * 1024


@dataclass
class ServerState:
    """What the HTTP layer reads. The exporter replaces `rendered` and `status` as cycles end (one
    publish step each); handlers never see a half-updated value."""

    live: CollectorRegistry
    status: AnalysesStatus = field(default_factory=AnalysesStatus)
    rendered: Rendered = field(default_factory=lambda: render_snapshot(Snapshot()))
    feed: DecisionFeed = field(default_factory=DecisionFeed)
    history: RiskHistory = field(default_factory=RiskHistory)
    watcher: ClusterWatcher | None = None  # Kubernetes enrichment, when enabled
    # Reads the configuration again (its problems); None unless --web.enable-lifecycle opened /-/reload.
    reload: Callable[[], Awaitable[list[str]]] | None = None
    scrapes: ScrapeCache = field(default_factory=ScrapeCache)

    def cluster(self) -> ClusterTopology | None:
        return self.watcher.latest if self.watcher else None



def build_app(state: ServerState, telemetry_path: str = "/metrics", web_config: WebConfigFile | None = None,
              probe_token: str | None = None) -> web.Application:
    guard = [basic_auth(lambda: web_config.latest().users, probe_token)] if web_config is not None else []
    app = web.Application(middlewares=[*guard, json_errors])
    handlers = _Handlers(state, telemetry_path)
    Api(lambda: state.rendered.snapshot, lambda: state.status, state.cluster).routes(app)
    app.router.add_get(f"{PREFIX}/decisions", state.feed.handle)
    Ui(lambda: state.rendered.snapshot, state.history, state.cluster).routes(app)
    app.on_shutdown.append(state.feed.close_all)
    app.router.add_get(telemetry_path, handlers.metrics)
    app.router.add_get("/", handlers.landing)
    app.router.add_get("/-/healthy", handlers.healthy)
    app.router.add_get("/-/ready", handlers.ready)
    app.router.add_route("POST", "/-/reload", handlers.reload)
    app.router.add_route("PUT", "/-/reload", handlers.reload)
    return app


class _Handlers:
    def __init__(self, state: ServerState, telemetry_path: str):
        self.state = state
        self.telemetry_path = telemetry_path

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        openmetrics = wants_openmetrics(request.headers.get("Accept", ""))
        use_gzip = "gzip" in request.headers.get("Accept-Encoding", "")
        body = self.body(openmetrics, use_gzip)
        response = web.StreamResponse()
        response.headers["Content-Type"] = OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE
        if use_gzip:
            response.headers["Content-Encoding"] = "gzip"
        response.headers["Vary"] = "Accept, Accept-Encoding"
        response.content_length = sum(len(part) for part in body)
        await response.prepare(request)
        await send_or_drop(request, response, body)
        return response

    def body(self, openmetrics: bool, use_gzip: bool) -> Body:
        """The current snapshot's exposition. Only the body outlives this call: a scrape that takes its time
        (a slow or idle client, up to SLOW_READER_SECONDS) pins the bytes it is sent, not the cycle's whole
        snapshot (windows, diagrams, forecasts) beside them."""
        rendered = self.state.rendered
        body = self.state.scrapes.get(rendered, openmetrics, use_gzip)
        if body is None:
            body = exposition_body(rendered, self.state.live, openmetrics, use_gzip)
            self.state.scrapes.put(rendered, openmetrics, use_gzip, body)
        return body

    async def healthy(self, request: web.Request) -> web.Response:
        return web.Response(text="Healthy.\n")

    async def ready(self, request: web.Request) -> web.Response:
        waiting = self.state.status.not_ready()
        if waiting:
            return web.Response(status=503, text="Not ready: no complete cycle yet for analysis "
                                + ", ".join(waiting) + ".\n")
        return web.Response(text="Ready.\n")

    async def reload(self, request: web.Request) -> web.Response:
        """Like Prometheus' /-/reload: 403 unless --web.enable-lifecycle, 200 when the new configuration took
        effect, else 500. The problems go to the log only: they quote the file, which may hold secrets."""
        if self.state.reload is None:
            return web.Response(status=403, text="Lifecycle API is not enabled.\n")
        if cross_site(request):
            return refusal()
        problems = await self.state.reload()
        if problems:
            return web.Response(status=500, text=f"failed to reload config: {len(problems)} problem(s), in the "
                                                 "exporter's log; the previous configuration keeps running.\n")
        return web.Response(text="Reloaded.\n")

    async def landing(self, request: web.Request) -> web.Response:
        status = self.state.status
        page = render_landing(self.state.rendered.snapshot, status.names, status.last_errors,
                              self.telemetry_path)
        return web.Response(text=page, content_type="text/html")


async def send_or_drop(request: web.Request, response: web.StreamResponse, body: Body) -> None:
    """Write the parts of `body` a CHUNK at a time, each sent within SLOW_READER_SECONDS or the connection is
    dropped: a client that asks and never reads holds its connection only that long. A rendered part goes
    from its file to the socket in the kernel (sendfile) where the connection allows (plain TCP), so the
    exporter copies nothing per scrape; else (TLS) a chunk or two at a time pass through its memory."""
    loop = asyncio.get_running_loop()
    kernel = request.transport is not None and request.transport.get_extra_info("sslcontext") is None
    if request.method == "HEAD":  # its headers only: a body would be read as the next response's start
        body = ()
    try:
        for part in body:
            for start in range(0, len(part), CHUNK):
                async with asyncio.timeout(SLOW_READER_SECONDS):
                    if isinstance(part, Stored) and kernel:
                        kernel = await _sendfile(loop, request, part, start)
                        if kernel:
                            continue
                    await response.write(_chunk(part, start))
        await response.write_eof()
    except TimeoutError:
        log.warning("dropped a client that did not read its response", extra={"path": request.path})
        if request.transport is not None:
            request.transport.abort()
    except ConnectionError:  # the client went away mid-body: nothing is left to do
        log.debug("a client left before its response was sent", extra={"path": request.path})


async def _sendfile(loop: asyncio.AbstractEventLoop, request: web.Request, part: Stored, start: int) -> bool:
    """Send part[start:start + CHUNK] by sendfile; False when this connection cannot (then nothing was sent)."""
    if request.transport is None or request.transport.is_closing():
        raise ConnectionResetError("the client went away")
    try:
        # Not asyncio's fallback: it reads at the file's shared position, which concurrent scrapes would move.
        await loop.sendfile(request.transport, part.file, part.offset + start, min(CHUNK, len(part) - start),
                            fallback=False)
    except asyncio.SendfileNotAvailableError:
        return False
    return True


def _chunk(part: bytes | Stored, start: int) -> bytes | memoryview:
    if isinstance(part, Stored):
        return part.read(start, CHUNK)
    return memoryview(part)[start:start + CHUNK]


class _Refused(asyncio.Protocol):
    """A connection beyond the cap: closed as it opens. (Go's LimitListener, behind Prometheus'
    --web.max-connections, leaves it waiting in the kernel's backlog instead; asyncio cannot pause accepting.)"""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


@dataclass
class ConnectionCap:
    """The socket's protocol factory: aiohttp's request handling for at most `limit` open connections."""

    handling: web.Server
    limit: int
    refused: int = 0
    server: asyncio.Server | None = None  # the listening server, once created

    def open_connections(self) -> int:
        """Every accepted connection, its TLS handshake done or not. aiohttp lists a connection only once the
        handshake is over, so clients that never finish one would pass the cap; asyncio's server counts its
        transports from the accept (a private count, the same since Python 3.4; aiohttp's list without it)."""
        counted = getattr(self.server, "_active_count", None)
        return counted if isinstance(counted, int) else len(self.handling.connections)

    def __call__(self) -> asyncio.BaseProtocol:
        if self.open_connections() < self.limit:
            return self.handling()
        self.refused += 1
        if self.refused in (1, 10, 100) or self.refused % 1000 == 0:  # a flood gets a few lines, not one per try
            log.warning("refused connections beyond --web.max-connections",
                        extra={"max_connections": self.limit, "refused": self.refused})
        return _Refused()


@dataclass
class Listener:
    runner: web.AppRunner
    server: asyncio.Server

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.server.close()
        await self.runner.cleanup()


async def start_server(app: web.Application, listen_address: str, tls: ssl.SSLContext | None = None,
                       max_connections: int = MAX_CONNECTIONS) -> Listener:
    """Start serving on 'host:port' (':port' for every interface), over TLS when given."""
    host, _, port = listen_address.rpartition(":")
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    assert runner.server is not None  # made by setup()
    cap = ConnectionCap(runner.server, max_connections)
    server = await asyncio.get_running_loop().create_server(
        cap, host.strip("[]") or None, int(port), ssl=tls, reuse_address=True,
        ssl_handshake_timeout=SLOW_READER_SECONDS if tls else None)  # asyncio waits 60 s for a silent client
    cap.server = server
    for listening in server.sockets:  # the connections it accepts inherit the size
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
    return Listener(runner, server)
