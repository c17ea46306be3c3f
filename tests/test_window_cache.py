"""The window cache: cycles that fetch only the steps they lack see exactly what whole-window fetches
see, through entities coming and going, gaps, duplicates, failed cycles and time going back."""

from __future__ import annotations

import numpy as np

from aura_exporter.config import Analysis, Feature
from aura_exporter.sources.base import RangeResult, Series
from aura_exporter.window_cache import FULL_EVERY, REFETCH_STEPS, WindowCache
from aura_exporter.windows import place_series, step_grid

ANALYSIS = Analysis(name="a", entity_labels=("instance",), step=10, window=100, interval=20,
                    features=(Feature("x", "x", "resources"), Feature("y", "y", "network")))


def present(instance: str, feature: str, t: float) -> bool:
    """A fleet that changes: b arrives late, c leaves, d has a gap in y, e is twice in x for a while."""
    if instance == "b":
        return t >= 1300
    if instance == "c":
        return t < 1250
    if instance == "d" and feature == "y":
        return not 1400 <= t < 1440
    return True


def answer(start: float, end: float) -> list[RangeResult]:
    """What Prometheus would answer for [start, end]: the samples on the step grid, per feature."""
    times = np.arange(np.ceil(start / 10) * 10, end + 1e-9, 10.0)
    results = []
    for feature in ("x", "y"):
        series = []
        for instance in ("a", "b", "c", "d", "e"):
            kept = np.array([t for t in times if present(instance, feature, t)])
            if kept.size:
                series.append(Series({"instance": instance}, kept, np.sin(kept / 70) + ord(instance)))
        duplicated = times[(times >= 1500) & (times < 1560)]
        if feature == "x" and duplicated.size:
            series.append(Series({"instance": "e", "pod": "other"}, duplicated, -duplicated))
        results.append(RangeResult(feature, tuple(series)))
    return results


def test_partial_fetches_see_what_whole_windows_see():
    cache = WindowCache(ANALYSIS)
    nows = [1000.0 + 20 * i for i in range(40)]
    nows = nows[:12] + nows[14:30] + [1100.0] + nows[30:]  # two cycles lost to a failed fetch, then time goes back
    partial = 0
    for now in nows:
        grid = step_grid(ANALYSIS, now)
        start = cache.fetch_start(grid)
        partial += start > grid[0]
        placed = cache.place(answer(start, grid[-1]), grid, start)
        keys, values, duplicates = place_series(ANALYSIS, answer(grid[0], grid[-1]), grid)
        assert placed.keys == keys, now
        np.testing.assert_array_equal(placed.values, values)
        np.testing.assert_array_equal(placed.duplicates, duplicates)
    assert partial >= len(nows) * (FULL_EVERY - 1) / FULL_EVERY - 4  # most cycles fetch a few steps


def test_a_partial_fetch_asks_again_for_the_newest_cached_steps():
    cache = WindowCache(ANALYSIS)
    grid = step_grid(ANALYSIS, 1000.0)
    cache.place(answer(grid[0], grid[-1]), grid, float(grid[0]))
    later = step_grid(ANALYSIS, 1020.0)
    assert cache.fetch_start(later) == grid[-1] - REFETCH_STEPS * ANALYSIS.step
    assert cache.fetch_start(step_grid(ANALYSIS, 5000.0)) == step_grid(ANALYSIS, 5000.0)[0]  # nothing in common


def test_a_late_sample_in_the_refetched_steps_is_seen():
    cache = WindowCache(ANALYSIS)
    grid = step_grid(ANALYSIS, 1000.0)
    early = answer(grid[0], grid[-1])
    late = [RangeResult(r.feature, tuple(Series(s.labels, s.timestamps[:-1], s.values[:-1]) for s in r.series))
            for r in early]  # the newest sample had not arrived when the cycle asked
    cache.place(late, grid, float(grid[0]))
    later = step_grid(ANALYSIS, 1020.0)
    start = cache.fetch_start(later)
    placed = cache.place(answer(start, later[-1]), later, start)
    np.testing.assert_array_equal(placed.values, place_series(ANALYSIS, answer(later[0], later[-1]), later)[1])
