"""The forecast each entity gets: the model's median combined with simple forecasts, each weighted by how well it
has done on this entity lately.

Why: one network forecasts the whole fleet, and beyond an hour it lost to the simple forecasts on many series:
to the value a day before on series whose days repeat, to the last value on series that wander
(docs/forecast-quality.md). Which simple forecast is hard to beat differs from series to series, so from
entity to entity, and a fleet-wide model cannot know which. Combining forecasts with weights from their own
recent errors is the classic remedy (Bates and Granger, 1969; combinations won the M4 competition): for each
entity, feature and horizon, every candidate's exponentially weighted mean absolute error over its outcomes
(half-life HALF_LIFE), and the combined median Σ w·c / Σ w with w = error^−POWER, so a candidate twice as
wrong counts a quarter as much.

The candidates (candidate_names), all from what the stage already has: the model's median; the last value; the
context's mean (the level of the last `forecast.context`, which noisy series return to); for each of
`forecast.seasons`, the value one season before the target time (seasonal naive). A candidate without a value
(a week not yet in the data) gets no weight that cycle. Until an entity has MIN_OUTCOMES outcomes at a horizon,
its forecast there is the model's alone. The combined median's own errors are kept too: their ratio to the
model's narrows its band (tailoring.py).

On the three corpora of docs/forecast-quality.md (`make forecast-quality`, 2026-12-07) this took the geometric
mean MASE relative to seasonal naive at 1, 2 and 4 hours from 0.76 / 0.96 / 1.11 to 0.65 / 0.80 / 0.84 on NAB,
0.91 / 0.96 / 1.00 to 0.77 / 0.81 / 0.82 on the replay fleet, 0.57 / 0.70 / 0.92 to 0.56 / 0.65 / 0.77 on SMD.
Outcomes wait as the bands' do (forecast/awaiting.py); what was learned is saved with the baselines (`state`,
`restore`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from aura_exporter.forecast.awaiting import WAITING, Awaiting, Made, carried_over, matching_rows
from aura_exporter.storage import keys_array, read_keys
from aura_exporter.windows import ABSOLUTE_SCALE_FLOOR, EntityKey

HALF_LIFE = 86400.0  # seconds: a day of outcomes, so that yesterday's behaviour counts and last week's little
POWER = 2.0
MIN_OUTCOMES = 24  # a day at the 4-hour horizon (judged hourly), two hours at 15 minutes
RATIO_BOUND = 8.0  # the band narrows by the combination's error ratio, at most this many times
FIXED_CANDIDATES = ("model", "last value", "context mean")
COMBINATION_PREFIX = "combination_"  # its arrays in the analysis' state file (saved with the baselines)
COMBINATION_VERSION = 1


def candidate_names(seasons: tuple[float, ...]) -> tuple[str, ...]:
    return (*FIXED_CANDIDATES, *(f"{season:g}s before" for season in seasons))


def candidates(median: np.ndarray, context: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """[E, F, H, K] the candidates (candidate_names' order) from the model's median [E, F, H], the contexts
    [E, n, F] and each season's value one season before each horizon's target [E, S, F, H] (NaN: not at hand)."""
    horizons = median.shape[2]
    level = np.repeat(context[:, -1, :, None], horizons, axis=2)
    known = np.isfinite(context)
    count, total = known.sum(axis=1), np.where(known, context, 0.0).sum(axis=1)
    mean = np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)
    mean = np.repeat(mean[:, :, None], horizons, axis=2)
    return np.stack([median, level, mean, *np.moveaxis(anchors, 1, 0)], axis=-1)


@dataclass
class Combination:
    horizons: tuple[float, ...]  # seconds
    step: float  # the data's step
    keys: tuple[EntityKey, ...] = ()
    # [E, F, H, K + 1] each candidate's and the combined median's, NaN until judged
    errors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0, 0)))
    outcomes: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))  # [E, F, H] judged so far
    judged_at: np.ndarray = field(init=False)  # [H] the data time each horizon was last judged at
    awaiting: Awaiting = field(init=False)

    def __post_init__(self) -> None:
        self.awaiting = Awaiting(self.horizons, self.step)
        self.judged_at = np.full(len(self.horizons), np.nan)

    def update(self, keys: tuple[EntityKey, ...], data_time: float, observed: np.ndarray,
               choices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[E, F, H] the combined medians of `choices` [E, F, H, K] (candidates), and how far their errors have
        been the model's (`error_ratio`); first the forecasts made for `data_time` are judged against `observed`
        [E, F], then these wait for their outcomes."""
        self._follow(keys, (*choices.shape[:3], choices.shape[3] + 1))
        for h, made in self.awaiting.come_due(data_time):
            self._judge(made, observed, h, data_time)
        median = self.combined(choices)
        self.awaiting.add(data_time, keys, np.concatenate([choices, median[..., None]], axis=-1))
        return median, self.error_ratio()

    def combined(self, choices: np.ndarray) -> np.ndarray:
        """[E, F, H] the weighted mean of the candidates at hand; the model's median where the entity is still
        learning or nothing else is at hand."""
        errors = self.errors[..., : choices.shape[-1]]
        usable = np.isfinite(choices) & np.isfinite(errors)
        weights = np.where(usable, np.maximum(np.where(usable, errors, 1.0), ABSOLUTE_SCALE_FLOOR) ** -POWER, 0.0)
        with np.errstate(invalid="ignore"):
            mixed = (weights * np.where(usable, choices, 0.0)).sum(axis=-1) / weights.sum(axis=-1)
        model = choices[..., 0]
        ready = (self.outcomes >= MIN_OUTCOMES) & np.isfinite(model) & np.isfinite(mixed)
        return np.where(ready, mixed, model)

    def error_ratio(self) -> np.ndarray:
        """[E, F, H] the combined median's mean absolute error over the model's, within [1/RATIO_BOUND, 1]; 1 while
        learning. The band (tailoring.py) narrows by it: a combination twice as good is half as uncertain."""
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = self.errors[..., -1] / np.maximum(self.errors[..., 0], ABSOLUTE_SCALE_FLOOR)
        ready = (self.outcomes >= MIN_OUTCOMES) & np.isfinite(ratio)
        return np.where(ready, np.clip(ratio, 1.0 / RATIO_BOUND, 1.0), 1.0)

    def _follow(self, keys: tuple[EntityKey, ...], shape: tuple[int, ...]) -> None:
        if keys == self.keys and self.errors.shape[1:] == shape[1:]:
            return
        self.errors = carried_over(self.keys, self.errors, keys, shape[1:], np.nan)
        self.outcomes = carried_over(self.keys, self.outcomes, keys, shape[1:3], 0.0)
        self.keys = keys

    def _judge(self, made: Made, observed: np.ndarray, h: int, data_time: float) -> None:
        """Move horizon `h`'s errors by the outcomes of the candidates `made`."""
        since = data_time - self.judged_at[h] if np.isfinite(self.judged_at[h]) else self.horizons[h] / WAITING
        self.judged_at[h] = data_time
        rows, then = matching_rows(self.keys, made.keys)
        error = np.abs(made.forecast[then] - observed[rows][..., None])  # [e, F, K]
        judged = np.isfinite(error)
        before = self.errors[rows, :, h]
        share = 1.0 - 0.5 ** (max(since, self.step) / HALF_LIFE)
        self.errors[rows, :, h] = np.where(judged, np.where(np.isnan(before), error, before + share * (error - before)),
                                           before)
        self.outcomes[rows, :, h] += np.isfinite(observed[rows]) & np.isfinite(made.forecast[then, ..., 0])

    def state(self) -> dict[str, np.ndarray]:
        arrays = {"version": np.array(COMBINATION_VERSION), "horizons": np.array(self.horizons, dtype=np.float64),
                  "keys": keys_array(self.keys), "errors": self.errors, "outcomes": self.outcomes}
        return {COMBINATION_PREFIX + name: value for name, value in arrays.items()}

    def restore(self, arrays: dict[str, np.ndarray], features: int, candidates: int) -> bool:
        """Take back what `state` wrote; False, leaving nothing, when the arrays are missing, malformed or for
        other features, horizons or number of candidates."""
        try:
            get = {name.removeprefix(COMBINATION_PREFIX): value for name, value in arrays.items()
                   if name.startswith(COMBINATION_PREFIX)}
            if int(get["version"]) != COMBINATION_VERSION or not np.array_equal(get["horizons"], self.horizons):
                return False
            keys = tuple(read_keys(get["keys"]))
            errors = np.asarray(get["errors"], dtype=np.float64)
            outcomes = np.asarray(get["outcomes"], dtype=np.float64)
        except (KeyError, ValueError, TypeError):
            return False
        if not keys:
            self.forget()
            return True
        shape = (len(keys), features, len(self.horizons))
        if (errors.shape != (*shape, candidates + 1) or outcomes.shape != shape or np.any(errors < 0)
                or not np.isfinite(outcomes).all() or np.any(outcomes < 0)):
            return False
        self.keys, self.errors, self.outcomes = keys, errors, outcomes
        return True

    def forget(self) -> None:
        self.keys, self.errors, self.outcomes = (), np.zeros((0, 0, 0, 0)), np.zeros((0, 0, 0))
        self.judged_at[:] = np.nan
        self.awaiting.clear()
