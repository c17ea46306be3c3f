"""Long history from a PromQL API for training and for learning at start-up: every feature's series over
days, through prometheus-api-client, in chunks (Prometheus caps a range query at 11,000 points per
series) with progress, or from the replay fleet. Placing them on the step grid is the windows' job
(aura_exporter/history.py)."""

from __future__ import annotations

import datetime as dt

import numpy as np

from aura_exporter.config import Analysis, PrometheusConfig
from aura_exporter.progress import Progress
from aura_exporter.sources.base import QueryError, RangeResult, merge_pieces
from aura_exporter.sources.parse import parse_series
from aura_exporter.sources.replay import ReplayFleet, ReplaySource

MAX_POINTS = 10_000


def history_grid(analysis: Analysis, start: float, end: float) -> np.ndarray:
    first = np.ceil(start / analysis.step) * analysis.step
    return np.arange(first, end + analysis.step / 2, analysis.step)


def replay_results(fleet: ReplayFleet, analysis: Analysis, grid: np.ndarray) -> list[RangeResult]:
    source = ReplaySource(fleet)
    return [source.range_now(analysis, feature, grid) for feature in analysis.features]


def prometheus_results(config: PrometheusConfig, analysis: Analysis, grid: np.ndarray,
                       progress: Progress | None = None) -> list[RangeResult]:
    """Every feature of the analysis over `grid`, chunk by chunk, through prometheus-api-client."""
    from prometheus_api_client import PrometheusConnect

    client = PrometheusConnect(url=config.url, headers=_headers(config), disable_ssl=config.tls.insecure_skip_verify,
                               session=_session(config), timeout=int(config.timeout))
    chunk = analysis.step * MAX_POINTS
    pieces = [(s, min(s + chunk - analysis.step, grid[-1])) for s in np.arange(grid[0], grid[-1] + 1, chunk)]
    total, done = len(pieces) * len(analysis.features), 0
    results = []
    for feature in analysis.features:
        chunks = []
        for piece_start, piece_end in pieces:
            chunks.append(_query_chunk(client, feature.query, piece_start, piece_end, analysis.step))
            done += 1
            if progress:
                progress(done, total)
        results.append(RangeResult(feature.name, tuple(merge_pieces(chunks))))
    return results


def _query_chunk(client, query: str, start: float, end: float, step: float) -> list:
    try:
        answer = client.custom_query_range(query, start_time=dt.datetime.fromtimestamp(start, dt.UTC),
                                           end_time=dt.datetime.fromtimestamp(end, dt.UTC), step=f"{step:g}s")
    except Exception as err:  # the client raises requests' and its own exceptions
        raise QueryError("unreachable" if "connect" in str(err).lower() else "bad_request",
                         f"history query failed: {err}") from err
    if not isinstance(answer, list):
        raise QueryError("invalid_response", "history answer is not a list of series")
    return [parse_series(item) for item in answer]


def _headers(config: PrometheusConfig) -> dict[str, str]:
    headers = dict(config.headers)
    if config.bearer_token_file:
        with open(config.bearer_token_file, encoding="utf-8") as handle:
            headers["Authorization"] = f"Bearer {handle.read().strip()}"
    return headers


def _session(config: PrometheusConfig):
    import requests

    session = requests.Session()
    if config.basic_auth:
        session.auth = (config.basic_auth.username, config.basic_auth.password)
    if config.tls.ca_file:
        session.verify = config.tls.ca_file
    if config.tls.insecure_skip_verify:
        session.verify = False
    if config.tls.cert_file and config.tls.key_file:
        session.cert = (config.tls.cert_file, config.tls.key_file)
    return session
