"""Windows: alignment on the step grid, gap filling, and skipped entities by reason."""

from __future__ import annotations

import dataclasses

import numpy as np

from aura_exporter.config import Analysis, Feature
from aura_exporter.sources.base import RangeResult, Series
from aura_exporter.windows import build_lagged, build_windows, fill_gaps, lagged_grid, step_grid

ANALYSIS = Analysis(name="a", entity_labels=("instance",), step=10, window=100, interval=10,
                    features=(Feature("x", "x", "resources"), Feature("y", "y", "network")))


def series(instance: str, timestamps, values) -> Series:
    return Series({"instance": instance, "job": "j"}, np.asarray(timestamps, float), np.asarray(values, float))


def test_grid_ends_on_a_step_multiple():
    grid = step_grid(ANALYSIS, now=1005.0)
    assert grid[-1] == 1000 and len(grid) == 10 and np.all(np.diff(grid) == 10)


def test_alignment_gap_filling_and_skip_reasons():
    grid = step_grid(ANALYSIS, now=1000.0)  # 910..1000
    full = np.arange(10.0)
    holey = grid[[0, 1, 2, 5, 6, 7, 8, 9]]  # two missing steps: filled linearly
    sparse = grid[[0, 9]]  # eight missing: too much
    x = RangeResult("x", (series("ok", grid, full), series("gap", holey, [0, 1, 2, 5, 6, 7, 8, 9]),
                          series("sparse", sparse, [1, 2]), series("dup", grid, full), series("dup", grid, full),
                          series("nan", grid, np.r_[full[:4], np.nan, full[5:]])))
    y = RangeResult("y", (series("ok", grid, full), series("gap", grid, full), series("sparse", grid, full),
                          series("dup", grid, full), series("nan", grid, full), series("only-y", grid, full)))
    windows = build_windows(ANALYSIS, [x, y], grid)
    assert windows.entities == (("gap",), ("nan",), ("ok",))
    assert windows.values.shape == (3, 10, 2)
    np.testing.assert_allclose(windows.values[0, :, 0], np.arange(10.0))  # the gap interpolated
    np.testing.assert_allclose(windows.values[1, :, 0], np.arange(10.0))  # NaN treated as missing
    assert windows.skipped == {"missing_feature": 1, "duplicate_series": 1, "missing_data": 1, "over_max_entities": 0}

    capped = build_windows(dataclasses.replace(ANALYSIS, max_entities=2), [x, y], grid)
    assert capped.entities == (("gap",), ("nan",))  # the same first ones, in label order, every cycle
    assert capped.skipped["over_max_entities"] == 1 and capped.values.shape == (2, 10, 2)


def test_edges_take_the_nearest_value_and_long_gaps_are_not_guessed():
    values = np.array([[np.nan, 1, 2, 3, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, 9, np.nan]]).T[None]
    given = values.copy()
    filled, complete = fill_gaps(values, max_gap=4, max_missing_ratio=0.9)
    np.testing.assert_array_equal(values, given)  # filled in a copy, the caller's array untouched
    assert filled[0, 0, 0] == 1 and filled[0, -1, 0] == 9
    assert not complete[0]  # a run of 6 missing steps is longer than max_gap
    filled, complete = fill_gaps(values, max_gap=6, max_missing_ratio=0.9)
    assert complete[0]
    np.testing.assert_allclose(filled[0, 3:11, 0], np.linspace(3, 9, 8))


def test_points_off_the_grid_are_ignored():
    grid = step_grid(ANALYSIS, now=1000.0)
    x = RangeResult("x", (series("a", np.r_[grid, 2000.0], np.r_[np.arange(10.0), 99]),))
    y = RangeResult("y", (series("a", grid + 4.0, np.arange(10.0)),))  # within half a step: snapped
    windows = build_windows(ANALYSIS, [x, y], grid)
    assert windows.entities == (("a",),)
    assert windows.values[0, -1].tolist() == [9, 9]


def test_lagged_values_are_read_between_fetched_points():
    analysis = dataclasses.replace(ANALYSIS, forecast=dataclasses.replace(ANALYSIS.forecast, context=400.0,
                                                                          input_steps=20))  # a 20 s context step
    grid = step_grid(ANALYSIS, now=1000.0)
    windows = build_windows(ANALYSIS, [RangeResult(f, tuple(series(e, grid, np.zeros(10)) for e in ("a", "b")))
                                       for f in ("x", "y")], grid)
    times = np.array([100.0, 120.0, 150.0, 175.0])  # the last two between points of the 20 s grid
    fetched = lagged_grid(analysis, times)
    assert fetched.tolist() == [100.0, 120.0, 140.0, 160.0, 180.0]
    x = RangeResult("x", (series("a", fetched, 2 * fetched),))  # "b" was not there a season ago
    y = RangeResult("y", (series("a", fetched[[0, 1, 3, 4]], 3 * fetched[[0, 1, 3, 4]]),))  # one point missing
    lagged = build_lagged(analysis, [x, y], fetched, times, windows)
    np.testing.assert_allclose(lagged[0], np.stack([2 * times, 3 * times], axis=1))  # the gap filled, then read
    assert np.isnan(lagged[1]).all()
