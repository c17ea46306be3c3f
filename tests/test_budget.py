"""The page budget: thresholds learned from the fleet's or each entity's own history (council/budget.py)."""

from __future__ import annotations

import dataclasses
import subprocess
import time

import numpy as np
import pytest
from conftest import sample_value
from test_council import ANALYSIS, evidence

from aura_exporter.config import CouncilConfig, parse_config
from aura_exporter.config.model import ConfigError
from aura_exporter.council.agents import sigma_score, sigma_strength
from aura_exporter.council.budget import OWN_SHARE, PageBudget, fit_tail, rises_past, strength
from aura_exporter.council.decision import DecisionKeeper, combined_risk
from aura_exporter.council.stage import CouncilStage
from aura_exporter.exposition.render import render_snapshot
from aura_exporter.exposition.views import entity_summary
from aura_exporter.snapshot import AnalysisResult, SnapshotHolder
from aura_exporter.topology import TopologyStage
from aura_exporter.windows import Windows

DEMO = parse_config(open("aura_exporter/examples/demo.yml").read())

INTERVAL = 300.0
WEEK_CYCLES = int(7 * 86400 / INTERVAL)
SETTLED = np.ones(64, dtype=bool)
ONE = np.array([True])


def fleet_scores(rng, entities: int, cycles: int, features: int = 38) -> np.ndarray:
    """[cycles, entities, 1] a stationary fleet: each entity's strongest of `features` heavy-tailed
    deviations (Student's t, 3 degrees of freedom), each entity with its own noise level."""
    level = rng.uniform(1.0, 3.0, entities)
    deviations = np.abs(rng.standard_t(3, size=(cycles, entities, features))) * level[None, :, None]
    return deviations.max(axis=2)[:, :, None]


def budget_risk(budget: PageBudget, keeper: DecisionKeeper, keys: tuple, sigmas: np.ndarray, now: float) -> np.ndarray:
    """[E] the budget's risk from [E, agents] sigmas (each agent's strongest evidence)."""
    return budget.assess(keys, strength(sigma_strength(sigmas, 5.0)), keeper.warning(keys), SETTLED[:len(keys)],
                         now)[1]


def replay_pages(sigmas: np.ndarray, council: CouncilConfig, budget: PageBudget | None) -> np.ndarray:
    """[entities] pages (warnings taken) per entity over the cycles of [cycles, entities, agents] sigmas."""
    keeper = DecisionKeeper(council, forget_after=3600.0)
    keys = tuple((f"e{i}",) for i in range(sigmas.shape[1]))
    pages = np.zeros(len(keys), dtype=int)
    previous = np.zeros(len(keys), dtype=int)
    for cycle, now in enumerate(np.arange(sigmas.shape[0]) * INTERVAL):
        risk = combined_risk(sigma_score(sigmas[cycle], council.sigmas))
        if budget is not None:
            risk = budget_risk(budget, keeper, keys, sigmas[cycle], float(now))
        decision = keeper.decide(keys, risk, float(now))
        pages += (decision >= 1) & (previous == 0)
        previous = decision
    return pages


@pytest.mark.parametrize("shared", [False, True], ids=["entity", "fleet"])
def test_a_stationary_fleet_pages_within_its_budget(shared):
    rng = np.random.default_rng(7)
    council = CouncilConfig(false_pages_per_week=1.0)
    weeks, learning = 6, WEEK_CYCLES
    scores = fleet_scores(rng, 20, learning + weeks * WEEK_CYCLES)
    budget = PageBudget(1.0, council.warn, INTERVAL, 3600.0, council.confirm_cycles, council.clear_cycles, shared)
    learned = replay_pages(scores[:learning], council, budget)
    assert learned.sum() <= 3 * 20  # the first week: a day with no tail at all, then tails from a few days
    paged = replay_pages(scores[learning:], council, budget)
    assert paged.sum() / (20 * weeks) <= 1.5  # within the budget of one a week (sampling noise allowed)
    assert paged.sum() > 0  # ...which is a rate, not silence
    # each entity has its own noise level: shared, the noisiest page more than their share, but within OWN_SHARE
    # of it (one entity's six weeks are a small sample: 2.5 a week allowed where it counts alone)
    assert paged.max() / weeks <= (1.5 * OWN_SHARE if shared else 2.5)
    raw = replay_pages(scores[learning:], council, None)
    assert raw.sum() / (20 * weeks) > 5  # fixed thresholds page far more often on the same fleet


