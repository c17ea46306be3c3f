"""Event-wise detection: alert runs, the overlap rule with its early hour, thresholds learned per entity
from train rows only, recall at a budget, and the two server baselines on hand-computed arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aura_exporter.evaluation.baselines import MIN_SAMPLES, SERVER_DETECTORS, band_max, band_z, max_abs_z
from aura_exporter.evaluation.command import BacktestRows
from aura_exporter.evaluation.events import (
    CurvePoint,
    EntityScores,
    EventFigures,
    alert_runs,
    event_figures,
    learned_thresholds,
    quantile_curve,
    recall_at_budget,
)

MINUTE = 60.0
HOUR = 3600.0
A = ("a",)
B = ("b",)
INCIDENT = (100 * HOUR, 101 * HOUR)
SCORED = (50 * HOUR, 150 * HOUR)


def figures(alerts, incidents=None, scored=None) -> EventFigures:
    return event_figures({A: alerts}, {A: incidents if incidents is not None else [INCIDENT]}, {A: scored or SCORED})


def test_alert_runs_span_first_to_last_alerting_row():
    times = MINUTE * np.arange(7)
    firing = np.array([0, 1, 1, 0, 0, 1, 0], dtype=bool)
    assert alert_runs(times, firing) == [(60.0, 120.0), (300.0, 300.0)]
    assert alert_runs(times, np.zeros(7, dtype=bool)) == []


def test_an_alert_up_to_an_hour_before_an_incident_catches_it():
    just_in = INCIDENT[0] - 59 * MINUTE
    caught = figures([(just_in - 10 * MINUTE, just_in)])
    assert (caught.caught, caught.false_alerts) == (1, 0)
    assert caught.delays_minutes == (-69.0,)
    too_early = INCIDENT[0] - 61 * MINUTE
    missed = figures([(too_early - 10 * MINUTE, too_early)])
    assert (missed.caught, missed.false_alerts, missed.recall) == (0, 1, 0.0)
    assert figures([(INCIDENT[1], INCIDENT[1] + HOUR)]).caught == 1  # overlapping the last minute counts
    assert figures([(INCIDENT[1] + MINUTE, INCIDENT[1] + HOUR)]).false_alerts == 1  # after the incident is false


def test_delay_is_the_first_catching_alerts_start_and_negative_when_early():
    late = figures([(INCIDENT[0] + 5 * MINUTE, INCIDENT[0] + 6 * MINUTE)])
    assert late.delays_minutes == (5.0,) and late.median_delay_minutes == 5.0
    both = figures([(INCIDENT[0] + 5 * MINUTE, INCIDENT[0] + 6 * MINUTE), (INCIDENT[0] - 10 * MINUTE, INCIDENT[0])])
    assert both.delays_minutes == (-10.0,) and (both.alerts, both.caught, both.false_alerts) == (2, 1, 0)
    assert math.isnan(figures([]).median_delay_minutes)


def test_false_alerts_are_per_entity_day_of_scored_span_over_all_entities():
    result = event_figures({A: [(30 * HOUR, 30 * HOUR)], B: [(10 * HOUR, 10 * HOUR), (20 * HOUR, 21 * HOUR)]},
                           {A: [(40 * HOUR, 41 * HOUR)]}, {A: (0.0, 2 * 86400.0), B: (0.0, 86400.0)})
    assert (result.incidents, result.caught, result.alerts, result.false_alerts) == (1, 0, 3, 3)
    assert result.entity_days == 3.0 and result.false_alerts_per_entity_day == 1.0
    assert result.recall == 0.0


def test_alerts_outside_the_scored_span_are_ignored():
    result = figures([(SCORED[0] - 2 * HOUR, SCORED[0] - HOUR), (SCORED[1] + MINUTE, SCORED[1] + HOUR),
                      (SCORED[0] - HOUR, SCORED[0])])  # the last one touches the span's first row: it counts
    assert (result.alerts, result.false_alerts) == (1, 1)


def test_an_incident_is_caught_by_its_own_entitys_alerts_only():
    result = event_figures({A: [], B: [INCIDENT]}, {A: [INCIDENT]}, {A: SCORED, B: SCORED})
    assert (result.incidents, result.caught, result.false_alerts) == (1, 0, 1)


def entity(scores, learning_rows: int, key=A) -> EntityScores:
    scores = np.asarray(scores, dtype=np.float64)
    learning = np.arange(len(scores)) < learning_rows
    return EntityScores(key, MINUTE * np.arange(len(scores)), scores, learning, ~learning)


def test_thresholds_come_from_the_learning_rows_only():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=200)
    base = learned_thresholds(entity(scores, 100), [0.5, 0.9])
    np.testing.assert_allclose(base, np.quantile(scores[:100], [0.5, 0.9]))
    changed_test = scores.copy()
    changed_test[100:] += 50.0
    np.testing.assert_array_equal(learned_thresholds(entity(changed_test, 100), [0.5, 0.9]), base)
    changed_learning = scores.copy()
    changed_learning[:100] += 1.0
    assert np.all(learned_thresholds(entity(changed_learning, 100), [0.5, 0.9]) > base)
    with_gaps = scores.copy()
    with_gaps[:10] = np.nan  # NaN rows neither learn nor alert
    np.testing.assert_allclose(learned_thresholds(entity(with_gaps, 100), [0.5]), np.quantile(scores[10:100], [0.5]))
    assert learned_thresholds(entity(np.full(4, np.nan), 2), [0.5]).tolist() == [np.inf]


def test_with_a_page_budget_thresholds_come_from_the_rows_where_it_had_learned():
    times = MINUTE * np.arange(6)
    learning = np.array([1, 1, 1, 1, 0, 0], dtype=bool)
    usual = np.array([np.nan, np.nan, 3.0, 0.5, 0.2, 0.1])  # its first rows ran on the fixed thresholds
    rows = BacktestRows({"host": "a"}, times, np.zeros(6), np.zeros(6), learning, usual)
    np.testing.assert_array_equal(rows.threshold_rows(), [0, 0, 1, 1, 0, 0])
    without = BacktestRows({"host": "a"}, times, np.zeros(6), np.zeros(6), learning, np.full(6, np.nan))
    np.testing.assert_array_equal(without.threshold_rows(), learning)


def test_each_entity_alerts_above_its_own_thresholds_on_scored_rows():
    quiet = np.zeros(200)
    quiet[:100] = np.linspace(0.0, 1.0, 100)
    quiet[150:153] = 2.0  # above a, below what b learned
    loud = quiet.copy()
    loud[:100] *= 10.0
    incidents = {A: [(150 * MINUTE, 152 * MINUTE)], B: [(150 * MINUTE, 152 * MINUTE)]}
    point = quantile_curve([entity(quiet, 100, A), entity(loud, 100, B)], incidents, quantiles=[0.99])[0]
    assert point.quantile == 0.99
    assert (point.figures.alerts, point.figures.caught, point.figures.incidents) == (1, 1, 2)
    assert point.figures.entity_days == pytest.approx(2 * 99 * MINUTE / 86400.0)


def test_a_constant_score_never_alerts():
    curve = quantile_curve([entity(np.ones(300), 150)], {A: [(200 * MINUTE, 210 * MINUTE)]})
    assert all(point.figures.alerts == 0 for point in curve)
    assert recall_at_budget(curve, 0.0) == 0.0


def test_recall_at_budget_is_the_best_recall_within_the_budget():
    def point(quantile, caught, false_alerts):
        return CurvePoint(quantile, EventFigures(10, caught, caught + false_alerts, false_alerts, 10.0, ()))

    curve = [point(0.99, 9, 30), point(0.999, 6, 5), point(0.9999, 3, 1)]
    assert recall_at_budget(curve, 1.0) == 0.6
    assert recall_at_budget(curve, 0.1) == 0.3
    assert recall_at_budget(curve, 10.0) == 0.9
    assert recall_at_budget(curve, 0.05) == 0.0


def test_max_abs_z_is_against_the_learning_rows_mean_and_std():
    values = np.array([[1.0, 5.0], [3.0, 5.0], [6.0, 5.0], [2.0, 5.5]])
    learning = np.array([True, True, False, False])  # column 0: mean 2, std 1; column 1 never moved
    scores = max_abs_z(values, learning)
    np.testing.assert_allclose(scores[:3], [1.0, 1.0, 4.0])
    assert scores[3] > 1e9  # a metric flat through training that moves is as anomalous as it gets


def test_band_max_includes_the_current_sample_and_nothing_after_it():
    span = MIN_SAMPLES * MINUTE  # (t − span, t] holds MIN_SAMPLES rows
    rows = MIN_SAMPLES + 3
    times = MINUTE * np.arange(rows)
    values = np.zeros((rows, 2))
    values[MIN_SAMPLES - 1, 0] = 1.0  # a flat metric moves: 1 against mean 1/12 and std √11/12
    values[:, 1] = np.arange(rows) % 2  # alternating 0/1: mean 1/2, std 1/2
    z = band_z(times, values, span)
    assert np.isnan(z[: MIN_SAMPLES - 1]).all()  # too few samples yet
    assert z[MIN_SAMPLES - 1, 0] == pytest.approx(math.sqrt(MIN_SAMPLES - 1))
    assert z[MIN_SAMPLES, 0] == pytest.approx(1 / math.sqrt(MIN_SAMPLES - 1))  # 0 against the same mean and std
    np.testing.assert_allclose(z[MIN_SAMPLES - 1:, 1], 1.0)
    scores = band_max(times, values, span)
    np.testing.assert_allclose(scores[MIN_SAMPLES - 1:], np.max(z[MIN_SAMPLES - 1:], axis=1))
    later = values.copy()
    later[MIN_SAMPLES:] = 100.0
    assert band_max(times, later, span)[MIN_SAMPLES - 1] == scores[MIN_SAMPLES - 1]
    np.testing.assert_array_equal(band_z(times, values[:, 1], span), band_z(times, values, span)[:, 1])


def test_server_detectors_share_one_signature():
    rng = np.random.default_rng(1)
    times = MINUTE * np.arange(300)
    values = rng.random((300, 3))
    learning = np.arange(300) < 150
    for detector in SERVER_DETECTORS.values():
        scores = detector(times, values, learning)
        assert scores.shape == (300,) and np.isfinite(scores[MIN_SAMPLES:]).all()
