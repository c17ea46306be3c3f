"""The detectors AURA is compared with, scored by the same rules in the same run.

- null: never alerts (NAB's zero).
- band: the usual Prometheus-native rule, `abs(x - avg_over_time(x[span])) > 3 * stddev_over_time(x[span])`
  with `for:` one step, scored like AURA's backtest: by its pages, the highest |z| / (1 + |z|) of the run at
  the row where each alert starts firing, 0 elsewhere (so the scorer's threshold search can still ask for a larger k).
  Like PromQL, the range includes the current sample and nothing after it.
"""

from __future__ import annotations

import numpy as np

from aura_exporter.backtest.outputs import pages_at
from aura_exporter.backtest.replay import runs

BAND_SPAN = 86400.0  # avg_over_time(x[1d]), a common choice for seasonal server metrics
MIN_SAMPLES = 12
BAND_SIGMAS = 3.0
HOLD_ROWS = 1  # the rule's `for:`: one step, as the backtest holds AURA's alerts (mixin COUNCIL_FOR on 5-minute rows)


def null_scores(times: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.zeros(len(times))


def band_scores(times: np.ndarray, values: np.ndarray, span: float = BAND_SPAN) -> np.ndarray:
    present_values = values[np.isfinite(values)]
    origin = present_values[0] if present_values.size else 0.0  # centring keeps the sums of squares exact
    finite = np.where(np.isfinite(values), values - origin, 0.0)
    present = np.isfinite(values).astype(np.float64)
    sums = np.concatenate([[0.0], np.cumsum(finite)])
    squares = np.concatenate([[0.0], np.cumsum(finite * finite)])
    counts = np.concatenate([[0.0], np.cumsum(present)])
    first = np.searchsorted(times, times - span, side="right")  # (t - span, t], like a PromQL range
    last = np.arange(1, len(times) + 1)
    n = counts[last] - counts[first]
    mean = (sums[last] - sums[first]) / np.maximum(n, 1)
    variance = np.maximum((squares[last] - squares[first]) / np.maximum(n, 1) - mean * mean, 0.0)
    z = np.abs(finite - mean) / np.maximum(np.sqrt(variance), 1e-12)
    return np.where((n >= MIN_SAMPLES) & (present > 0), z / (1.0 + z), 0.0)


def band_pages(times: np.ndarray, values: np.ndarray) -> np.ndarray:
    scores = band_scores(times, values)
    return pages(scores > BAND_SIGMAS / (1.0 + BAND_SIGMAS), scores)


def pages(firing: np.ndarray, scores: np.ndarray, hold_rows: int = HOLD_ROWS) -> np.ndarray:
    """At the row where each run of firing rows has lasted `hold_rows` more rows, the run's highest score
    so far (as AURA's pages carry the highest risk since the decision); 0 elsewhere."""
    return pages_at(scores, [(first, first + hold_rows) for first, last in runs(firing) if last - first >= hold_rows])


DETECTORS = {"null": null_scores, "band": band_pages}
