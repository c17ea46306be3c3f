"""The live cycles' PromQL HTTP API client (Prometheus, Thanos Query, Mimir, VictoriaMetrics) on aiohttp.

Bounded concurrency and a cap on series per query; headers, credentials, TLS, retries (never on a
4xx other than 429: the query itself is wrong) and range pieces as sources/wire.py says for both clients.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aiohttp

from aura_exporter.config import AnyAnalysis, Feature, PrometheusConfig
from aura_exporter.sources.base import QueryError, RangeResult, Series, merge_pieces
from aura_exporter.sources.parse import parse_matrix
from aura_exporter.sources.wire import RETRY_STATUSES, request_headers, retry_delay, split_range, ssl_context

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class PromQLSource:
    """The Source of a live PromQL API."""

    def __init__(self, config: PrometheusConfig, sleep: Sleep = asyncio.sleep):
        self._config = config
        self._sleep = sleep
        self._semaphore = asyncio.Semaphore(config.max_concurrency)
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=ssl_context(self._config),
                                             limit=self._config.max_concurrency)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self._config.timeout),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def query_range(self, analysis: AnyAnalysis, feature: Feature, start: float, end: float,
                          step: float | None = None) -> RangeResult:
        step = step or analysis.step
        pieces = split_range(start, end, step, self._config.max_points_per_query)
        answers = await asyncio.gather(
            *(self._query_piece(analysis, feature, s, e, step) for s, e in pieces)
        )
        series = answers[0] if len(answers) == 1 else merge_pieces(list(answers))
        return RangeResult(feature=feature.name, series=tuple(series))

    async def _query_piece(self, analysis: AnyAnalysis, feature: Feature, start: float, end: float,
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
                delay = retry_delay(attempt, err.retry_after)
                log.debug("retrying query", extra={"path": path, "reason": err.reason, "delay": round(delay, 3)})
                attempt += 1
                await self._sleep(delay)

    async def _post(self, path: str, params: dict[str, str]) -> bytes:
        url = self._config.url + path
        headers = request_headers(self._config)
        async with self._semaphore:
            try:
                async with self._get_session().post(url, data=params, headers=headers,
                                                    server_hostname=self._config.tls.server_name) as response:
                    body = await response.read()
                    status, retry_after = response.status, response.headers.get("Retry-After")
            except TimeoutError as err:
                raise QueryError("timeout", f"no answer from {url} within {self._config.timeout:g}s") from err
            except (aiohttp.ClientError, OSError) as err:
                raise QueryError("unreachable", f"cannot reach {url}: {err}") from err
        if status in RETRY_STATUSES or status >= 500:
            raise QueryError("server_error", f"{url} answered HTTP {status}: {_excerpt(body)}", retry_after)
        if status >= 400 and status != 422 and status != 400:
            raise QueryError("bad_request", f"{url} answered HTTP {status}: {_excerpt(body)}")
        # 400/422 carry Prometheus' own error JSON, which parse_matrix reports.
        return body


def _excerpt(body: bytes) -> str:
    return body[:200].decode("utf-8", "replace").replace("\n", " ")