def test_a_step_change_still_pages_at_once():
    rng = np.random.default_rng(3)
    council = CouncilConfig(false_pages_per_week=1.0)
    scores = fleet_scores(rng, 4, 2 * WEEK_CYCLES)
    budget = PageBudget(1.0, council.warn, INTERVAL, 3600.0, council.confirm_cycles, council.clear_cycles)
    keeper = DecisionKeeper(council, forget_after=3600.0)
    keys = tuple((f"e{i}",) for i in range(4))
    for cycle in range(len(scores)):
        risk = budget_risk(budget, keeper, keys, scores[cycle], cycle * INTERVAL)
        keeper.decide(keys, risk, cycle * INTERVAL)
    assert np.all(np.isfinite([budget.threshold(k) for k in keys]))
    stepped = np.array([[40.0], [0.0], [0.0], [0.0]])  # far beyond anything in two weeks of t-noise
    decisions = []
    for cycle in range(len(scores), len(scores) + 3):
        now = cycle * INTERVAL
        risk = budget_risk(budget, keeper, keys, stepped, now)
        decisions.append(keeper.decide(keys, risk, now))
    assert decisions[1][0] == 2 and risk[0] > council.quorum  # critical within confirm_cycles
    assert all(d[1:].max() == 0 for d in decisions)


