"""Time to breach: when a feature's forecast path first reaches its limit.

The path runs through the current value at 0 and the forecast at each horizon, linearly in between
(the non-linear counterpart of PromQL's predict_linear: the network bends the path, the limit is
read off it). The median path gives the time; the 10%/90% quantiles give the probability.
"""

from __future__ import annotations

import numpy as np

from aura_exporter.forecast.model import QUANTILES


def time_to_breach(current: np.ndarray, path: np.ndarray, horizons: np.ndarray, limits: np.ndarray) -> np.ndarray:
    """[E, F] seconds until the path crosses the limit upward; NaN if it stays below within the horizons.

    current [E, F], path [E, F, H] values at `horizons` [H] seconds, limits [F] (NaN: no limit).
    """
    points = np.concatenate([current[..., None], path], axis=-1)  # [E, F, H+1]
    times = np.concatenate([[0.0], horizons])
    limit = limits[None, :, None]
    start, end = points[..., :-1], points[..., 1:]
    crossing = (start < limit) & (end >= limit)
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(crossing, (limit - start) / (end - start), np.nan)
    when = times[:-1] + fraction * np.diff(times)  # [E, F, H]
    first = np.argmax(crossing, axis=-1)
    result = np.take_along_axis(when, first[..., None], axis=-1)[..., 0]
    result = np.where(crossing.any(axis=-1), result, np.nan)
    return np.where(current >= limits[None, :], 0.0, result)


def exceedance_probability(quantiles: np.ndarray, limits: np.ndarray) -> np.ndarray:
    """[E, F] probability that some horizon's value is at or above the limit (NaN: no limit).

    quantiles [E, F, H, 3] at the levels of QUANTILES. The distribution between them is taken as
    piecewise linear, and its tails as continuing with the slope of the nearest piece, so the
    estimate runs smoothly from 0 to 1; the chance of a breach within the horizons is at least
    the largest of the per-horizon chances.
    """
    levels = np.array(QUANTILES)
    limit = limits[None, :, None]
    lower, median, upper = (quantiles[..., i] for i in range(3))
    with np.errstate(divide="ignore", invalid="ignore"):
        below = levels[0] + (limit - lower) * (levels[1] - levels[0]) / (median - lower)
        middle = levels[1] + (limit - median) * (levels[2] - levels[1]) / (upper - median)
    cdf = np.where(limit < median, below, middle)
    cdf = np.where(np.isfinite(cdf), cdf, np.where(limit < median, 0.0, 1.0))  # zero-width pieces
    probability = 1.0 - np.clip(cdf, 0.0, 1.0)
    return np.where(np.isnan(limits)[None, :], np.nan, probability.max(axis=-1))
