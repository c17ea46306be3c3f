"""How the exporter talks to a PromQL API, in one place for its two clients.

The live cycles query through aiohttp (sources/promql.py), history and training through
prometheus-api-client over requests (sources/history.py). Both take from here their headers and
credentials, their TLS (CA, client certificate, `server_name`, skip-verify), their timeout, their
retries (on 429, 5xx, timeouts and connection errors; after the server's Retry-After when it sends
one) and the pieces a long range is split into (`prometheus.max_points_per_query`), so the two
cannot drift apart.
"""

from __future__ import annotations

import base64
import email.utils
import random
import ssl
import time

from aura_exporter.config import PrometheusConfig
from aura_exporter.sources.base import QueryError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BACKOFF_FIRST = 0.25  # seconds before the first retry, doubled for each next one...
BACKOFF_MOST = 10.0  # ...up to this
RETRY_AFTER_MOST = 60.0  # a longer Retry-After is a server that is down for longer than a retry is worth


def request_headers(config: PrometheusConfig) -> dict[str, str]:
    """Every request's headers; a bearer token file is read each time (Kubernetes rotates them)."""
    headers = {"Accept": "application/json", "User-Agent": "aura-exporter"}
    headers.update(dict(config.headers))
    if config.basic_auth:
        credentials = f"{config.basic_auth.username}:{config.basic_auth.password}"
        headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
    if config.bearer_token_file:
        try:
            with open(config.bearer_token_file, encoding="utf-8") as handle:
                headers["Authorization"] = f"Bearer {handle.read().strip()}"
        except OSError as err:
            raise QueryError("credentials", f"cannot read bearer_token_file: {err.strerror}") from err
    return headers


def ssl_context(config: PrometheusConfig) -> ssl.SSLContext:
    """The CA, client certificate and verification of `tls_config`; the name checked is `server_name`'s
    when set (passed as the handshake's server name by each client)."""
    tls = config.tls
    context = ssl.create_default_context(cafile=tls.ca_file)
    if tls.cert_file and tls.key_file:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def retry_delay(attempt: int, retry_after: str | None = None, now: float | None = None) -> float:
    """Seconds before retry number `attempt` + 1: the server's Retry-After (seconds or an HTTP date) when it
    sent one, capped; else a jittered exponential backoff."""
    wait = parse_retry_after(retry_after, time.time() if now is None else now)
    if wait is not None:
        return min(wait, RETRY_AFTER_MOST)
    return min(BACKOFF_MOST, BACKOFF_FIRST * 2**attempt) * (0.5 + random.random())


def parse_retry_after(value: str | None, now: float) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def split_range(start: float, end: float, step: float, max_points: int) -> list[tuple[float, float]]:
    """Consecutive [start, end] pieces on the step grid, each with at most max_points points."""
    pieces = []
    span = (max_points - 1) * step
    while start <= end:
        piece_end = min(end, start + span)
        pieces.append((start, piece_end))
        start = piece_end + step
    return pieces
