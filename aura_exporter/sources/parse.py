"""Pure parser of Prometheus `query_range` answers, kept apart from I/O and tested on plain strings."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from aura_exporter.sources.base import QueryError, Series


def _invalid(message: str) -> QueryError:
    return QueryError("invalid_response", message)


def parse_matrix(body: bytes | str) -> list[Series]:
    """Series of a successful matrix answer; QueryError('invalid_response') on anything else."""
    try:
        document = orjson.loads(body)  # 3-4x json's speed on the largest input of a cycle
    except (ValueError, UnicodeDecodeError) as err:
        raise _invalid(f"answer is not JSON: {err}") from err
    if not isinstance(document, dict):
        raise _invalid("answer is not a JSON object")
    if document.get("status") != "success":
        raise QueryError("bad_request", f"query failed: {document.get('errorType')}: {document.get('error')}")
    data = document.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "matrix" or not isinstance(data.get("result"), list):
        raise _invalid("answer is not a matrix result")
    return [parse_series(item) for item in data["result"]]


def parse_series(item: Any) -> Series:
    """One `{"metric": {...}, "values": [[t, "v"], ...]}` item, validated."""
    if not isinstance(item, dict):
        raise _invalid("series is not an object")
    labels, points = item.get("metric"), item.get("values")
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise _invalid("series labels are not a string map")
    if not isinstance(points, list):
        raise _invalid("series has no values list (native histograms are not supported)")
    try:
        pairs = np.array(points, dtype=object).reshape(len(points), 2) if points else np.empty((0, 2), object)
        timestamps = pairs[:, 0].astype(np.float64)
        values = pairs[:, 1].astype(np.float64)  # Prometheus sends strings ("1.5", "NaN", "+Inf"); float() reads them
    except (ValueError, TypeError) as err:
        raise _invalid(f"malformed sample: {err}") from err
    if timestamps.size and (not np.all(np.isfinite(timestamps)) or np.any(np.diff(timestamps) <= 0)):
        raise _invalid("sample timestamps are not finite and ascending")
    return Series(labels=labels, timestamps=timestamps, values=values)
