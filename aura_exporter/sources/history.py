"""Long history for training and for learning at start-up: days of an analysis' features on its step grid.

From a PromQL API through prometheus-api-client, in chunks (Prometheus caps a range query at
11,000 points per series) with progress; or from the replay fleet. Short gaps are filled as in
the windows stage; longer ones stay NaN, and training leaves out samples that touch them.
HistorySource answers the cycle's queries from a History, and never from beyond the asked range.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from aura_exporter.config import Analysis, Feature, PrometheusConfig
from aura_exporter.sources.base import QueryError, RangeResult, Series, merge_pieces
from aura_exporter.sources.parse import parse_series
from aura_exporter.sources.replay import ReplayFleet, ReplaySource
from aura_exporter.windows import EntityKey, fill_gaps, place_series

Progress = Callable[[int, int], None]
MAX_POINTS = 10_000


@dataclass(frozen=True)
class History:
    entities: tuple[EntityKey, ...]
    timestamps: np.ndarray  # [N] step grid
    values: np.ndarray  # [E, N, F], NaN where missing


HistoryLoader = Callable[[Analysis, float, float], History]  # the features of an analysis over [start, end]


def history_grid(analysis: Analysis, start: float, end: float) -> np.ndarray:
    first = np.ceil(start / analysis.step) * analysis.step
    return np.arange(first, end + analysis.step / 2, analysis.step)


def align_history(analysis: Analysis, results: list[RangeResult], grid: np.ndarray) -> History:
    keys, values, _ = place_series(analysis, results, grid)
    filled, _ = fill_gaps(values, analysis.max_gap_steps, max_missing_ratio=1.0)
    return History(tuple(keys), grid, filled)


def replay_history(fleet: ReplayFleet, analysis: Analysis, start: float, end: float) -> History:
    grid = history_grid(analysis, start, end)
    source = ReplaySource(fleet)
    results = [source.range_now(analysis, feature, grid) for feature in analysis.features]
    return align_history(analysis, results, grid)


def prometheus_history(config: PrometheusConfig, analysis: Analysis, start: float, end: float,
                       progress: Progress | None = None) -> History:
    """Every feature of the analysis over [start, end], chunk by chunk, through prometheus-api-client."""
    from prometheus_api_client import PrometheusConnect

    client = PrometheusConnect(url=config.url, headers=_headers(config), disable_ssl=config.tls.insecure_skip_verify,
                               session=_session(config), timeout=int(config.timeout))
    grid = history_grid(analysis, start, end)
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
    return align_history(analysis, results, grid)


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


class HistorySource:
    """A Source that answers from recorded history and never from beyond the asked range: the cycle asks
    `query_range(start, end)` and gets the history sliced to [start, end], so a cycle at time t cannot
    see a sample after t (the no-look-ahead guarantee of backtests and of learning at start-up)."""

    def __init__(self, history: History, analysis: Analysis):
        self.history = history
        self.label_names = analysis.entity_labels
        self.columns = {f.name: i for i, f in enumerate(analysis.features)}

    async def query_range(self, analysis: Analysis, feature: Feature, start: float, end: float,
                          step: float | None = None) -> RangeResult:
        grid = self.history.timestamps
        first, last = np.searchsorted(grid, [start - 1e-6, end + 1e-6])
        times = grid[first:last]
        stride = max(1, int(round((step or analysis.step) / analysis.step)))
        keep = np.flatnonzero(np.rint((end - times) / analysis.step).astype(np.int64) % stride == 0)
        column = self.columns.get(feature.name, 0)
        series = []
        for i, key in enumerate(self.history.entities):
            values = self.history.values[i, first:last, column][keep]
            present = ~np.isnan(values)
            if present.any():
                series.append(Series(dict(zip(self.label_names, key, strict=True)), times[keep][present],
                                     values[present]))
        return RangeResult(feature.name, tuple(series))

    async def close(self) -> None:
        return None
