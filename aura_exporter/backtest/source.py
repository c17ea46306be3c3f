"""A Source that answers from recorded history and never from beyond the asked range.

The live cycle asks `query_range(start, end)`; this source slices the history to [start, end], so a
cycle at time t cannot see a sample after t: the no-look-ahead guarantee of the backtest is the
source's, whatever the stages do.
"""

from __future__ import annotations

import numpy as np

from aura_exporter.config import Analysis, Feature
from aura_exporter.sources.base import RangeResult, Series
from aura_exporter.sources.history import History


class HistorySource:
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
