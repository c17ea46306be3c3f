"""Novelty (topology/novelty.py): a state the series has never been in stands out, a rhythm it keeps
does not, a new normal stops standing out, and nothing after a step changes what was said of it."""

from __future__ import annotations

import numpy as np
import pytest

from aura_exporter.config import ConfigError, parse_config
from aura_exporter.topology.novelty import RECORD_TOLERANCE, SHORT, NoveltyTracker
from aura_exporter.topology.stage import TopologyStage
from aura_exporter.windows import Windows

STEP = 300.0
WINDOW = 48
MEMORY, WARM_UP = 8640, 200  # the defaults at 5-minute steps (a month, 16 h 40 min), checked below
WARM = WARM_UP + SHORT + 40  # steps before the tracker says anything


def seasonal(steps: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(steps)
    return 50 + 10 * np.sin(2 * np.pi * t / 288) + rng.normal(0, 0.5, steps)


def replay(series: np.ndarray, history: int = 500, dimension: int = 3, scales: tuple[int, ...] = (1,),
           what: str = "zscore", every: int = 1) -> np.ndarray:
    """[T, E] what the tracker says (`what`: its z-score or its records) at the end of each cycle when
    cycles run every `every` steps over [E, T] series."""
    tracker = NoveltyTracker(history, dimension, 1, forget_after=3600, memory=MEMORY, warm_up=WARM_UP, scales=scales)
    said = np.zeros(series.shape[::-1])
    keys = tuple((f"e{i}",) for i in range(len(series)))
    for end in range(WINDOW, series.shape[1] + 1, every):
        windows = Windows("t", ("instance",), keys, ("x",), STEP * np.arange(end - WINDOW, end),
                          series[:, end - WINDOW:end, None])
        said[end - 1] = getattr(tracker.update(windows), what)[:, 0]
    return said


def test_a_spike_stands_out_and_the_rhythm_does_not():
    rng = np.random.default_rng(1)
    series = seasonal(WARM + 600, rng)
    spike = WARM + 400
    series[spike] += 40
    said = replay(series[None])[:, 0]
    assert said[spike] > 6.0
    assert np.max(said[WARM:spike]) < 4.5  # a day and more of the same rhythm: no alert-worthy novelty


def test_one_huge_spike_does_not_deafen_the_entity_to_the_next_smaller_one():
    rng = np.random.default_rng(9)
    series = seasonal(WARM + 2100, rng)
    huge, later = WARM + 1500, WARM + 2000
    series[huge] += 300.0  # hundreds of times the usual distance (15 times the range: see the spread's floor)
    series[later] += 40.0  # the ordinary spike of the first test, 500 steps later
    said = replay(series[None])[:, 0]
    assert said[huge] > 6.0 and said[later] > 6.0, (said[huge], said[later])


def test_a_wobble_of_a_tiny_share_of_the_range_is_no_news_however_quiet_the_series():
    """A series almost flat (noise 0.01) that once burst to 100: a later bump of 0.5, fifty times its noise
    but half a percent of its range, would be 7.5σ with a spread that small; it counts as at least 0.1%
    of the range, and the bump stays quiet."""
    rng = np.random.default_rng(10)
    series = rng.normal(0, 0.01, WARM + 500)
    series[WARM + 100: WARM + 103] += 100.0
    series[WARM + 400] += 0.5
    said = replay(series[None])[:, 0]
    assert said[WARM + 100: WARM + 110].max() > 6.0 and said[WARM + 400: WARM + 406].max() < 1.0


def test_a_new_level_stands_out_once_then_becomes_the_norm():
    rng = np.random.default_rng(2)
    series = seasonal(WARM + 900, rng)
    shift = WARM + 300
    series[shift:] += 30
    said = replay(series[None])[:, 0]
    assert np.max(said[shift:shift + SHORT]) > 4.5
    assert np.max(said[shift + 300:]) < 4.5  # the new level is a state it has now been in


def test_nothing_after_a_step_changes_what_was_said_of_it():
    rng = np.random.default_rng(3)
    series = seasonal(WARM + 200, rng)
    series[WARM + 120] -= 25
    whole = replay(series[None])[:, 0]
    cut = WARM + 100
    assert np.array_equal(replay(series[None, :cut])[:, 0], whole[:cut])


def test_a_slower_rhythm_of_familiar_steps_stands_out_at_a_coarser_scale():
    """A square wave that stays up and down twice as long: every step and every three steps are ones it
    has been in (single-step novelty stays quiet), but 36 steps at one level never happened before."""
    rng = np.random.default_rng(5)
    t = np.arange(1200)
    change = 900
    series = np.where(t < change, (t // 24) % 2, ((t - change) // 48) % 2) * 10.0 + rng.normal(0, 0.5, len(t))
    fine = replay(series[None])[:, 0]
    both = replay(series[None], scales=(1, 12))[:, 0]
    assert np.max(fine[change:]) < 4.5 and np.max(both[WARM:change]) < 4.5
    assert np.max(both[change:]) > 10.0
    cut = change + 60
    assert np.array_equal(replay(series[None, :cut], scales=(1, 12))[:, 0], both[:cut])  # still causal


def test_a_surprise_is_remembered_after_the_history_forgot_it():
    """A burst of a kind never seen pages; the same burst again, after the history of 500 steps has moved
    on, is still familiar: the points that surprised are kept apart."""
    rng = np.random.default_rng(6)
    series = seasonal(WARM + 1600, rng)
    bursts = (WARM + 300, WARM + 1300)  # a thousand steps apart: the second is past the history's reach
    for start in bursts:
        series[start:start + 6] += np.array([10.0, 25.0, 40.0, 40.0, 25.0, 10.0])
    said = replay(series[None])[:, 0]
    first, second = (np.max(said[start:start + 12]) for start in bursts)
    assert first > 6.0 and second < first / 2


def test_a_value_past_every_one_before_by_5_percent_of_their_span_is_a_record():
    """A sawtooth from 0 to 100 whose tooth once reaches 104 (within 5% of the span: no record), and a
    later one 110 then 116 (each more than 5% past the highest before: records, as a share of the span)."""
    rng = np.random.default_rng(8)
    tooth = 51
    ramp = np.tile(np.linspace(0.0, 100.0, tooth), 14)[:WARM + 400] + rng.normal(0, 0.1, WARM + 400)
    top = 6 * tooth + tooth - 1  # a tooth's last step, after the warm-up
    later = top + tooth
    ramp[top - 1: top + 1] = [102.0, 104.0]
    ramp[later - 3: later + 1] = [102.0, 104.0, 110.0, 116.0]
    records = replay(ramp[None], what="record", every=3)[:, 0]
    assert np.all(records[:later - 1] == 0.0)  # the warm-up's own climbs and the small excess are no records
    assert records[later - 1: later + 3].max() == pytest.approx(6.0 / 104.3, abs=0.003)  # 110 past 104
    low = replay(-ramp[None], what="record", every=3)[:, 0]
    assert low[later - 1: later + 3].min() == pytest.approx(-6.0 / 104.3, abs=0.003)  # below the lowest: negative
    cut = later - 1
    assert np.array_equal(replay(ramp[None, :cut], what="record", every=3)[:, 0], records[:cut])  # causal
    assert RECORD_TOLERANCE == 0.05


def test_entities_are_judged_apart_and_forgotten_when_gone_long():
    rng = np.random.default_rng(4)
    calm, spiky = seasonal(WARM + 50, rng), seasonal(WARM + 50, rng)
    spiky[-1] += 50
    said = replay(np.stack([calm, spiky]))
    assert said[-1, 1] > 6.0 and said[-1, 0] < 4.5
    tracker = NoveltyTracker(100, 2, 1, forget_after=3600, memory=MEMORY, warm_up=WARM_UP)
    values = rng.normal(size=(2, WINDOW, 1))
    tracker.update(Windows("t", ("instance",), (("a",), ("b",)), ("x",), STEP * np.arange(WINDOW), values))
    tracker.update(Windows("t", ("instance",), (("b",),), ("x",), STEP * np.arange(12, WINDOW + 12), values[1:]))
    assert set(tracker.entities) == {("a",), ("b",)}  # a gap of an hour: a's history is kept
    tracker.update(Windows("t", ("instance",), (("b",),), ("x",), STEP * np.arange(13, WINDOW + 13), values[1:]))
    assert list(tracker.entities) == [("b",)]  # more than an hour: forgotten
    assert tracker.entities[("b",)].scales[0].points.shape == (100, 1, 2)  # memory is bounded by the history


def test_steps_with_gaps_are_skipped_not_judged():
    tracker = NoveltyTracker(100, 3, 1, forget_after=3600, memory=MEMORY, warm_up=WARM_UP)
    values = np.full((1, WINDOW, 1), np.nan)
    said = tracker.update(Windows("t", ("instance",), (("a",),), ("x",), STEP * np.arange(WINDOW), values))
    assert said.zscore.tolist() == [[0.0]] and said.record.tolist() == [[0.0]] and tracker.entities[("a",)].scales[0].stored == 0


@pytest.mark.parametrize(("step", "memory", "warm_up"), [("5m", MEMORY, WARM_UP), ("15s", 172800, 4000)])
def test_memory_and_warm_up_are_durations_whatever_the_step(step, memory, warm_up):
    """A month of memory and 16 h 40 min of warm-up at any step (what NAB was tuned with at 5-minute steps)."""
    analysis = parse_config(config(1000).replace("step: 1m", f"step: {step}").replace("window: 1h", "window: 4h")
                            + "    forecast: {enabled: false, input_steps: 48}\n").analyses[0]
    tracker = TopologyStage(analysis).novelty
    assert (tracker.memory, tracker.warm_up) == (memory, warm_up)
    assert {(h.memory, h.warm_up) for h in tracker._new_entity(1).scales} == {(memory, warm_up)}


def config(novelty: int, scales: str = "[1]") -> str:
    return f"""
prometheus: {{url: "http://localhost:9090"}}
analyses:
  - name: a
    entity_labels: [instance]
    step: 1m
    window: 1h
    features: {{x: {{query: up, role: performance}}}}
    topology: {{embedding_dimension: 3, novelty_history: {novelty}, novelty_scales: {scales}}}
"""


def test_novelty_history_is_off_by_default_and_checked():
    assert parse_config(config(1000)).analyses[0].topology.novelty_history == 1000
    assert parse_config(config(0)).analyses[0].topology.novelty_history == 0
    with pytest.raises(ConfigError, match="novelty_history"):
        parse_config(config(5))


def test_novelty_scales_are_checked_against_the_window():
    assert parse_config(config(1000, "[6, 1, 6]")).analyses[0].topology.novelty_scales == (1, 6)
    assert parse_config(config(1000, "[20]")).analyses[0].topology.novelty_scales == (20,)  # 3 × 20 = the hour
    for bad in ("[]", "[0]", "[1.5]", "6", "[true]", "[21]"):
        with pytest.raises(ConfigError, match="novelty_scales"):
            parse_config(config(1000, bad))


def test_a_sparser_file_replayed_keeps_memory_and_warm_up_in_rows():
    """The backtest replays a file sampled twice as sparsely with every duration doubled (NAB's hourly files)."""
    from aura_exporter.backtest.command import rescaled

    analysis = parse_config(config(1000)).analyses[0]
    dense, sparse = TopologyStage(analysis).novelty, TopologyStage(rescaled(analysis, 2.0)).novelty
    assert (sparse.memory, sparse.warm_up) == (dense.memory, dense.warm_up)
