"""The forecast stage of one analysis: every entity's window in, quantile forecasts out.

The trained model is swapped in whole (`install`) by whoever trains it; until then the stage
returns nothing and `aura_model_ready` stays 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from aura_exporter.config import Analysis
from aura_exporter.forecast.breach import exceedance_probability, time_to_breach
from aura_exporter.forecast.data import denormalise, model_horizons, model_inputs
from aura_exporter.forecast.model import Forecaster, ModelShape
from aura_exporter.forecast.residuals import ResidualTracker
from aura_exporter.forecast.tailoring import Tailoring
from aura_exporter.windows import Context, Windows

INFERENCE_BATCH = 4096


@dataclass(frozen=True)
class TrainedModel:
    model: Forecaster
    device: torch.device
    trained_at: float
    meta: dict
    forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (inputs, anchors) on `device` -> [B, F, H, 3]

    @property
    def seasons_learned(self) -> tuple[bool, ...]:
        return tuple(bool(learned) for learned in self.model.seasons_learned.tolist())


@dataclass(frozen=True)
class Forecast:
    horizons: tuple[float, ...]  # exported horizons, seconds
    quantiles: np.ndarray  # [E, F, H, 3] (10%, 50%, 90%) in the features' units, tailored per entity (tailoring.py)
    residual_zscore: np.ndarray  # [E, F], NaN until a nowcast has come due
    # from the model's own forecast (its trend), its bands calibrated per entity
    time_to_breach: np.ndarray  # [E, F] seconds, NaN without a limit or a breach within the horizons
    breach_probability: np.ndarray  # [E, F], NaN without a limit


class ForecastStage:
    def __init__(self, analysis: Analysis):
        self.analysis = analysis
        self.trained: TrainedModel | None = None
        self.horizons = model_horizons(analysis.interval, analysis.forecast.horizons)
        self.nowcast = self.horizons.index(analysis.interval)
        self.limits = np.array([np.nan if f.limit is None else f.limit for f in analysis.features])
        self.residuals = ResidualTracker(analysis.step, analysis.baseline.min_history, analysis.baseline.history)
        self.tailoring = Tailoring(analysis)

    def install(self, trained: TrainedModel) -> None:
        self.trained = trained

    def run(self, windows: Windows, context: Context | None) -> Forecast | None:
        """Forecasts for the windows' entities from their contexts (NaN where a context is incomplete)."""
        trained = self.trained
        if trained is None or context is None:
            return None
        data_time = float(windows.timestamps[-1])
        current = windows.values[:, -1, :]
        tailored = self.tailoring.update(
            windows.entities, data_time, current, predict(trained, context.values, context.timestamps, context.lagged),
            context.values, context.lagged)
        nowcast = tailored.combined[:, :, self.nowcast, :]
        zscores = self.residuals.update(windows.entities, data_time, current, data_time + self.analysis.interval,
                                        nowcast[..., 1], nowcast[..., 2] - nowcast[..., 0])
        seconds = np.array(self.analysis.forecast.horizons)
        return Forecast(
            horizons=self.analysis.forecast.horizons,
            quantiles=tailored.exported,
            residual_zscore=zscores,
            time_to_breach=time_to_breach(current, tailored.model[..., 1], seconds, self.limits),
            breach_probability=exceedance_probability(tailored.model, self.limits),
        )


def no_seasons(shape: ModelShape, values: np.ndarray) -> np.ndarray:
    """The lagged values [E, S, n + H, F] of [E, n, F] contexts when no season is at hand: all missing."""
    return np.full((len(values), shape.seasons, values.shape[1] + shape.horizons, shape.features), np.nan)


@torch.inference_mode()
def predict(trained: TrainedModel, values: np.ndarray, timestamps: np.ndarray,
            lagged: np.ndarray | None = None) -> np.ndarray:
    """[E, F, H, 3] forecasts in the features' units for [E, n, F] contexts sampled at timestamps [n] (or
    [E, n]) and their seasons' lagged values [E, S, n + H, F] (None: no season at hand), in batches; NaN for
    contexts with missing values."""
    shape = trained.model.shape
    result = np.full((len(values), shape.features, shape.horizons, 3), np.nan)
    usable = np.flatnonzero(~np.isnan(values).any(axis=(1, 2)))
    if lagged is None:
        lagged = no_seasons(shape, values)
    prepared = model_inputs(values[usable], timestamps if timestamps.ndim == 1 else timestamps[usable], lagged[usable])
    for start in range(0, len(usable), INFERENCE_BATCH):
        batch, anchors = (torch.from_numpy(array[start : start + INFERENCE_BATCH]).to(trained.device)
                          for array in (prepared.inputs, prepared.anchors))
        result[usable[start : start + INFERENCE_BATCH]] = trained.forward(batch, anchors).cpu().numpy()
    result[usable] = denormalise(result[usable], prepared)
    return result
