"""The detectors AURA is compared with, scored by the same rules in the same run.

- null: never alerts (NAB's zero).
- band: the usual Prometheus-native rule, `abs(x - avg_over_time(x[span])) > 3 * stddev_over_time(x[span])`
  with AURA's rules' `for:` (shorter than a row, so one row fires), scored like AURA's backtest: by its pages,
  the highest |z| / (1 + |z|) of the run at the row where each alert starts firing, 0 elsewhere (so the
  scorer's threshold search can still ask for a larger k).
  Like PromQL, the range includes the current sample and nothing after it.

For servers with many metrics each (data/smd), two per-row scores, thresholded by the event-wise
measure of aura_exporter.evaluation.events at quantiles of each entity's own train scores:

- max_z: the largest |x − train mean| / train stddev over the metrics.
- band: the largest |x − 1 h mean| / 1 h stddev over the metrics, the band rule above on each metric.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from aura_exporter.backtest.outputs import pages_at
from aura_exporter.backtest.replay import runs

BAND_SPAN = 86400.0  # avg_over_time(x[1d]), a common choice for seasonal server metrics
MIN_SAMPLES = 12
SERVER_BAND_SPAN = 3600.0
BAND_SIGMAS = 3.0
HOLD_ROWS = 0  # the rule's `for:` in rows: none, as the backtest holds AURA's alerts (mixin COUNCIL_FOR, 1m < a row)


def null_scores(times: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.zeros(len(times))


def range_sums(columns: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Sums of each column over rows first[i]..i."""
    cumulative = np.concatenate([np.zeros((1, columns.shape[1])), np.cumsum(columns, axis=0)])
    return cumulative[1:] - cumulative[first]


def band_z(times: np.ndarray, values: np.ndarray, span: float = BAND_SPAN) -> np.ndarray:
    """|x − mean| / stddev over (t − span, t] of each column of `values` ([T] or [T, F]), like PromQL's
    avg_over_time and stddev_over_time (the current sample included, nothing after it); NaN where x is
    missing or the range holds fewer than MIN_SAMPLES."""
    columns = values.reshape(len(times), -1)
    present = np.isfinite(columns)
    first_present = columns[present.argmax(axis=0), np.arange(columns.shape[1])]
    origin = np.where(present.any(axis=0), first_present, 0.0)  # centring keeps the sums of squares exact
    finite = np.where(present, columns - origin, 0.0)
    first = np.searchsorted(times, times - span, side="right")  # (t - span, t], like a PromQL range
    n = range_sums(present.astype(np.float64), first)
    mean = range_sums(finite, first) / np.maximum(n, 1)
    variance = np.maximum(range_sums(finite * finite, first) / np.maximum(n, 1) - mean * mean, 0.0)
    z = np.abs(finite - mean) / np.maximum(np.sqrt(variance), 1e-12)
    return np.where((n >= MIN_SAMPLES) & present, z, np.nan).reshape(values.shape)


def band_scores(times: np.ndarray, values: np.ndarray, span: float = BAND_SPAN) -> np.ndarray:
    z = band_z(times, values, span)
    return np.where(np.isfinite(z), z / (1.0 + z), 0.0)


def band_pages(times: np.ndarray, values: np.ndarray) -> np.ndarray:
    scores = band_scores(times, values)
    return pages(scores > BAND_SIGMAS / (1.0 + BAND_SIGMAS), scores)


def pages(firing: np.ndarray, scores: np.ndarray, hold_rows: int = HOLD_ROWS) -> np.ndarray:
    """At the row where each run of firing rows has lasted `hold_rows` more rows, the run's highest score
    so far (as AURA's pages carry the highest risk since the decision); 0 elsewhere."""
    return pages_at(scores, [(first, first + hold_rows) for first, last in runs(firing) if last - first >= hold_rows])


DETECTORS = {"null": null_scores, "band": band_pages}


def max_abs_z(values: np.ndarray, learning: np.ndarray) -> np.ndarray:
    """[T] largest |x − mean| / stddev over the columns of `values` [T, F], against the learning rows."""
    mean = np.nanmean(values[learning], axis=0)
    std = np.nanstd(values[learning], axis=0)
    return np.fmax.reduce(np.abs(values - mean) / np.maximum(std, 1e-12), axis=1)


def band_max(times: np.ndarray, values: np.ndarray, span: float = SERVER_BAND_SPAN) -> np.ndarray:
    """[T] largest band |z| over the columns of `values` [T, F]; NaN where no column has one."""
    return np.fmax.reduce(band_z(times, values, span), axis=1)


ServerDetector = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # (times, values, learning) -> scores
SERVER_DETECTORS: dict[str, ServerDetector] = {
    "max_z": lambda times, values, learning: max_abs_z(values, learning),
    "band": lambda times, values, learning: band_max(times, values),
}
