"""Long history from a PromQL API for training and for learning at start-up: every feature's series over
days, through prometheus-api-client, in pieces of at most `prometheus.max_points_per_query` points per
series and MOST_SAMPLES_PER_PIECE samples in all, with progress; or from the replay fleet. Headers, TLS
and retries are those of sources/wire.py. Placing the series on the step grid is the windows' job
(aura_exporter/history.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from aura_exporter.config import Analysis, PrometheusConfig
from aura_exporter.progress import Progress
from aura_exporter.sources.base import QueryError, RangeResult, Series, merge_pieces
from aura_exporter.sources.parse import parse_series
from aura_exporter.sources.replay import ReplayFleet, ReplaySource
from aura_exporter.sources.wire import (
    BACKOFF_FIRST,
    BACKOFF_MOST,
    RETRY_AFTER_MOST,
    RETRY_STATUSES,
    request_headers,
    ssl_context,
)


def history_grid(analysis: Analysis, start: float, end: float) -> np.ndarray:
    first = np.ceil(start / analysis.step) * analysis.step
    return np.arange(first, end + analysis.step / 2, analysis.step)


# Samples (series x points) one request of a long range asks for, at most: prometheus-api-client holds an answer
# as Python lists, some 150 bytes a sample, so 2 M is about 300 MB however large the fleet. The first piece
# guesses FIRST_GUESS_SERIES series; each answer then sizes the next (within prometheus.max_points_per_query).
MOST_SAMPLES_PER_PIECE = 2_000_000
FIRST_GUESS_SERIES = 1000

Keep = Callable[[list[Series]], list[Series]]  # the series of an answer worth keeping (all, or a sample)


def keep_all(series: list[Series]) -> list[Series]:
    return series


def replay_results(fleet: ReplayFleet, analysis: Analysis, grid: np.ndarray,
                   keep: Keep = keep_all) -> list[RangeResult]:
    """Every feature of the analysis over `grid`; each feature's answer is cut to what `keep` keeps before the next
    is made."""
    source = ReplaySource(fleet)
    return [RangeResult(feature.name, _kept(list(source.range_now(analysis, feature, grid).series), keep))
            for feature in analysis.features]


def _kept(series: list[Series], keep: Keep) -> tuple[Series, ...]:
    """What `keep` keeps of one replay answer; a part is copied out of the answer's array, which can then go."""
    kept = keep(series)
    if len(kept) == len(series):
        return tuple(series)
    return tuple(Series(s.labels, s.timestamps, s.values.copy()) for s in kept)


def prometheus_results(config: PrometheusConfig, analysis: Analysis, grid: np.ndarray,
                       progress: Progress | None = None, keep: Keep = keep_all) -> list[RangeResult]:
    """Every feature of the analysis over `grid`, piece by piece, through prometheus-api-client; each piece's
    series are cut to what `keep` keeps as it arrives."""
    from prometheus_api_client import PrometheusConnect

    session = requests.Session()
    client = PrometheusConnect(url=config.url, headers=request_headers(config), session=session,
                               timeout=config.timeout)
    # after the client: it mounts an adapter of its own on the URL, without the TLS name and Retry-After cap
    session.mount(config.url, _Adapter(config))
    session.verify = not config.tls.insecure_skip_verify
    first, last, step = float(grid[0]), float(grid[-1]), analysis.step
    points = max(2, min(config.max_points_per_query, MOST_SAMPLES_PER_PIECE // FIRST_GUESS_SERIES))
    done, results = 0, []
    for number, feature in enumerate(analysis.features):
        chunks, start = [], first
        while start <= last:
            end = min(last, start + (points - 1) * step)
            answer = _query_piece(client, config, feature.query, start, end, step)
            points = max(2, min(config.max_points_per_query, MOST_SAMPLES_PER_PIECE // max(len(answer), 1)))
            chunks.append(keep(answer))
            del answer  # what `keep` left out goes before the next request, not after it
            done, start = done + 1, end + step
            if progress:  # pieces so far and still to come at the size the last answer asked for
                to_come = _pieces(start, last, step, points) + (len(analysis.features) - number - 1) * _pieces(
                    first, last, step, points)
                progress(done, done + to_come)
        results.append(RangeResult(feature.name, tuple(merge_pieces(chunks))))
    return results


def _pieces(start: float, last: float, step: float, points: int) -> int:
    """How many pieces of `points` steps [start, last] takes."""
    return 0 if start > last else int(np.ceil((round((last - start) / step) + 1) / points))


def _query_piece(client, config: PrometheusConfig, query: str, start: float, end: float, step: float) -> list[Series]:
    from prometheus_api_client import PrometheusApiClientException

    try:
        answer = client.custom_query_range(query, start_time=dt.datetime.fromtimestamp(start, dt.UTC),
                                           end_time=dt.datetime.fromtimestamp(end, dt.UTC), step=f"{step:g}s",
                                           params={"timeout": f"{config.timeout:g}s"})
    except requests.Timeout as err:
        raise QueryError("timeout", f"history query got no answer within {config.timeout:g}s") from err
    except requests.RequestException as err:
        raise QueryError("unreachable", f"history query failed: {err}") from err
    except PrometheusApiClientException as err:
        status = _status_of(str(err))
        raise QueryError("server_error" if status in RETRY_STATUSES or status >= 500 else "bad_request",
                         f"history query failed: {err}") from err
    except ValueError as err:  # the body is not JSON
        raise QueryError("invalid_response", f"history answer is not JSON: {err}") from err
    if not isinstance(answer, list):
        raise QueryError("invalid_response", "history answer is not a list of series")
    return [parse_series(item) for item in answer]


def _status_of(message: str) -> int:
    """The HTTP status in prometheus-api-client's error message ("HTTP Status Code 503 (...)")."""
    words = message.split()
    return next((int(w) for w in words if w.isdigit() and len(w) == 3), 0)


class _Retry(Retry):
    """urllib3's retries on the policy of sources/wire.py: Retry-After honoured up to its cap."""

    def get_retry_after(self, response) -> float | None:
        wait = super().get_retry_after(response)
        return None if wait is None else min(wait, RETRY_AFTER_MOST)


class _Adapter(HTTPAdapter):
    """requests' transport with the TLS of tls_config (server_name included) and the shared retries."""

    def __init__(self, config: PrometheusConfig):
        self._context = ssl_context(config)
        self._server_name = config.tls.server_name
        super().__init__(max_retries=_Retry(total=config.retries, status_forcelist=RETRY_STATUSES,
                                            allowed_methods=None, backoff_factor=BACKOFF_FIRST,
                                            backoff_max=BACKOFF_MOST, backoff_jitter=BACKOFF_FIRST,
                                            raise_on_status=False))

    def init_poolmanager(self, *args, **kwargs):
        kwargs["ssl_context"] = self._context
        if self._server_name:
            kwargs["server_hostname"] = kwargs["assert_hostname"] = self._server_name
        super().init_poolmanager(*args, **kwargs)

    def cert_verify(self, conn, url, verify, cert):
        """The CA and client certificate are the context's; requests' own bundle must not replace them."""
        return None
