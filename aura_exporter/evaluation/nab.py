"""The Numenta Anomaly Benchmark's scoring rules (NAB v1.0/v1.1, Lavin & Ahmad 2015; Ahmad et al. 2017).

Per file, every row after the probationary period (the first 15% of rows, at most 750) gets a
weight: inside a labeled window, a scaled sigmoid of its position (≈ +1 at the window's start, ≈ 0 at
its end, times tpWeight); outside, a false positive's cost (−fpWeight before any window; after a
window, a sigmoid that grows from ≈ 0 right after it to −fpWeight three window-lengths later). At a
threshold, every row whose anomaly score reaches it is a detection: a window counts its best (that
is, earliest) detection or, with none, −fnWeight; false positives add up. One threshold per profile
is chosen for the whole corpus, and the sum is normalised so that the null detector (never alerts)
scores 0 and the perfect one (every window at its start) scores 100.

Our implementation evaluates every candidate threshold exactly, rather than NAB's local search, so
it can only find the same threshold or a better one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aura_exporter.backtest.files import PROBATION_SHARE

PROBATION_CAP = 750  # 15% of 5,000 rows


@dataclass(frozen=True)
class Profile:
    """A NAB cost matrix (config/profiles.json)."""

    name: str
    tp: float
    fp: float
    fn: float


PROFILES = (
    Profile("standard", tp=1.0, fp=0.11, fn=1.0),
    Profile("reward_low_fp", tp=1.0, fp=0.22, fn=1.0),
    Profile("reward_low_fn", tp=1.0, fp=0.11, fn=2.0),
)


@dataclass(frozen=True)
class LabeledSeries:
    """One file's anomaly scores and its labeled windows, as inclusive [start, end] row indices."""

    name: str
    scores: np.ndarray  # [N] in [0, 1]
    windows: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class CorpusScore:
    profile: Profile
    threshold: float
    raw: float
    null: float
    perfect: float
    normalized: float
    detected_windows: int
    windows: int
    false_positives: int


def scaled_sigmoid(position: np.ndarray | float) -> np.ndarray:
    """NAB's scaledSigmoid: 2·σ(−5x) − 1, and −1 from x = 3 on."""
    x = np.asarray(position, dtype=np.float64)
    return np.where(x >= 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * x)) - 1.0)


def probation_rows(rows: int) -> int:
    return int(min(math.floor(PROBATION_SHARE * rows), PROBATION_CAP))


def row_weights(rows: int, windows: Sequence[tuple[int, int]], profile: Profile) -> tuple[np.ndarray, np.ndarray]:
    """Each row's weight if detected, and its window (index into `windows`, −1 outside any,
    −2 for the probationary rows, which never count)."""
    weights = np.empty(rows)
    owner = np.full(rows, -1, dtype=np.int64)
    index = np.arange(rows)
    max_tp = float(scaled_sigmoid(-1.0))
    previous_end, previous_width = None, None
    cursor = 0
    for number, (start, end) in enumerate(sorted(windows)):
        _false_positive_weights(weights, index[cursor:start], previous_end, previous_width, profile)
        width = end - start + 1
        inside = index[start:end + 1]
        weights[start:end + 1] = scaled_sigmoid(-(end - inside + 1) / width) * profile.tp / max_tp
        owner[start:end + 1] = number
        previous_end, previous_width, cursor = end, width, end + 1
    _false_positive_weights(weights, index[cursor:], previous_end, previous_width, profile)
    owner[:probation_rows(rows)] = -2
    return weights, owner


def _false_positive_weights(weights: np.ndarray, rows: np.ndarray, previous_end: int | None,
                            previous_width: int | None, profile: Profile) -> None:
    if previous_end is None or previous_width is None:
        weights[rows] = -profile.fp
    else:  # a one-row window would divide by zero in NAB; it treats that as far away
        position = np.abs(rows - previous_end) / max(previous_width - 1, 1e-9)
        weights[rows] = scaled_sigmoid(position) * profile.fp


def file_scores(series: LabeledSeries, profile: Profile, thresholds: np.ndarray) -> np.ndarray:
    """The file's raw NAB score at each threshold (a row is detected when its score ≥ threshold)."""
    weights, owner = row_weights(len(series.scores), series.windows, profile)
    scorable = owner != -2
    totals = np.zeros(len(thresholds))
    outside = scorable & (owner == -1)
    totals += _cumulative_at(series.scores[outside], weights[outside], thresholds)
    for number in np.unique(owner[owner >= 0]):
        rows = owner == number
        totals += _best_at(series.scores[rows], weights[rows], thresholds, -profile.fn)
    return totals


def _cumulative_at(scores: np.ndarray, weights: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Σ weights of the rows with score ≥ threshold, for each threshold."""
    order = np.argsort(-scores, kind="stable")
    ranked, cumulative = scores[order], np.concatenate([[0.0], np.cumsum(weights[order])])
    detected = np.searchsorted(-ranked, -thresholds, side="right")  # how many scores are ≥ each threshold
    return cumulative[detected]


def _best_at(scores: np.ndarray, weights: np.ndarray, thresholds: np.ndarray, missed: float) -> np.ndarray:
    """max(weights of the rows with score ≥ threshold), or `missed` when none is, for each threshold."""
    order = np.argsort(-scores, kind="stable")
    ranked, best = scores[order], np.concatenate([[missed], np.maximum.accumulate(weights[order])])
    detected = np.searchsorted(-ranked, -thresholds, side="right")
    return np.maximum(best[detected], missed)


def score_corpus(corpus: Sequence[LabeledSeries], profile: Profile, threshold: float | None = None) -> CorpusScore:
    """The corpus' best threshold for the profile (or the one given) and its normalised score."""
    candidates = (np.array([threshold]) if threshold is not None
                  else np.unique(np.concatenate([s.scores for s in corpus] + [np.array([np.inf])])))
    totals = sum((file_scores(s, profile, candidates) for s in corpus), start=np.zeros(len(candidates)))
    best = int(np.argmax(totals))  # ties go to the lowest threshold with that score (np.unique sorts)
    chosen = float(candidates[best])
    null = float(sum(file_scores(s, profile, np.array([np.inf]))[0] for s in corpus))
    perfect = profile.tp * sum(len(s.windows) for s in corpus)
    detected, false_positives = _counts(corpus, chosen)
    return CorpusScore(profile, chosen, float(totals[best]), null, perfect,
                       100.0 * (float(totals[best]) - null) / (perfect - null) if perfect != null else 0.0,
                       detected, sum(len(s.windows) for s in corpus), false_positives)


def _counts(corpus: Sequence[LabeledSeries], threshold: float) -> tuple[int, int]:
    """Windows with a detection, and detections outside windows (after probation), at a threshold."""
    detected = false_positives = 0
    for series in corpus:
        _, owner = row_weights(len(series.scores), series.windows, PROFILES[0])
        hits = series.scores >= threshold
        detected += len(np.unique(owner[hits & (owner >= 0)]))
        false_positives += int(np.sum(hits & (owner == -1)))
    return detected, false_positives
