"""The source interface every stage after it relies on, and its error."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from aura_exporter.config import AnyAnalysis, Feature
from aura_exporter.logs import without_secrets

# Values of the `reason` label of aura_query_errors_total.
ERROR_REASONS = ("timeout", "unreachable", "server_error", "bad_request", "invalid_response", "too_many_series",
                 "credentials")


EntityKey = tuple[str, ...]  # an entity's values of its analysis' entity labels, in their order


def entity_key(labels: Mapping[str, str], names: Sequence[str]) -> EntityKey:
    """The entity a series belongs to: its values of the entity labels `names` ("" where it has none)."""
    return tuple(labels.get(name, "") for name in names)


class QueryError(Exception):
    """A feature query that failed; `reason` is one of ERROR_REASONS."""

    def __init__(self, reason: str, message: str, retry_after: str | None = None):
        assert reason in ERROR_REASONS, reason
        self.reason = reason
        self.retry_after = retry_after  # the server's Retry-After header, when it sent one
        super().__init__(without_secrets(message))  # it is shown (API, landing page), not only logged


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    timestamps: np.ndarray  # float seconds, ascending
    values: np.ndarray  # float64, NaN/±Inf as Prometheus sent them


@dataclass(frozen=True)
class RangeResult:
    """One feature query's answer over [start, end] at `step`."""

    feature: str
    series: tuple[Series, ...]


class Source(Protocol):
    async def query_range(self, analysis: AnyAnalysis, feature: Feature, start: float, end: float,
                          step: float | None = None) -> RangeResult:
        """All series of the feature's query between start and end inclusive, every `step`
        (default: the analysis' step)."""
        ...

    async def close(self) -> None: ...


def merge_pieces(pieces: list[list[Series]]) -> list[Series]:
    """Join the series of consecutive range pieces by label set, in time order."""
    merged: dict[tuple, list[Series]] = {}
    for piece in pieces:
        for series in piece:
            merged.setdefault(tuple(sorted(series.labels.items())), []).append(series)
    return [
        Series(labels=parts[0].labels,
               timestamps=np.concatenate([p.timestamps for p in parts]),
               values=np.concatenate([p.values for p in parts]))
        for parts in merged.values()
    ]
