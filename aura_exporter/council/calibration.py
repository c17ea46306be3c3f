"""Optional calibration of the risk: how unusual this entity's risk is for this entity.

With `council.calibrate: true`, the council's combined risk becomes a tail probability of the
entity's own recent risks, the post-processing that NAB's best detectors use (Numenta's "anomaly
likelihood", Ahmad et al. 2017): the mean of the last SHORT raw risks is compared with the mean and
spread of the up to LONG before them, L = Φ((short mean − long mean) / spread), and reported on a log scale,
log(1 − L) / log(1 − 0.9999999999), so that 0.5 means "one in 10^5" and 1 "one in 10^10".
An entity with fewer than WARM_UP + SHORT raw risks scores 0: nothing is unusual before a history exists.
Entities unseen for `forget_after` lose their history.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtr

SHORT = 10
LONG = 2000
WARM_UP = 30
SPREAD_FLOOR = 1e-4  # risks in 0..1: a spread below this is flatness, not precision
LOG_SCALE = math.log(1.0 - 0.9999999999)


@dataclass
class _History:
    raw: deque = field(default_factory=lambda: deque(maxlen=LONG))
    last_seen: float = 0.0


@dataclass
class Calibrator:
    forget_after: float
    histories: dict[tuple, _History] = field(default_factory=dict)

    def calibrate(self, keys: tuple[tuple, ...], raw: np.ndarray, now: float) -> np.ndarray:
        calibrated = np.zeros(len(keys))
        for i, key in enumerate(keys):
            history = self.histories.setdefault(key, _History())
            history.raw.append(float(raw[i]))
            history.last_seen = now
            if len(history.raw) >= WARM_UP + SHORT:
                values = np.fromiter(history.raw, dtype=np.float64)
                before = values[:-SHORT]  # the reference leaves out what it judges
                spread = max(float(before.std()), SPREAD_FLOOR)
                likelihood = float(ndtr((values[-SHORT:].mean() - before.mean()) / spread))
                calibrated[i] = math.log(1.0000000001 - likelihood) / LOG_SCALE
        for key in [k for k, h in self.histories.items() if now - h.last_seen > self.forget_after]:
            del self.histories[key]
        return calibrated
