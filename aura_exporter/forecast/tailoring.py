"""The fleet's forecast tailored to each entity by its own outcomes: combined with simple forecasts
(combination.py), then its bands scaled (bands.py). The stage and the benchmarks run the same steps.

The breach (its time and probability) reads the model's own forecast instead, its bands scaled the same way
(`model_bands`): the model alone carries a trend forward (the candidates it is combined with assume none), and the
combination's weights, learned on normal days, damp a developing leak. Read from the combined forecast, leaks of
over 3 hours announced 2 hours ahead fell from 61% to 4% on the replay fleet and from 79% to 11% on NAB
(`make breach-lead`, scratch run of 2026-12-07).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aura_exporter.config import Analysis
from aura_exporter.forecast.bands import BandCalibration
from aura_exporter.forecast.combination import Combination, candidate_names, candidates
from aura_exporter.forecast.data import model_horizons
from aura_exporter.windows import EntityKey

COMBINED_BANDS_PREFIX = "combination_bands_"  # the combined forecast's bands in the state file (bands.py: the model's)


@dataclass(frozen=True)
class Tailored:
    combined: np.ndarray  # [E, F, H, 3] at every model horizon: the combined median in its band (not yet scaled)
    exported: np.ndarray  # [E, F, H', 3] at the exported horizons: the same, its band scaled (bands.py)
    model: np.ndarray  # [E, F, H', 3] at the exported horizons: the model's own forecast, its band scaled


class Tailoring:
    def __init__(self, analysis: Analysis):
        horizons = model_horizons(analysis.interval, analysis.forecast.horizons)
        self.exported = [horizons.index(h) for h in analysis.forecast.horizons]
        self.seasons = len(analysis.forecast.seasons)
        self.candidates = len(candidate_names(analysis.forecast.seasons))
        self.combination = Combination(horizons, analysis.step)
        self.bands = BandCalibration(analysis.forecast.horizons, analysis.step, prefix=COMBINED_BANDS_PREFIX)
        self.model_bands = BandCalibration(analysis.forecast.horizons, analysis.step)

    def update(self, keys: tuple[EntityKey, ...], data_time: float, observed: np.ndarray, quantiles: np.ndarray,
               context: np.ndarray, lagged: np.ndarray | None) -> Tailored:
        """The model's quantiles [E, F, H, 3] tailored, from the contexts [E, n, F] they were forecast from, their
        seasons' lagged values [E, S, n + H, F] (None: none at hand) and this cycle's values `observed` [E, F]
        (the outcomes of earlier forecasts)."""
        if lagged is None:  # no season at hand: their candidates are missing, not left out (the same K always)
            lagged = np.full((len(context), self.seasons, context.shape[1] + quantiles.shape[2], context.shape[2]),
                             np.nan)
        choices = candidates(quantiles[..., 1], context, lagged[:, :, context.shape[1]:].transpose(0, 1, 3, 2))
        combined = banded(quantiles, *self.combination.update(keys, data_time, observed, choices))
        return Tailored(combined, self.bands.update(keys, data_time, observed, combined[:, :, self.exported]),
                        self.model_bands.update(keys, data_time, observed, quantiles[:, :, self.exported]))

    def state(self) -> dict[str, np.ndarray]:
        return self.combination.state() | self.bands.state() | self.model_bands.state()

    def restore(self, arrays: dict[str, np.ndarray], features: int) -> bool:
        """Each part back where the arrays hold it; False when one learns afresh (a state file from before it)."""
        restored = [part.restore(arrays, features) for part in (self.bands, self.model_bands)]
        return self.combination.restore(arrays, features, self.candidates) and all(restored)

    def forget(self) -> None:
        self.combination.forget()
        self.bands.forget()
        self.model_bands.forget()


def banded(quantiles: np.ndarray, median: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """[E, F, H, 3] a band for the combined `median` [E, F, H] from the model's: its sides narrowed by the
    combination's error ratio [E, F, H] (error_ratio), both about the model's median and moved to the combined
    one, and the two held together: where the medians disagree, that is uncertainty too. Moved alone, a band
    whose side the model had put at its median (a series at its floor) held 71% of NAB's outcomes instead of 80%;
    not narrowed, a combination better than the model kept a band too wide for days. The bands' factors
    (bands.py) then mend what is left."""
    lower, model, upper = (quantiles[..., k] for k in range(3))
    below, above = ratio * (model - lower), ratio * (upper - model)
    return np.stack([np.minimum(model, median) - below, median, np.maximum(model, median) + above], axis=-1)
