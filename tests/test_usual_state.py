"""The state evidence: each entity's recent state against its own usual state (topology/state.py), and
its role agents' joint deviation (council/agents.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from test_council import ANALYSIS, HORIZONS, SIGMAS, agent_named, config_yaml, council_inputs, evidence, settled

from aura_exporter.config import parse_config
from aura_exporter.council.agents import STATE_CLIP, Column, joint_deviation
from aura_exporter.council.evidence import MIN_PEERS, gather_evidence
from aura_exporter.council.explanation import explain
from aura_exporter.council.stage import CouncilStage
from aura_exporter.topology.state import SPAN_FLOOR, WARM_UP, StateTracker
from aura_exporter.windows import Windows

STEPS = 60
STEP = 60.0
INTERVAL = 300.0


def window(cycle: int, values: np.ndarray, entities=(("a",),)) -> Windows:
    """The window of one cycle: [E, STEPS, F] values ending at `cycle` intervals."""
    end = cycle * INTERVAL
    return Windows("t", ("instance",), tuple(entities), tuple(f"f{k}" for k in range(values.shape[2])),
                   end - STEP * np.arange(STEPS - 1, -1, -1), values)


def replay(tracker: StateTracker, series: np.ndarray) -> np.ndarray:
    """[cycles, F] z-scores of one entity whose recent state (every step of its window) is series[cycle]."""
    return np.stack([tracker.update(window(c, np.broadcast_to(series[c], (1, STEPS, series.shape[1])).copy()))
                     .zscore[0] for c in range(len(series))])


def test_entities_judged_together_are_judged_as_each_alone():
    """The tracker judges all entities at once; each must get exactly what it would alone, whatever the others:
    one seen from the start, one joining later (its first sight: the window's recent eighth), one with gaps and
    missing samples."""
    rng = np.random.default_rng(5)
    cycles, features = WARM_UP + 60, 3
    series = {key: 10.0 * k + rng.normal(size=(cycles, STEPS, features)) for k, key in enumerate("abc")}
    series["c"][rng.random(series["c"].shape) < 0.1] = np.nan
    seen = {"a": range(cycles), "b": range(40, cycles), "c": [c for c in range(cycles) if c % 9]}
    together = StateTracker(forget_after=86400.0)
    alone = {key: StateTracker(forget_after=86400.0) for key in series}
    for cycle in range(cycles):
        keys = [key for key in series if cycle in seen[key]]
        if not keys:
            continue
        both = together.update(window(cycle, np.stack([series[k][cycle] for k in keys]), [(k,) for k in keys]))
        for row, key in enumerate(keys):
            own = alone[key].update(window(cycle, series[key][cycle][None], [(key,)]))
            np.testing.assert_array_equal(both.zscore[row], own.zscore[0])
            np.testing.assert_array_equal(both.warm[row], own.warm[0])
    assert both.warm.all() and np.abs(both.zscore).min() > 0  # judged, not only warming up


def test_nothing_is_said_while_warming_up_then_noise_stays_near_one_sigma():
    rng = np.random.default_rng(1)
    series = 50.0 + rng.normal(size=(WARM_UP + 2000, 20))
    zscores = replay(StateTracker(forget_after=86400.0 * 30), series)
    assert not zscores[:WARM_UP].any()
    settled = zscores[WARM_UP:]
    assert np.std(settled) == pytest.approx(1.0, abs=0.1)
    joint = joint_deviation(settled)
    assert np.quantile(joint, 0.999) < 4.0  # twenty features are not twenty chances to reach 5σ


def test_a_step_in_one_feature_stands_out_and_is_learned_as_the_new_usual_over_weeks():
    rng = np.random.default_rng(2)
    series = rng.normal(size=(WARM_UP + 4000, 3))
    series[WARM_UP + 100:, 1] += 10.0
    zscores = replay(StateTracker(forget_after=86400.0 * 30), series)
    assert zscores[WARM_UP + 100, 1] > 6.0
    assert abs(zscores[WARM_UP + 100, 0]) < 4.0
    assert np.abs(zscores[-200:, 1]).mean() < 2.0  # two weeks of 5-minute cycles later: the usual state


def test_an_idle_feature_that_bursts_counts_in_shares_of_its_range_not_in_its_idle_spread():
    series = np.zeros((WARM_UP + 300, 1))
    series[::50] = 1.0  # a disk written in bursts
    zscores = replay(StateTracker(forget_after=86400.0 * 30), series)
    assert np.isfinite(zscores).all()
    assert zscores.max() <= 1.0 / SPAN_FLOOR + 1e-9


def test_missing_samples_are_no_evidence_and_teach_nothing():
    tracker = StateTracker(forget_after=86400.0 * 30)
    rng = np.random.default_rng(3)
    replay(tracker, rng.normal(size=(WARM_UP + 10, 2)))
    usual = tracker.entities[("a",)]
    before = usual.mean.copy(), usual.cycles.copy()
    values = np.full((1, STEPS, 2), np.nan)
    values[0, :, 0] = 100.0
    deviation = tracker.update(window(WARM_UP + 10, values))
    assert deviation.zscore[0, 0] > 10 and deviation.zscore[0, 1] == 0.0
    assert usual.mean[1] == before[0][1] and usual.cycles[1] == before[1][1]
    assert deviation.units[0, 0] == pytest.approx(100.0 - before[0][0])


def test_an_entity_unseen_for_forget_after_starts_afresh():
    tracker = StateTracker(forget_after=3600.0)
    tracker.update(window(1, np.ones((1, STEPS, 1))))
    tracker.update(window(100, np.ones((1, STEPS, 1)), entities=(("b",),)))
    assert list(tracker.entities) == [("b",)]


def test_the_joint_deviation_is_normal_under_noise_and_grows_with_every_feature_off():
    rng = np.random.default_rng(4)
    noise = joint_deviation(rng.normal(size=(100_000, 18)))
    assert np.mean(noise > 3.0) < 2e-3  # close to a normal deviate's 1.3e-3 where it is not 0
    assert joint_deviation(np.zeros((1, 18)))[0] == 0.0
    one = np.zeros((1, 18))
    one[0, 0] = 9.0
    two = one.copy()
    two[0, 1] = 9.0
    assert joint_deviation(two)[0] > joint_deviation(one)[0] > SIGMAS
    clipped = one.copy()
    clipped[0, 0] = 1e6
    assert joint_deviation(clipped)[0] == pytest.approx(joint_deviation(one * STATE_CLIP / 9.0)[0])


def test_each_role_agent_weighs_its_own_features_states_and_the_explanation_names_them():
    state = np.zeros((2, 4))
    state[0, 0] = 7.0  # cpu, the resources agent's only feature here, off on the first entity
    resources = agent_named("resources").assess(evidence(np.zeros((2, 4)), state=state), SIGMAS)
    column = resources.columns.index(Column("state", None))
    assert resources.scores[0, column] > 0.88 and resources.scores[1, column] < 1e-3
    performance = agent_named("performance").assess(evidence(np.zeros((2, 4)), state=state), SIGMAS)
    assert performance.score[0] < 1e-3

    windows, topology = council_inputs(np.zeros((2, 4)))
    topology = replace(topology, state=state, state_units=state)
    verdict = settled(CouncilStage(ANALYSIS), windows, topology)
    assert verdict.decision[0] >= 1 and verdict.decision[1] == 0
    explained = explain(verdict, topology.critical[0], {}, max(HORIZONS), 0)
    assert "its resources metrics together are" in explained.summary
    assert "(cpu +7.0σ)" in explained.summary


def test_a_level_against_its_own_baseline_counts_only_until_the_usual_state_is_learned():
    state = np.zeros((3, 4))
    state[0, 0] = 9.0  # a small fleet: each host against its own baseline window
    windows, topology = council_inputs(state)
    learning = gather_evidence(ANALYSIS, windows, topology, None)
    assert learning.level[0, 0] == pytest.approx(9.0)
    learned = gather_evidence(ANALYSIS, windows, replace(topology, state_warm=np.ones((3, 4), dtype=bool)), None)
    assert not learned.level.any()
    fleet = np.zeros((MIN_PEERS + 1, 4))
    fleet[0, 0] = 9.0  # a fleet: against the peers, whatever the state evidence knows
    windows, topology = council_inputs(fleet)
    warm = replace(topology, state_warm=np.ones(fleet.shape, dtype=bool))
    assert gather_evidence(ANALYSIS, windows, warm, None).level[0, 0] == pytest.approx(9.0)


def test_entities_that_are_no_peers_are_never_isolated_from_each_other():
    windows, topology = council_inputs(np.zeros((3, 4)), isolation=[6.0, 0.0, 0.0])
    assert gather_evidence(ANALYSIS, windows, topology, None).isolation[0] == pytest.approx(6.0)
    unrelated = parse_config(config_yaml(council="{peers: false}")).analyses[0]
    assert not gather_evidence(unrelated, windows, topology, None).isolation.any()


def test_a_restored_tracker_carries_on_as_if_it_had_never_stopped():
    rng = np.random.default_rng(5)
    series = rng.normal(size=(WARM_UP + 60, 3))
    before = StateTracker(forget_after=86400.0 * 30)
    replay(before, series[:WARM_UP + 30])
    after = StateTracker(forget_after=86400.0 * 30)
    assert after.restore(before.state(), features=3)
    later = series[WARM_UP + 30:]

    def carry_on(tracker: StateTracker) -> np.ndarray:
        return np.stack([tracker.update(window(WARM_UP + 30 + c, np.broadcast_to(row, (1, STEPS, 3)).copy())).zscore[0]
                         for c, row in enumerate(later)])

    expected, restored = carry_on(before), carry_on(after)
    np.testing.assert_array_equal(restored, expected)
    assert np.abs(restored).max() > 0  # warm at once, not after another warm-up


def test_unusable_saved_states_are_refused_and_leave_nothing():
    tracker = StateTracker(forget_after=3600.0)
    tracker.update(window(1, np.ones((1, STEPS, 2))))
    saved = tracker.state()
    fresh = StateTracker(forget_after=3600.0)
    assert not fresh.restore(saved, features=3)  # other features
    assert not fresh.restore({k: v for k, v in saved.items() if not k.endswith("mean")}, features=2)
    assert not fresh.restore({**saved, "state_version": np.array(99)}, features=2)
    assert not fresh.entities
    assert fresh.restore(saved, features=2) and list(fresh.entities) == [("a",)]


def test_the_explanation_says_what_a_level_was_compared_with():
    fleet = np.zeros((MIN_PEERS + 1, 4))
    fleet[0, 0] = 9.0
    windows, topology = council_inputs(fleet)
    unrelated = parse_config(config_yaml(council="{peers: false}")).analyses[0]
    for analysis, words in ((ANALYSIS, "above its peers"), (unrelated, "above its baseline")):
        verdict = settled(CouncilStage(analysis), windows, topology)
        assert verdict.evidence.peers == (analysis is ANALYSIS)
        explained = explain(verdict, topology.critical[0], {}, max(HORIZONS), 0)
        assert f"cpu is 9.0σ {words}" in explained.summary
