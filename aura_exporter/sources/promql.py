"""A PromQL HTTP API client (Prometheus, Thanos Query, Mimir, VictoriaMetrics) on aiohttp.

Bounded concurrency, a timeout per request, retries with jittered exponential backoff on 5xx,
429, timeouts and connection errors (never on other 4xx: the query itself is wrong), ranges split
under Prometheus' 11,000-points-per-series limit, and a cap on series per query.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import ssl
from collections.abc import Awaitable, Callable

import aiohttp

from aura_exporter.config import Analysis, Feature, PrometheusConfig
from aura_exporter.sources.base import QueryError, RangeResult, Series, merge_pieces
from aura_exporter.sources.parse import parse_matrix

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


def build_ssl_context(config: PrometheusConfig) -> ssl.SSLContext:
    tls = config.tls
    context = ssl.create_default_context(cafile=tls.ca_file)
    if tls.cert_file and tls.key_file:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def split_range(start: float, end: float, step: float, max_points: int) -> list[tuple[float, float]]:
    """Consecutive [start, end] pieces on the step grid, each with at most max_points points."""
    pieces = []
    span = (max_points - 1) * step
    while start <= end:
        piece_end = min(end, start + span)
        pieces.append((start, piece_end))
        start = piece_end + step
    return pieces


class PromQLSource:
    """The Source of a live PromQL API."""

    def __init__(self, config: PrometheusConfig, sleep: Sleep = asyncio.sleep):
        self._config = config
        self._sleep = sleep
        self._semaphore = asyncio.Semaphore(config.max_concurrency)
        self._session: aiohttp.ClientSession | None = None

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "aura-exporter"}
        headers.update(dict(self._config.headers))
        if self._config.basic_auth:
            credentials = f"{self._config.basic_auth.username}:{self._config.basic_auth.password}"
            headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
        if self._config.bearer_token_file:
            # Read on every request: Kubernetes rotates projected service-account tokens.
            try:
                with open(self._config.bearer_token_file, encoding="utf-8") as handle:
                    headers["Authorization"] = f"Bearer {handle.read().strip()}"
            except OSError as err:
                raise QueryError("credentials", f"cannot read bearer_token_file: {err.strerror}") from err
        return headers

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=build_ssl_context(self._config),
                                             limit=self._config.max_concurrency)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self._config.timeout),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def query_range(self, analysis: Analysis, feature: Feature, start: float, end: float,
                          step: float | None = None) -> RangeResult:
        step = step or analysis.step
        pieces = split_range(start, end, step, self._config.max_points_per_query)
        answers = await asyncio.gather(
            *(self._query_piece(analysis, feature, s, e, step) for s, e in pieces)
        )
        series = answers[0] if len(answers) == 1 else merge_pieces(list(answers))
        return RangeResult(feature=feature.name, series=tuple(series))

    async def _query_piece(self, analysis: Analysis, feature: Feature, start: float, end: float,
                           step: float) -> list[Series]:
        params = {"query": feature.query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}",
                  "timeout": f"{self._config.timeout:g}s"}
        body = await self._post_with_retries("/api/v1/query_range", params)
        series = parse_matrix(body)
        if len(series) > analysis.max_series:
            raise QueryError("too_many_series",
                             f"feature {feature.name!r} returned {len(series)} series, over max_series "
                             f"{analysis.max_series}")
        return series

    async def _post_with_retries(self, path: str, params: dict[str, str]) -> bytes:
        attempt = 0
        while True:
            try:
                return await self._post(path, params)
            except QueryError as err:
                retryable = err.reason in ("timeout", "unreachable", "server_error")
                if not retryable or attempt >= self._config.retries:
                    raise
                delay = min(10.0, 0.25 * 2**attempt) * (0.5 + random.random())
                log.debug("retrying query", extra={"path": path, "reason": err.reason, "delay": round(delay, 3)})
                attempt += 1
                await self._sleep(delay)

    async def _post(self, path: str, params: dict[str, str]) -> bytes:
        url = self._config.url + path
        headers = self._headers()
        async with self._semaphore:
            try:
                async with self._get_session().post(url, data=params, headers=headers) as response:
                    body = await response.read()
                    status = response.status
            except TimeoutError as err:
                raise QueryError("timeout", f"no answer from {url} within {self._config.timeout:g}s") from err
            except (aiohttp.ClientError, OSError) as err:
                raise QueryError("unreachable", f"cannot reach {url}: {err}") from err
        if status == 429 or status >= 500:
            raise QueryError("server_error", f"{url} answered HTTP {status}: {_excerpt(body)}")
        if status >= 400 and status != 422 and status != 400:
            raise QueryError("bad_request", f"{url} answered HTTP {status}: {_excerpt(body)}")
        # 400/422 carry Prometheus' own error JSON, which parse_matrix reports.
        return body


def _excerpt(body: bytes) -> str:
    return body[:200].decode("utf-8", "replace").replace("\n", " ")
