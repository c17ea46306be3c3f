"""Pure parser of Prometheus `query_range` answers, kept apart from I/O and tested on plain strings.

The samples are most of an answer (1000 series × 120 steps is 120,000 `[t, "v"]` pairs) and a JSON
parser builds three Python objects for each. The fast path never does: it cuts every `"values":[...]`
array out of the raw bytes, parses the rest (labels, status) with orjson, and reads all the samples of
the answer with one numpy call. In valid JSON the bytes `"values":[` occur only as a key (a quote
inside a string is escaped), so the cut is exact; anything the fast path does not expect (spaces
after the colon, a count that does not add up, non-ASCII) falls back to the plain parser, which also
words every error.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np
import orjson

from aura_exporter.sources.base import QueryError, Series


def _invalid(message: str) -> QueryError:
    return QueryError("invalid_response", message)


_VALUES = re.compile(rb'"values":\[')
_PAIR = rb'\[[-+.0-9eE]+,"(?:[-+.0-9eE]+|NaN|[+-]Inf)"\]'  # [1700000000.5,"1.5"], as Prometheus writes them
_ARRAY = re.compile(rb"\[(?:" + _PAIR + rb"(?:," + _PAIR + rb")*)?\]")
_SAMPLE_PUNCTUATION = bytes.maketrans(b'[]"', b"   ")


def parse_matrix(body: bytes | str) -> list[Series]:
    """Series of a successful matrix answer; QueryError('invalid_response') on anything else."""
    raw = body.encode() if isinstance(body, str) else body
    fast = _parse_fast(raw)
    return fast if fast is not None else _parse_objects(raw)


def _parse_fast(body: bytes) -> list[Series] | None:
    """The series, or None when the answer is not as the fast path expects (then the plain parser decides)."""
    skeleton, arrays, start = [], [], 0
    for match in _VALUES.finditer(body):
        opened = match.end() - 1
        closed = opened + 1 if body.startswith(b"[]", opened) else body.find(b"]]", opened) + 1
        if closed <= opened:
            return None
        array = body[opened:closed + 1]
        if not _ARRAY.fullmatch(array):
            return None
        skeleton += [body[start:opened], b"[]"]
        arrays.append(array)
        start = closed + 1
    if not arrays:  # no samples to cut out: nothing to gain (or not Prometheus' compact form)
        return None
    skeleton.append(body[start:])
    try:
        document = orjson.loads(b"".join(skeleton))
    except orjson.JSONDecodeError:
        return None
    data = document.get("data") if isinstance(document, dict) and document.get("status") == "success" else None
    items = data.get("result") if isinstance(data, dict) and data.get("resultType") == "matrix" else None
    if not isinstance(items, list) or len(items) != len(arrays) or not all(
            isinstance(item, dict) and item.get("values") == [] and len(item) == 2 for item in items):
        return None
    pairs = np.array([0 if array == b"[]" else array.count(b"],[") + 1 for array in arrays], dtype=np.int64)
    text = b",".join(a for a in arrays if a != b"[]").translate(_SAMPLE_PUNCTUATION)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)  # numpy's word for "stopped at a bad number"
            numbers = np.fromstring(text.decode("ascii"), dtype=np.float64, sep=",") if text else np.zeros(0)
    except (ValueError, DeprecationWarning, UnicodeDecodeError):
        return None
    if numbers.size != 2 * pairs.sum():
        return None
    samples = numbers.reshape(-1, 2)
    bounds = np.concatenate([[0], np.cumsum(pairs)])
    if not _ascending_within(samples[:, 0], bounds):
        raise _invalid("sample timestamps are not finite and ascending")
    times, values = samples[:, 0], samples[:, 1]
    return [Series(_labels(item.get("metric")), times[bounds[i]:bounds[i + 1]], values[bounds[i]:bounds[i + 1]])
            for i, item in enumerate(items)]


def _ascending_within(timestamps: np.ndarray, bounds: np.ndarray) -> bool:
    """Every series' timestamps finite and strictly ascending, for all the series of an answer at once."""
    rises = np.diff(timestamps) > 0
    rises[bounds[1:-1][(bounds[1:-1] > 0) & (bounds[1:-1] < len(timestamps))] - 1] = True  # one series to the next
    return bool(np.all(np.isfinite(timestamps)) and np.all(rises))


def _parse_objects(body: bytes) -> list[Series]:
    """The plain parser: every sample as JSON objects; says what is wrong with a strange answer."""
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
    if not isinstance(points, list):
        raise _invalid("series has no values list (native histograms are not supported)")
    try:
        pairs = np.array(points, dtype=object).reshape(len(points), 2) if points else np.empty((0, 2), object)
        timestamps = pairs[:, 0].astype(np.float64)
        values = pairs[:, 1].astype(np.float64)  # Prometheus sends strings ("1.5", "NaN", "+Inf"); float() reads them
    except (ValueError, TypeError) as err:
        raise _invalid(f"malformed sample: {err}") from err
    return _series(labels, timestamps, values)


def _series(labels: Any, timestamps: np.ndarray, values: np.ndarray) -> Series:
    if not _ascending_within(timestamps, np.array([0, len(timestamps)])):
        raise _invalid("sample timestamps are not finite and ascending")
    return Series(labels=_labels(labels), timestamps=timestamps, values=values)


def _labels(labels: Any) -> dict[str, str]:
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise _invalid("series labels are not a string map")
    return labels
