"""How surprising the newest points were: residuals of the nowcast, robustly normalised, causally.

Each cycle forecasts every feature one interval ahead (the nowcast). When that time arrives, the
residual is the observed value minus that forecast. Its z-score compares it with the entity's own
past residuals (median and MAD of up to `history`); until `min_history` exist, the forecast's
own spread (the 10%–90% range as 2.563 standard deviations) normalises it. Only the past is used.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from aura_exporter.windows import ABSOLUTE_SCALE_FLOOR, MAD_TO_SIGMA, EntityKey

CENTRAL_80_IN_SIGMAS = 2.563


@dataclass
class _Pending:
    target_step: int
    median: np.ndarray
    sigma: np.ndarray


@dataclass
class ResidualTracker:
    step: float
    min_history: int = 10
    history: int = 240
    pending: dict[EntityKey, _Pending] = field(default_factory=dict)
    residuals: dict[EntityKey, deque] = field(default_factory=dict)

    def update(self, keys: tuple[EntityKey, ...], data_time: float, observed: np.ndarray,
               nowcast_time: float, nowcast: np.ndarray, spread: np.ndarray) -> np.ndarray:
        """[E, F] z-scores of `observed` [E, F] against the nowcasts made for `data_time` (NaN if none);
        then remember this cycle's nowcast [E, F] (with its 10–90% `spread`) for `nowcast_time`."""
        now_step = round(data_time / self.step)
        zscores = np.full(observed.shape, np.nan)
        for i, key in enumerate(keys):
            made = self.pending.get(key)
            if made is not None and made.target_step == now_step:
                zscores[i] = self._zscore(key, observed[i] - made.median, made.sigma)
        sigma = np.maximum(spread / CENTRAL_80_IN_SIGMAS, ABSOLUTE_SCALE_FLOOR)
        target = round(nowcast_time / self.step)
        self.pending = {key: _Pending(target, nowcast[i], sigma[i]) for i, key in enumerate(keys)}
        for gone in set(self.residuals) - set(keys):
            del self.residuals[gone]
        return zscores

    def _zscore(self, key: EntityKey, residual: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        past = self.residuals.setdefault(key, deque(maxlen=self.history))
        if len(past) >= self.min_history:
            history = np.stack(past)
            median = np.median(history, axis=0)
            # floored at a tenth of the forecast's own spread: a flat history must not make noise infinite
            spread = np.maximum(MAD_TO_SIGMA * np.median(np.abs(history - median), axis=0), 0.1 * sigma)
            zscore = (residual - median) / spread
        else:
            zscore = residual / sigma
        past.append(residual)
        return zscore
