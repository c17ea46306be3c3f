"""The forecast tailored to each entity: the model's median combined with simple forecasts by their errors on
that entity (aura_exporter/forecast/combination.py, tailoring.py)."""

from __future__ import annotations

import numpy as np
from test_state import ANALYSIS, START, cycle_with_storage, run_cycles

from aura_exporter.forecast.combination import MIN_OUTCOMES, Combination, candidate_names, candidates
from aura_exporter.forecast.tailoring import Tailoring, banded

STEP = 300.0
AHEAD = 12  # the horizon, in steps: an hour
DAY = 288
KEYS = (("repeats daily",), ("wanders",))


def fleet(days: int, seed: int = 0) -> np.ndarray:
    """[T, 2] one entity whose days repeat, one that wanders (a random walk)."""
    rng = np.random.default_rng(seed)
    t = np.arange(days * DAY)
    daily = 10 * np.sin(2 * np.pi * t / DAY) + rng.normal(0, 0.3, len(t))
    return np.stack([daily, np.cumsum(rng.normal(0, 0.3, len(t)))], axis=1)


def choices_at(values: np.ndarray, t: int, model_noise: np.ndarray) -> np.ndarray:
    """[E, 1, 1, K] the candidates for step t + AHEAD: a model as good for both entities (the truth plus noise of
    sd 2), the last value, the last hour's mean, the value a day before the target."""
    context = values[max(0, t - 11) : t + 1].T[:, :, None]  # [E, n, 1]
    median = (values[t + AHEAD] + model_noise)[:, None, None]
    anchors = values[t + AHEAD - DAY][:, None, None, None] if t + AHEAD >= DAY else np.full((2, 1, 1, 1), np.nan)
    return candidates(median, context, anchors)


