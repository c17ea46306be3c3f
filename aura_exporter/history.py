"""Long windows: days of an analysis' features on its step grid, for training and for learning at start-up.

Series come from sources/history.py (a PromQL API or the replay fleet) and are placed as the windows
stage places them; short gaps are filled, longer ones stay NaN, and training leaves out samples that
touch them. HistorySource answers the cycle's queries from a History, and never from beyond the asked range.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from aura_exporter.config import Analysis, AnyAnalysis, Feature, PrometheusConfig
from aura_exporter.progress import Progress
from aura_exporter.sources.base import RangeResult, Series, entity_key
from aura_exporter.sources.history import Keep, history_grid, keep_all, prometheus_results, replay_results
from aura_exporter.sources.replay import ReplayFleet
from aura_exporter.sources.shard import Shard
from aura_exporter.windows import EntityKey, fill_gaps, place_series


@dataclass(frozen=True)
class History:
    entities: tuple[EntityKey, ...]
    timestamps: np.ndarray  # [N] step grid
    values: np.ndarray  # [E, N, F], NaN where missing


class HistoryLoader(Protocol):
    """The features of an analysis over [start, end]: every entity's, or at most `most_entities` of them, drawn at
    random (EntitySample)."""

    def __call__(self, analysis: Analysis, start: float, end: float, most_entities: int | None = None) -> History: ...


@dataclass
class EntitySample:
    """At most `most` entities: every entity an answer names is kept while there is room, a random choice of
    them when there is less room than newcomers, and the entities kept stay kept in every later answer (each
    feature, each piece of a long range), so only they are ever held, each with all of its features.

    Why: the forecaster draws its training windows (`forecast.max_samples`) from the history, so beyond a
    thousand entities or so the rest of a fleet's days of history only cost memory: 5,000 hosts' two days at
    15-second steps held 9 GB while their series were placed."""

    most: int
    label_names: tuple[str, ...]
    rng: np.random.Generator = field(default_factory=np.random.default_rng)
    chosen: set[EntityKey] = field(default_factory=set)

    def keep(self, series: list[Series]) -> list[Series]:
        keys = [entity_key(s.labels, self.label_names) for s in series]
        newcomers = sorted(set(keys) - self.chosen)
        room = self.most - len(self.chosen)
        if len(newcomers) > room:
            newcomers = [newcomers[i] for i in self.rng.choice(len(newcomers), max(room, 0), replace=False)]
        self.chosen.update(newcomers)
        return [s for s, key in zip(series, keys, strict=True) if key in self.chosen]


def align_history(analysis: Analysis, results: list[RangeResult], grid: np.ndarray) -> History:
    keys, values, _ = place_series(analysis, results, grid)
    filled, _ = fill_gaps(values, analysis.max_gap_steps, max_missing_ratio=1.0)
    return History(tuple(keys), grid, filled)


def replay_history(fleet: ReplayFleet, analysis: Analysis, start: float, end: float,
                   most_entities: int | None = None) -> History:
    grid = history_grid(analysis, start, end)
    return align_history(analysis, replay_results(fleet, analysis, grid, _keep(analysis, most_entities)), grid)


def prometheus_history(config: PrometheusConfig, analysis: Analysis, start: float, end: float,
                       progress: Progress | None = None, most_entities: int | None = None) -> History:
    grid = history_grid(analysis, start, end)
    return align_history(analysis, prometheus_results(config, analysis, grid, progress,
                                                      _keep(analysis, most_entities)), grid)


def _keep(analysis: Analysis, most_entities: int | None) -> Keep:
    return keep_all if most_entities is None else EntitySample(most_entities, analysis.entity_labels).keep


def sharded_history(loader: HistoryLoader, shard: Shard) -> HistoryLoader:
    """A history loader that keeps only this shard's entities (what the forecaster trains on); a sample of at most
    `most_entities` is drawn from the whole fleet's `shard.count` times as many, about that many of them this
    shard's."""

    def load(analysis: Analysis, start: float, end: float, most_entities: int | None = None) -> History:
        history = loader(analysis, start, end, None if most_entities is None else most_entities * shard.count)
        rows = [i for i, key in enumerate(history.entities) if shard.owns(analysis.entity_labels, key)]
        return History(tuple(history.entities[i] for i in rows), history.timestamps, history.values[rows])

    return load


class HistorySource:
    """A Source that answers from recorded history and never from beyond the asked range: the cycle asks
    `query_range(start, end)` and gets the history sliced to [start, end], so a cycle at time t cannot
    see a sample after t (the no-look-ahead guarantee of backtests and of learning at start-up)."""

    def __init__(self, history: History, analysis: Analysis):
        self.history = history
        self.label_names = analysis.entity_labels
        self.columns = {f.name: i for i, f in enumerate(analysis.features)}

    async def query_range(self, analysis: AnyAnalysis, feature: Feature, start: float, end: float,
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