def recurring_spikes(rng, entities: int, cycles: int, every: int, height: float) -> np.ndarray:
    """[cycles, entities, 1] the stationary fleet, its first entity also at `height` for three cycles (a quarter
    of an hour) every `every` cycles."""
    scores = fleet_scores(rng, entities, cycles)
    for offset in range(3):
        scores[every // 2 + offset::every, 0, 0] = height
    return scores


@pytest.mark.parametrize("shared", [False, True], ids=["entity", "fleet"])
def test_what_one_entity_does_often_pages_when_its_fleet_never_does_it(shared):
    """An entity whose own history is full of one kind of spike (three a week: a recurring incident) learns
    it as its normal behaviour when it counts alone, and pages for none of them; counted with its fleet,
    where such spikes are rare, each pages (but no more than OWN_SHARE times its share)."""
    rng = np.random.default_rng(11)
    council = CouncilConfig(false_pages_per_week=1.0)
    weeks = 4
    scores = recurring_spikes(rng, 8, (weeks + 2) * WEEK_CYCLES, WEEK_CYCLES // 3, 40.0)
    budget = PageBudget(1.0, council.warn, INTERVAL, 3600.0, council.confirm_cycles, council.clear_cycles, shared)
    replay_pages(scores[:2 * WEEK_CYCLES], council, budget)
    paged = replay_pages(scores[2 * WEEK_CYCLES:], council, budget)
    if shared:
        assert 3 * weeks <= paged[0] <= OWN_SHARE * 1.5 * weeks + 1
    else:
        assert paged[0] <= 1.5 * weeks  # its budget's worth at most: most of its 12 spikes are its normal
    assert paged[1:].sum() / (7 * weeks) <= 1.5


def test_rises_closer_together_than_a_decision_clears_are_one_page():
    """A warning clears only after clear_cycles calm cycles: a strength that dips and rises again within them
    pages once, and the budget counts it once (counting it twice set thresholds for half the pages asked)."""
    flapping = np.tile([0.0, 5.0, 0.0, 5.0] + [0.0] * 20, 50)  # 50 bursts of two rises, 2 cycles apart
    assert rises_past(flapping, np.array([0.0]))[0] == 100
    assert rises_past(flapping, np.array([0.0]), gap=3)[0] == 50
    tail = fit_tail([flapping], INTERVAL, clear=3)
    assert tail is not None and tail.episodes_above(1.0) == pytest.approx(50 / (len(flapping) * INTERVAL / 604800))


def test_an_entity_learns_for_a_day_before_it_has_a_rate_or_a_threshold():
    budget = PageBudget(1.0, 0.4, INTERVAL, 3600.0)
    keys = (("new",),)
    rates = [budget.assess(keys, np.array([100.0 if c % 50 == 0 else 1.0]), np.array([False]), ONE,
                           c * INTERVAL)[0][0]
             for c in range(200)]
    assert np.isnan(rates).all() and np.isnan(budget.threshold(keys[0]))


def test_while_an_entity_learns_the_council_keeps_its_fixed_thresholds():
    stage = CouncilStage(ANALYSIS)
    assert stage.budget is not None  # the budget is on by default
    level = np.zeros((2, 4))
    level[0, 0] = 9.0
    verdict = stage.weigh(evidence(level), (("sick",), ("well",)), 0.0)
    assert np.isnan(verdict.usual_per_week).all()
    np.testing.assert_allclose(verdict.risk, combined_risk(verdict.scores))
    assert verdict.risk[0] > 0.9 and verdict.risk[1] < 0.05


def test_strength_keeps_the_order_of_the_risk_without_saturating():
    sigmas = np.array([[1.0, 0.0], [6.0, 0.0], [30.0, 5.0], [30.0, 30.0], [60.0, 30.0]])
    s = strength(sigma_strength(sigmas, 5.0))
    assert np.all(np.diff(s) > 0) and np.all(np.isfinite(s))
    np.testing.assert_allclose(1 - np.exp(-s[:3]), combined_risk(sigma_score(sigmas[:3], 5.0)))


def test_the_tail_extrapolates_beyond_what_history_has_seen():
    rng = np.random.default_rng(1)
    strengths = rng.exponential(1.0, WEEK_CYCLES)
    tail = fit_tail([strengths], INTERVAL)
    assert tail is not None
    # exponential strengths: a week of 2016 cycles exceeds x about 2016·e^−x times
    assert tail.threshold(1.0) == pytest.approx(np.log(WEEK_CYCLES), abs=1.0)
    assert tail.threshold(0.1) > tail.threshold(1.0) > tail.u
    assert tail.episodes_above(tail.threshold(0.5)) == pytest.approx(0.5)


def test_a_budget_above_what_the_floor_is_risen_past_still_clears_its_warnings():
    rng = np.random.default_rng(5)
    council = CouncilConfig(false_pages_per_week=1.0)
    budget = PageBudget(1.0, council.warn, INTERVAL, 3600.0, council.confirm_cycles, council.clear_cycles)
    keeper = DecisionKeeper(council, forget_after=3600.0)
    keys = (("e",),)
    scores = fleet_scores(rng, 1, 3 * WEEK_CYCLES)
    warning = []
    for cycle in range(len(scores)):
        if cycle == 2 * WEEK_CYCLES:  # learned: now ask for twice as many pages as it rises past its floor
            budget.per_week = 2.0 * budget.entities[keys[0]].tail.rates[0]
        risk = budget_risk(budget, keeper, keys, scores[cycle], cycle * INTERVAL)
        warning.append(keeper.decide(keys, risk, cycle * INTERVAL)[0] >= 1)
    last_week = np.array(warning[-WEEK_CYCLES:], dtype=int)
    pages = int((np.diff(last_week) == 1).sum())
    assert pages > 20 and last_week.mean() < 0.5  # often (a page lasts until clear_cycles calm ones), each clears


def test_budget_configuration_is_checked():
    base = """
prometheus: {url: 'http://x:9090'}
analyses:
  - name: a
    entity_labels: [instance]
    step: 1m
    window: 1h
    features: {cpu: {query: 'cpu', role: resources}}
    council: %s
"""
    assert parse_config(base % "{false_pages_per_week: 0.5}").analyses[0].council.false_pages_per_week == 0.5
    assert parse_config(base % "{}").analyses[0].council.false_pages_per_week == 1.0
    calibrated = parse_config(base % "{calibrate: true}").analyses[0].council
    assert calibrated.calibrate and calibrated.false_pages_per_week == 0.0  # calibrate replaces the default budget
    with pytest.raises(ConfigError, match="false_pages_per_week"):
        parse_config(base % "{false_pages_per_week: -1}")
    with pytest.raises(ConfigError, match="choose one"):
        parse_config(base % "{false_pages_per_week: 1, calibrate: true}")


def test_hourly_cycles_still_learn_a_tail():
    budget = PageBudget(1.0, 0.4, 3600.0, 86400.0)
    assert budget.min_cycles >= 200 and budget.history >= 400  # a week of hourly cycles is too few for a tail
    rng = np.random.default_rng(2)
    for cycle in range(budget.min_cycles + 12):
        budget.assess((("a",),), rng.exponential(1.0, 1), np.array([False]), ONE, cycle * 3600.0)
    assert np.isfinite(budget.threshold(("a",)))


def test_the_budget_is_exported_explained_and_promtool_clean():
    analysis = DEMO.analyses[0]
    analysis = dataclasses.replace(analysis, interval=300.0,  # a day of settled cycles to learn: 288
                                   council=dataclasses.replace(analysis.council, false_pages_per_week=2.0))
    rng = np.random.default_rng(5)
    council, topology_stage = CouncilStage(analysis), TopologyStage(analysis)
    keys = (("db-1",), ("db-2",))
    steps = analysis.steps
    for cycle in range(500):  # the usual state warms up (200 cycles), then the budget learns
        now = cycle * analysis.interval
        windows = Windows(analysis.name, ("instance",), keys, tuple(f.name for f in analysis.features),
                          now - analysis.step * np.arange(steps)[::-1], rng.normal(size=(2, steps, 5)))
        topology = topology_stage.run(windows, now=now)
        verdict = council.run(windows, topology, None, now=now)
    assert np.all(np.isfinite(verdict.usual_per_week))
    result = AnalysisResult(analysis, now, time.time(), windows, topology, verdict)
    text = render_snapshot(SnapshotHolder().publish(result, "node", time.time())).text
    decoded = text.decode()
    assert sample_value(decoded, "aura_page_budget_per_week", {"analysis": analysis.name}) == 2.0
    assert sample_value(decoded, "aura_usual_episodes_per_week", {"instance": "db-1"}) == pytest.approx(
        verdict.usual_per_week[0])
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "normal behaviour is this unusual" in result.explanation(0).summary
    assert entity_summary(result, 1)["usual_per_week"] == pytest.approx(verdict.usual_per_week[1])


@pytest.mark.parametrize("shared", [False, True], ids=["entity", "fleet"])
def test_a_restored_budget_pages_where_it_left_off(shared):
    rng = np.random.default_rng(4)
    budget = PageBudget(1.0, 0.4, INTERVAL, 86400.0, 2, 3, shared)
    keys = (("a",), ("b",))
    for cycle in range(408):  # the last refit at the last cycle: a restore refits on the same strengths
        budget.assess(keys, rng.exponential(1.0, 2), np.zeros(2, dtype=bool), SETTLED[:2], cycle * INTERVAL)
    copy = PageBudget(1.0, 0.4, INTERVAL, 86400.0, 2, 3, shared)
    assert copy.restore(budget.state("same"), "same")
    assert [copy.threshold(k) for k in keys] == pytest.approx([budget.threshold(k) for k in keys])
    assert (copy.fleet_tail is not None) == shared
    assert not PageBudget(1.0, 0.4, INTERVAL, 86400.0, 2).restore(budget.state("one"), "another")
    assert not PageBudget(1.0, 0.4, 60.0, 86400.0, 2).restore(budget.state("same"), "same")  # other ring size
    assert not PageBudget(1.0, 0.4, INTERVAL, 86400.0, 2).restore({}, "same")


def test_a_fortnight_too_quiet_to_count_keeps_the_last_tail():
    budget = PageBudget(1.0, 0.4, INTERVAL, 86400.0)
    rng = np.random.default_rng(3)
    key = ("a",)
    learning = budget.min_cycles + 12
    for cycle in range(learning):
        budget.assess((key,), rng.exponential(1.0, 1), np.array([False]), ONE, cycle * INTERVAL)
    assert np.isfinite(budget.threshold(key))
    for cycle in range(learning, learning + budget.history + 24):  # a fortnight of one flat strength: no episodes
        rate = budget.assess((key,), np.array([0.5]), np.array([False]), ONE, cycle * INTERVAL)[0][0]
    assert fit_tail([budget.entities[key].strengths()], INTERVAL) is None
    assert np.isfinite(budget.threshold(key)) and np.isfinite(rate)  # the last tail that could be fitted


def test_rates_are_counted_where_history_has_seen_them():
    rng = np.random.default_rng(0)  # 40 slow episodes of random height, 90 minutes each, 4.5 hours apart
    heights = 1 + rng.exponential(1.0, 40)
    strengths = np.concatenate([np.r_[h * np.sin(np.pi * np.arange(18) / 18), np.zeros(54)] for h in heights])
    tail = fit_tail([strengths], INTERVAL)
    assert tail is not None
    each = 7 * 86400 / (len(strengths) * INTERVAL)  # a rise in this history, per week
    # 20 rises: the lowest level no more than 20 episodes rise past is the 21st highest episode's peak
    assert tail.threshold(20 * each) == pytest.approx(np.sort(heights)[-21])
    assert tail.episodes_above(tail.threshold(20 * each)) == pytest.approx(20 * each)
    assert tail.episodes_above(tail.u) < 10 * each <= tail.episodes_above(np.nextafter(tail.u, 0))
    assert fit_tail([np.ones(288)], INTERVAL) is None  # nothing ever stands out: no tail


def test_rises_are_counted_per_level_as_a_threshold_there_would_page():
    strengths = np.array([0.0, 5.0, 4.0, 5.0, 4.0, 5.0, 0.0, 2.0, 0.0])
    levels = np.unique(strengths)
    rises = rises_past(strengths, levels)
    assert dict(zip(levels.tolist(), rises.tolist(), strict=True)) == {0.0: 2, 2.0: 1, 4.0: 3, 5.0: 0}
    rng = np.random.default_rng(8)
    noise = rng.standard_t(3, 500)
    levels = np.unique(noise)
    rises = rises_past(noise, levels)
    for level, count in list(zip(levels, rises, strict=True))[::25]:  # each equals the runs above it
        above = noise > level
        assert count == int(above[0]) + int((above[1:] & ~above[:-1]).sum())


def test_unsettled_evidence_is_not_learned_from():
    budget = PageBudget(1.0, 0.4, INTERVAL, 86400.0)
    key = ("new",)
    for cycle in range(400):  # a new entity's first deviations: against its own window, thousands of sigmas
        budget.assess((key,), np.array([1000.0 * (cycle % 3)]), np.array([False]), np.array([False]),
                      cycle * INTERVAL)
    assert budget.entities[key].count == 0 and np.isnan(budget.threshold(key))
    rng = np.random.default_rng(6)
    for cycle in range(400, 400 + budget.min_cycles + 12):
        budget.assess((key,), rng.exponential(1.0, 1), np.array([False]), ONE, cycle * INTERVAL)
    assert budget.threshold(key) < 20  # learned from its settled strengths alone