def replay(combination: Combination, values: np.ndarray, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Each step's combined median [T, E] and candidates [T, E, K], for AHEAD steps later."""
    rng = np.random.default_rng(seed)
    combined, made = [], []
    for t in range(len(values) - AHEAD):
        choices = choices_at(values, t, rng.normal(0, 2.0, 2))
        combined.append(combination.update(KEYS, t * STEP, values[t][:, None], choices)[0][:, 0, 0])
        made.append(choices[:, 0, 0])
    return np.array(combined), np.array(made)


def mean_errors(forecasts: np.ndarray, values: np.ndarray, first: int) -> np.ndarray:
    """[E] mean absolute error of forecasts [T, E] made from step `first` on."""
    return np.abs(forecasts[first:] - values[first + AHEAD : len(forecasts) + AHEAD]).mean(axis=0)


def test_each_entity_leans_on_the_simple_forecast_that_works_for_it():
    values = fleet(days=5)
    combined, made = replay(Combination((AHEAD * STEP,), STEP), values)
    last_day = len(combined) - DAY
    model = mean_errors(made[..., 0], values, last_day)
    naive = {name: mean_errors(made[..., k], values, last_day) for k, name in enumerate(candidate_names((86400.0,)))}
    ours = mean_errors(combined, values, last_day)
    assert naive["86400s before"][0] < 0.6 * model[0] and naive["last value"][1] < 0.6 * model[1]  # as built
    assert np.all(ours < 0.8 * model), (ours, model)
    best = np.minimum.reduce(list(naive.values()))
    assert np.all(ours < 1.25 * best), (ours, best)  # each near its own best, not a fleet-wide choice


def test_the_model_alone_until_an_entity_has_outcomes_and_where_its_context_is_incomplete():
    values = fleet(days=2)
    combination = Combination((AHEAD * STEP,), STEP)
    combined, made = replay(combination, values)
    learning = AHEAD + (MIN_OUTCOMES - 1) * 3  # the first due at AHEAD, then every third step (WAITING an hour)
    np.testing.assert_array_equal(combined[:learning], made[:learning, :, 0])
    assert not np.array_equal(combined[-10:], made[-10:, :, 0])
    gaps = choices_at(values, len(values) - AHEAD - 1, np.zeros(2))
    gaps[0, ..., 0] = np.nan  # no forecast from an incomplete context
    gaps[1, ..., 3] = np.nan  # no value a day before
    out = combination.combined(gaps)
    assert np.isnan(out[0, 0, 0]) and np.isfinite(out[1, 0, 0])


def test_no_look_ahead():
    values = fleet(days=2)
    cut = len(values) // 2
    changed = values.copy()
    changed[cut + 1 :] += 50.0  # everything after `cut` is different
    first, _ = replay(Combination((AHEAD * STEP,), STEP), values)
    second, _ = replay(Combination((AHEAD * STEP,), STEP), changed)
    # forecasts made up to `cut - AHEAD` saw (as candidates and as outcomes) nothing after `cut`
    np.testing.assert_array_equal(first[: cut - AHEAD + 1], second[: cut - AHEAD + 1])
    assert not np.array_equal(first[cut + 1 :], second[cut + 1 :])


def test_the_band_of_a_combined_median_spans_both_medians_narrowed_by_the_error_ratio():
    model = np.array([-1.0, 0.0, 2.0]).reshape(1, 1, 1, 3)  # a band 1 below and 2 above the model's median
    out = banded(model, np.full((1, 1, 1), 3.0), np.full((1, 1, 1), 0.5))[0, 0, 0]
    np.testing.assert_allclose(out, [-0.5, 3.0, 4.0])  # from half a side below the model's to half one above ours
    same = banded(model, np.zeros((1, 1, 1)), np.ones((1, 1, 1)))
    np.testing.assert_array_equal(same, model)  # no combination yet: the model's band


def test_what_each_entity_learned_is_saved_with_the_baselines_and_refused_for_other_horizons(tmp_path):
    before = cycle_with_storage(tmp_path)
    before.restore(START)
    run_cycles(before, 3)
    tailoring = before.forecast.tailoring
    keys = tuple(before.topology.baselines.entities)
    features, horizons = len(ANALYSIS.features), len(before.forecast.horizons)
    seasons, context = len(ANALYSIS.forecast.seasons), 4
    rng = np.random.default_rng(5)
    quantiles = np.tile([-1.0, 0.0, 1.0], (len(keys), features, horizons, 1))
    for t in range(400):
        observed = rng.normal(0.0, 3.0, (len(keys), features))
        lagged = rng.normal(0.0, 1.0, (len(keys), seasons, context + horizons, features))
        tailoring.update(keys, START + t * ANALYSIS.interval, observed, quantiles,
                         rng.normal(0.0, 1.0, (len(keys), context, features)), lagged)
    tailoring.update(keys, START + 400 * ANALYSIS.interval, observed, quantiles,
                     rng.normal(0.0, 1.0, (len(keys), context, features)), None)  # no season at hand this cycle
    assert tailoring.combination.errors.shape[-1] == len(candidate_names(ANALYSIS.forecast.seasons)) + 1  # + combined
    assert np.all(tailoring.bands.log_factors[..., 0, :] > 0.2)  # the nearest horizon's band has widened
    assert np.all(tailoring.combination.outcomes[..., 0] >= MIN_OUTCOMES)
    before.save()
    after = cycle_with_storage(tmp_path)
    after.restore(START + 3 * ANALYSIS.interval)
    restored = after.forecast.tailoring
    assert restored.combination.keys == keys and restored.bands.keys == keys
    np.testing.assert_array_equal(restored.combination.errors, tailoring.combination.errors)
    np.testing.assert_array_equal(restored.combination.outcomes, tailoring.combination.outcomes)
    np.testing.assert_array_equal(restored.bands.log_factors, tailoring.bands.log_factors)
    np.testing.assert_array_equal(restored.model_bands.log_factors, tailoring.model_bands.log_factors)
    other = Combination(tuple(h * 2 for h in before.forecast.horizons), ANALYSIS.step)
    assert not other.restore(tailoring.state(), features, len(candidate_names(ANALYSIS.forecast.seasons)))
    assert not other.keys
    fresh = Tailoring(ANALYSIS)
    bands_only = {name: value for name, value in tailoring.state().items() if name.startswith("bands_")}
    assert not fresh.restore(bands_only, features)  # a state file from before the combination: the model's bands kept
    assert fresh.model_bands.keys == keys and not fresh.combination.keys and not fresh.bands.keys
    assert Tailoring(ANALYSIS).restore(Tailoring(ANALYSIS).state(), features)  # nothing learned: nothing to restore


def test_the_breach_reads_the_models_own_trend_where_the_combination_leans_on_the_last_value():
    """A flat series the model forecasts badly: the combination learns to lean on the last value; then a ramp
    the model carries forward is still what the breach reads (Tailored.model), with its median untouched."""
    analysis = ANALYSIS
    tailoring = Tailoring(analysis)
    keys, features = (("host",),), len(analysis.features)
    horizons = len(tailoring.combination.horizons)
    rng = np.random.default_rng(7)
    context = np.zeros((1, 4, features))
    for t in range(3000):
        observed = rng.normal(0.0, 0.1, (1, features))
        wrong = np.tile([1.0, 2.0, 3.0], (1, features, horizons, 1))  # the model: 2 too high, every time
        tailored = tailoring.update(keys, START + t * analysis.interval, observed, wrong, context, None)
    assert np.all(np.abs(tailored.exported[..., 1]) < 0.5)  # leaning on the last value and the context's mean
    rising = np.tile([4.0, 5.0, 6.0], (1, features, horizons, 1))  # a trend the model now carries forward
    tailored = tailoring.update(keys, START + 3000 * analysis.interval, np.zeros((1, features)), rising, context, None)
    np.testing.assert_array_equal(tailored.model[..., 1], 5.0)
    assert np.all(tailored.exported[..., 1] < 2.0)
