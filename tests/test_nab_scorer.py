"""The NAB scorer against cases worked by hand from NAB's published formula.

One file of 1,000 rows (probation: the first 150) with one window, rows 500–599 (width 100):
- a detection at the window's first row: scaledSigmoid(−1)/scaledSigmoid(−1) = +1 (tpWeight 1);
- at its last row: position −1/100, 2/(1+e^−0.05) − 1 = 0.024995, / 0.986614 = +0.025334;
- a false positive before any window: −fpWeight = −0.11 (standard);
- right after the window (row 600): position 1/99, 2/(1+e^0.050505) − 1 = −0.025247, × 0.11 = −0.0027772;
- a missed window: −fnWeight (−1 standard, −2 reward_low_fn).
"""

from __future__ import annotations

import numpy as np
import pytest

from aura_exporter.evaluation.nab import PROFILES, LabeledSeries, file_scores, probation_rows, row_weights, score_corpus

STANDARD, LOW_FP, LOW_FN = PROFILES
ROWS, WINDOW = 1000, (500, 599)


def file_with(detections: list[int], windows=(WINDOW,), rows: int = ROWS, name: str = "f") -> LabeledSeries:
    scores = np.zeros(rows)
    scores[detections] = 1.0
    return LabeledSeries(name, scores, tuple(windows))


def raw(series: LabeledSeries, profile=STANDARD) -> float:
    """The file's score with its detections (score 1) as the only ones: threshold 1."""
    return float(file_scores(series, profile, np.array([1.0]))[0])


def test_probation_is_15_percent_capped_at_750_rows():
    assert probation_rows(1000) == 150 and probation_rows(4032) == 604 and probation_rows(22695) == 750


def test_weights_worked_by_hand():
    weights, owner = row_weights(ROWS, [WINDOW], STANDARD)
    assert weights[500] == pytest.approx(1.0)
    assert weights[599] == pytest.approx(0.025334, abs=1e-6)
    assert weights[550] == pytest.approx((2 / (1 + np.exp(-2.5)) - 1) / (2 / (1 + np.exp(-5)) - 1), abs=1e-9)
    assert weights[200] == pytest.approx(-0.11)
    assert weights[600] == pytest.approx(-0.0027772, abs=1e-7)
    assert weights[599 + 3 * 99] == pytest.approx(-0.11)  # three widths past: the full cost
    assert (owner[:150] == -2).all() and (owner[500:600] == 0).all() and owner[600] == -1


@pytest.mark.parametrize("detections, expected", [
    ([500], 1.0),                     # at the window's start
    ([599], 0.025334),                # at its end
    ([500, 550, 599], 1.0),           # only the earliest (best) detection of a window counts
    ([], -1.0),                       # a missed window
    ([200], -1.11),                   # a false positive, and the window missed
    ([200, 500], 0.89),
    ([100, 500], 1.0),                # detections in the probationary period are ignored
    ([500, 600], 1.0 - 0.0027772),    # a false positive just after the window costs little
])
def test_standard_profile_file_scores(detections, expected):
    assert raw(file_with(detections)) == pytest.approx(expected, abs=1e-6)


def test_profiles_weigh_false_positives_and_misses_differently():
    assert raw(file_with([200]), LOW_FP) == pytest.approx(-1.22)
    assert raw(file_with([200]), LOW_FN) == pytest.approx(-2.11)
    assert raw(file_with([]), LOW_FN) == pytest.approx(-2.0)


def test_normalised_between_null_and_perfect():
    perfect = score_corpus([file_with([500])], STANDARD)
    assert (perfect.null, perfect.perfect, perfect.normalized) == (-1.0, 1.0, pytest.approx(100.0))
    assert score_corpus([file_with([])], STANDARD).normalized == pytest.approx(0.0)
    late = score_corpus([file_with([599])], STANDARD)
    assert late.normalized == pytest.approx(100 * (0.025334 + 1) / 2, abs=1e-4)


def test_one_threshold_is_chosen_for_the_whole_corpus():
    """File a's window gets 0.9 at its start and file b has a 0.8 false positive before its window
    and 0.7 at its window's start. Threshold 0.7 gives 1 − 0.11 + 1 = 1.89; 0.9 gives 1 − 1 = 0;
    0.8 gives 1 − 0.11 − 1 = −0.11; nothing gives −2. The scorer must pick 0.7."""
    a = np.zeros(ROWS)
    a[500] = 0.9
    b = np.zeros(ROWS)
    b[300], b[500] = 0.8, 0.7
    score = score_corpus([LabeledSeries("a", a, (WINDOW,)), LabeledSeries("b", b, (WINDOW,))], STANDARD)
    assert score.threshold == 0.7 and score.raw == pytest.approx(1.89)
    assert (score.detected_windows, score.windows, score.false_positives) == (2, 2, 1)
    assert score.normalized == pytest.approx(100 * (1.89 + 2) / 4)


def test_a_file_without_windows_only_costs_false_positives():
    quiet = file_with([300, 400], windows=())
    assert raw(quiet) == pytest.approx(-0.22)


def test_the_band_pages_once_per_run_that_outlasts_its_for():
    from aura_exporter.evaluation.baselines import band_pages, pages

    firing = np.array([0, 1, 1, 1, 0, 1, 0, 1, 1], dtype=bool)
    scores = np.linspace(0.1, 0.9, 9)
    np.testing.assert_array_equal(np.flatnonzero(pages(firing, scores)), [1, 5, 7])  # AURA's `for:`: a row fires
    held = pages(firing, scores, hold_rows=1)
    np.testing.assert_array_equal(np.flatnonzero(held), [2, 8])  # the lone row 5 never lasts a second row
    assert pages(firing, scores[::-1], hold_rows=1)[2] == scores[::-1][1]  # the run's highest score so far
    times = 300.0 * np.arange(400)
    values = np.sin(np.arange(400) / 10.0)
    values[300:303] += 20.0  # one excursion of three rows: one page
    paged = band_pages(times, values)
    assert np.flatnonzero(paged).tolist() == [300] and 0.75 < paged[300] < 1.0
