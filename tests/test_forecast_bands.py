"""Forecast bands calibrated per entity from its own outcomes (aura_exporter/forecast/bands.py)."""

from __future__ import annotations

import numpy as np

from aura_exporter.forecast.awaiting import WAITING
from aura_exporter.forecast.bands import BandCalibration

STEP = 60.0
HORIZON = 300.0  # five cycles ahead


def band(median: float = 0.0, half_width: float = 1.0, entities: int = 1) -> np.ndarray:
    """[E, 1, 1, 3] the same 10%, 50% and 90% forecast for every entity: what a model of the whole fleet says."""
    return np.tile([median - half_width, median, median + half_width], (entities, 1, 1, 1)).astype(float)


def replay(bands: BandCalibration, keys, outcomes: np.ndarray, forecast: np.ndarray, start: int = 0) -> np.ndarray:
    """Each cycle's calibrated forecast [T, E, 1, 1, 3], feeding row t of `outcomes` [T, E] as cycle t's values."""
    out = []
    for t, observed in enumerate(outcomes, start):
        out.append(bands.update(keys, t * STEP, observed[:, None], forecast))
    return np.array(out)


def inside(calibrated: np.ndarray, outcomes: np.ndarray) -> np.ndarray:
    """[E] the share of outcomes inside the band that was forecast for them, HORIZON ahead."""
    ahead = int(HORIZON / STEP)
    made, came = calibrated[:-ahead, :, 0, 0], outcomes[ahead:]
    return ((came >= made[..., 0]) & (came <= made[..., 2])).mean(axis=0)


def test_a_band_too_narrow_or_too_wide_settles_where_it_holds_eight_outcomes_in_ten():
    rng = np.random.default_rng(1)
    keys = (("bursty",), ("calm",))
    # the model's band is ±1 for both; the bursty entity's outcomes spread 3 times wider, the calm one's 5 times less
    outcomes = rng.normal(0.0, 1.0, (6000, 2)) * np.array([3.0, 0.2]) / 1.2816
    bands = BandCalibration((HORIZON,), STEP)
    calibrated = replay(bands, keys, outcomes, band(entities=2))
    raw = (np.abs(outcomes) <= 1.0).mean(axis=0)
    assert raw[0] < 0.4 and raw[1] > 0.99  # as the fleet's model says: far from 80% both ways
    settled = inside(calibrated[3000:], outcomes[3000:])
    assert np.all((settled > 0.74) & (settled < 0.86)), settled
    upper = calibrated[-1, :, 0, 0, 2]
    assert 2.0 < upper[0] < 4.5 and 0.1 < upper[1] < 0.35, upper  # each entity its own width
    np.testing.assert_array_equal(calibrated[-1, :, 0, 0, 1], 0.0)  # the median is the model's


def test_each_side_of_the_band_learns_on_its_own():
    rng = np.random.default_rng(2)
    outcomes = np.abs(rng.normal(0.0, 1.0, (4000, 1)))  # never below the median
    calibrated = replay(BandCalibration((HORIZON,), STEP), (("a",),), outcomes, band())
    lower, median, upper = calibrated[-1, 0, 0, 0]
    assert median - lower < 0.6 < upper - median  # nothing fell below: the lower side shrank; the upper held


def test_an_entity_keeps_its_band_when_others_come_and_go():
    rng = np.random.default_rng(3)
    bands = BandCalibration((HORIZON,), STEP)
    outcomes = rng.normal(0.0, 1.0, (3000, 2)) * np.array([4.0, 0.1])
    learned = replay(bands, (("wide",), ("narrow",)), outcomes, band(entities=2))[-1, :, 0, 0, 2]
    # the fleet changes: an entity joins first, the two swap places
    after = bands.update((("new",), ("narrow",), ("wide",)), 3000 * STEP, np.zeros((3, 1)), band(entities=3))
    np.testing.assert_allclose(after[:, 0, 0, 2], [1.0, learned[1], learned[0]], rtol=0.1)
    # one that leaves is forgotten: back, it starts from the model's band again (one outcome judged since)
    bands.update((("narrow",),), 3001 * STEP, np.zeros((1, 1)), band())
    back = bands.update((("wide",),), 3002 * STEP, np.zeros((1, 1)), band())
    assert 0.99 < back[0, 0, 0, 2] <= 1.0


def test_no_look_ahead_and_bounded_waiting():
    rng = np.random.default_rng(4)
    first, second = rng.normal(0.0, 3.0, (2, 2000, 1))
    together = np.concatenate([first[:1000], second[:1000]])
    a, b = BandCalibration((HORIZON, 4 * 3600.0), STEP), BandCalibration((HORIZON, 4 * 3600.0), STEP)
    forecast = np.concatenate([band(), band(half_width=2.0)], axis=2)
    once = replay(a, (("x",),), first[:1000], forecast)
    again = replay(b, (("x",),), together, forecast)
    np.testing.assert_array_equal(once, again[:1000])  # what came later changed nothing before it
    assert len(b.awaiting.queues[0]) <= WAITING + 1 and len(b.awaiting.queues[1]) <= WAITING + 1
    # the 4-hour horizon is judged on one forecast an hour: it moved, but far less often than the 5-minute one
    assert 0 < np.abs(b.log_factors[0, 0, 1]).max() < np.abs(b.log_factors[0, 0, 0]).max()


def test_nothing_to_judge_leaves_the_band_alone():
    bands = BandCalibration((HORIZON,), STEP)
    flat = np.zeros((1, 1, 1, 3))  # a band of no width
    gaps = np.full((1, 1, 1, 3), np.nan)  # no forecast (an incomplete context)
    for t in range(100):
        bands.update((("a",),), t * STEP, np.full((1, 1), 5.0 if t % 2 else np.nan), flat if t % 3 else gaps)
    np.testing.assert_array_equal(bands.log_factors, 0.0)
