"""Forecast bands that hold what they say, entity by entity: each band's width learned from the entity's own outcomes.

One network forecasts the whole fleet, so its 10–90% band is right on average and wrong for many series:
too narrow for a bursty one, too wide for a calm one (on NAB's series it held 66–74% of outcomes, and
the band of one series in eight held 75–85%; docs/forecast-quality.md). So each entity, feature, horizon
and side of the band keeps a factor on the band's half-width (the median's distance to the 10% or the
90% quantile). When a forecast's time comes, the outcome tells whether it fell beyond that side's
quantile scaled by the factor in force: beyond, the factor's log grows by STEP_SIZE × 0.9; within, it
shrinks by STEP_SIZE × 0.1, so it settles where one outcome in ten falls beyond, whatever the errors'
distribution (online quantile tracking, as in adaptive conformal inference: Gibbs and Candès, 2021).
The median is left as it is. Two calibrations run (forecast/tailoring.py): one for the exported forecast, whose
median is combined per entity (forecast/combination.py), and one for the model's own, which the breach reads.

Memory stays bounded (forecast/awaiting.py: a 4-hour horizon is judged on one forecast an hour). A factor
stays within [1/FACTOR_BOUND, FACTOR_BOUND]: a series the model cannot forecast must not grow its band
without end. Entities not in a cycle are forgotten, as the nowcast's residuals are; what was learned is saved
with the baselines (`state`, `restore`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from aura_exporter.forecast.awaiting import Awaiting, Made, carried_over, matching_rows
from aura_exporter.storage import keys_array, read_keys
from aura_exporter.windows import EntityKey

TAIL = 0.1  # the share of outcomes each side's quantile leaves beyond it (10% and 90% quantiles)
# Of the factor's log per outcome: a band twice too narrow is nine tenths mended after about 90 outcomes (8 hours
# for the 15-minute band with 5-minute cycles, 4 days for the 4-hour band, judged hourly); a settled factor
# wanders by about a tenth.
STEP_SIZE = 0.05
FACTOR_BOUND = 8.0
WIDTH_FLOOR = 1e-12  # a band of no width says nothing a factor could mend
BANDS_PREFIX = "bands_"  # the model's own bands' arrays in the analysis' state file (saved with the baselines)
BANDS_VERSION = 1


@dataclass
class BandCalibration:
    horizons: tuple[float, ...]  # seconds
    step: float  # the data's step
    prefix: str = BANDS_PREFIX  # of its arrays' names in the state file
    keys: tuple[EntityKey, ...] = ()
    log_factors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0, 2)))  # [E, F, H, lower/upper]
    awaiting: Awaiting = field(init=False)

    def __post_init__(self) -> None:
        self.awaiting = Awaiting(self.horizons, self.step)

    def update(self, keys: tuple[EntityKey, ...], data_time: float, observed: np.ndarray,
               quantiles: np.ndarray) -> np.ndarray:
        """The forecasts [E, F, H, 3] (the horizons' 10%, 50%, 90%) with their bands scaled; first the
        forecasts made for `data_time` are judged against `observed` [E, F], then these wait for theirs."""
        shape = (quantiles.shape[1], len(self.horizons), 2)
        if keys != self.keys or self.log_factors.shape[1:] != shape:
            self.log_factors = carried_over(self.keys, self.log_factors, keys, shape, 0.0)
            self.keys = keys
        for h, made in self.awaiting.come_due(data_time):
            self._judge(made, observed, h)
        self.awaiting.add(data_time, keys, quantiles)
        return scaled(quantiles, self.log_factors)

    def _judge(self, made: Made, observed: np.ndarray, h: int) -> None:
        """Move the factors of horizon `h` by the outcomes of the forecasts `made`."""
        rows, then = matching_rows(self.keys, made.keys)
        lower, median, upper = (made.forecast[then, :, k] for k in range(3))
        outcome = observed[rows]
        factors = np.exp(self.log_factors[rows, :, h])  # [E, F, 2]
        with np.errstate(invalid="ignore"):
            widths = np.stack([median - lower, upper - median], axis=-1)
            beyond = np.stack([median - outcome, outcome - median], axis=-1) > factors * widths
            judged = np.isfinite(outcome)[..., None] & (widths > WIDTH_FLOOR)  # NaN widths compare False
        moved = self.log_factors[rows, :, h] + np.where(judged, STEP_SIZE * (beyond - TAIL), 0.0)
        self.log_factors[rows, :, h] = np.clip(moved, -np.log(FACTOR_BOUND), np.log(FACTOR_BOUND))

    def state(self) -> dict[str, np.ndarray]:
        """The factors as arrays for the state file (forecasts waiting for their outcome are not kept)."""
        arrays = {"version": np.array(BANDS_VERSION), "horizons": np.array(self.horizons, dtype=np.float64),
                  "keys": keys_array(self.keys), "log_factors": self.log_factors}
        return {self.prefix + name: value for name, value in arrays.items()}

    def restore(self, arrays: dict[str, np.ndarray], features: int) -> bool:
        """Take back what `state` wrote; False, leaving nothing, when the arrays are missing, malformed or for
        other features or horizons."""
        try:
            get = {name.removeprefix(self.prefix): value for name, value in arrays.items()
                   if name.startswith(self.prefix)}
            if int(get["version"]) != BANDS_VERSION or not np.array_equal(get["horizons"], self.horizons):
                return False
            keys, factors = tuple(read_keys(get["keys"])), np.asarray(get["log_factors"], dtype=np.float64)
        except (KeyError, ValueError, TypeError):
            return False
        if not keys:  # nothing learned yet (no forecaster, or none trained): nothing to take back
            self.forget()
            return True
        if factors.shape != (len(keys), features, len(self.horizons), 2) or not np.isfinite(factors).all():
            return False
        self.keys, self.log_factors = keys, np.clip(factors, -np.log(FACTOR_BOUND), np.log(FACTOR_BOUND))
        return True

    def forget(self) -> None:
        self.keys, self.log_factors = (), np.zeros((0, 0, 0, 2))
        self.awaiting.clear()


def scaled(quantiles: np.ndarray, log_factors: np.ndarray) -> np.ndarray:
    """[E, F, H, 3] quantiles with each side's distance from the median scaled by its factor [E, F, H, 2]."""
    factors = np.exp(log_factors)
    median = quantiles[..., 1]
    return np.stack([median - factors[..., 0] * (median - quantiles[..., 0]), median,
                     median + factors[..., 1] * (quantiles[..., 2] - median)], axis=-1)
