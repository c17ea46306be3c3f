"""The last window's samples, kept so that a cycle asks Prometheus only for the steps it lacks.

Consecutive windows overlap all but an interval: a 30-minute window of 15-second steps run every
minute shares 116 of its 120 steps with the one before. Fetching and parsing those again is most of
a cycle's input work (and of the load it puts on Prometheus), so the cache keeps each entity's raw
samples on the last grid, and a cycle fetches from REFETCH_STEPS before the cached end: the newest
steps again, because a sample can land after a query has already been answered (scrape and
rule-evaluation lag). Every FULL_EVERY cycles, after a step change of the grid, a restart or a jump in
time, the whole window is fetched, which also heals whatever a late sample older than the re-fetched
steps changed. What a cycle analyses is the same as a whole-window fetch would give, but for such late
samples (tests/test_window_cache.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aura_exporter.config import Analysis
from aura_exporter.sources.base import RangeResult, entity_key
from aura_exporter.windows import EntityKey, Windows, place_series, windows_from

REFETCH_STEPS = 2
FULL_EVERY = 10


@dataclass(frozen=True)
class Placed:
    """Raw samples on a grid, as place_series gives them: sorted keys and [E, T, F] values (NaN where
    missing); and until when each key had two series for one feature (−inf: never)."""

    grid: np.ndarray
    keys: list[EntityKey]
    values: np.ndarray
    paired_until: np.ndarray

    @property
    def duplicates(self) -> np.ndarray:
        """[E] keys with two series for one feature inside the window (they are left out)."""
        return self.paired_until >= self.grid[0]


class WindowCache:
    def __init__(self, analysis: Analysis):
        self.analysis = analysis
        self.last: Placed | None = None
        self.partial_fetches = 0

    def fetch_start(self, grid: np.ndarray) -> float:
        """Where this cycle's fetch begins: the grid's start, or a few steps before the cached end."""
        last = self.last
        if last is None or self.partial_fetches >= FULL_EVERY or len(last.grid) != len(grid):
            return float(grid[0])
        shift = (grid[0] - last.grid[0]) / self.analysis.step
        if shift != round(shift) or not 0 <= shift < len(grid) - REFETCH_STEPS:
            return float(grid[0])  # another step, time went back, or nothing left in common
        return float(last.grid[-1] - REFETCH_STEPS * self.analysis.step)

    def windows(self, results: Sequence[RangeResult], grid: np.ndarray, start: float) -> Windows:
        """The windows on `grid` from this cycle's answers (fetched from `start`) and the cache."""
        placed = self.place(results, grid, start)
        return windows_from(self.analysis, placed.keys, placed.values, placed.duplicates, grid)

    def place(self, results: Sequence[RangeResult], grid: np.ndarray, start: float) -> Placed:
        """The window on `grid` from this cycle's answers (fetched from `start`) and the cache; kept for the next."""
        if start <= grid[0] or self.last is None:
            keys, values, duplicated = place_series(self.analysis, results, grid)
            placed = Placed(grid, keys, values, paired_until(self.analysis, results, keys, duplicated))
            self.partial_fetches = 0
        else:
            placed = self._merge(self.last, results, grid, start)
            self.partial_fetches += 1
        self.last = placed
        return placed

    def _merge(self, last: Placed, results: Sequence[RangeResult], grid: np.ndarray, start: float) -> Placed:
        fresh = int(np.searchsorted(grid, start - self.analysis.step / 2))
        new_keys, new_values, new_duplicated = place_series(self.analysis, results, grid[fresh:])
        shift = int(round((grid[0] - last.grid[0]) / self.analysis.step))
        old = last.values[:, shift:shift + fresh]
        kept = np.flatnonzero(~np.all(np.isnan(old), axis=(1, 2)))  # keys with nothing left in the window go
        keys = sorted({last.keys[i] for i in kept} | set(new_keys))
        row = {key: i for i, key in enumerate(keys)}
        values = np.full((len(keys), len(grid), new_values.shape[2]), np.nan)
        paired = np.full(len(keys), -np.inf)
        old_rows = np.array([row[last.keys[i]] for i in kept], dtype=np.int64)
        values[old_rows, :fresh] = old[kept]
        paired[old_rows] = last.paired_until[kept]
        new_rows = np.array([row[key] for key in new_keys], dtype=np.int64)
        values[new_rows, fresh:] = new_values
        paired[new_rows] = np.maximum(paired[new_rows],
                                      paired_until(self.analysis, results, new_keys, new_duplicated))
        return Placed(grid, keys, values, paired)


def paired_until(analysis: Analysis, results: Sequence[RangeResult], keys: list[EntityKey],
                 duplicated: np.ndarray) -> np.ndarray:
    """[E] per key, the last time two of its series for one feature both still had samples (the second
    latest of their last samples), −inf for keys with one series per feature (`duplicated` false): a
    window holds a duplicate exactly when this time is inside it."""
    found: dict[EntityKey, float] = {}
    if not duplicated.any():  # the usual answer: nothing to look for
        return np.full(len(keys), -np.inf)
    for result in results:
        last_samples: dict[EntityKey, list[float]] = {}
        for series in result.series:
            if series.timestamps.size:
                key = entity_key(series.labels, analysis.entity_labels)
                last_samples.setdefault(key, []).append(float(series.timestamps[-1]))
        for key, times in last_samples.items():
            if len(times) > 1:
                found[key] = max(found.get(key, -np.inf), sorted(times)[-2])
    return np.array([found.get(key, -np.inf) for key in keys])
