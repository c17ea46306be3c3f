"""The council: calibrated evidence, four agents, noisy-OR risk, quorum, hysteresis and explanations."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from aura_exporter.config import Analysis, ConfigError, CouncilConfig, parse_config
from aura_exporter.council import AGENTS, Assessment, Column, CouncilStage, Verdict
from aura_exporter.council.agents import ISOLATION_SIGMAS, RoleAgent, sigma_score, weighing_only
from aura_exporter.council.decision import DecisionKeeper, combined_risk, raw_level, votes
from aura_exporter.council.evidence import MIN_PEERS, Evidence, along_direction, gather_evidence, peer_offset
from aura_exporter.council.explanation import ACTIONS, TOP_CONTRIBUTIONS, explain
from aura_exporter.forecast.stage import Forecast
from aura_exporter.topology import Topology, TopologyStage
from aura_exporter.windows import Windows

FEATURES = ("cpu", "net", "conns", "p99")
ROLES_OF = ("resources", "network", "security", "performance")
SIGMAS = 5.0
HORIZONS = (900.0, 3600.0, 7200.0, 14400.0)


def config_yaml(features: dict[str, str] | None = None, council: str | None = None) -> str:
    features = features or {
        "cpu": "{query: cpu, role: resources, limit: 0.95}",
        "net": "{query: net, role: network}",
        "conns": "{query: conns, role: security}",
        "p99": "{query: p99, role: performance}",
    }
    lines = [
        "prometheus: {url: 'http://prometheus:9090'}",
        "analyses:",
        "  - name: node",
        "    entity_labels: [instance]",
        "    step: 15s",
        "    window: 4m",
        "    features:",
        *(f"      {name}: {spec}" for name, spec in features.items()),
    ]
    if council is not None:
        lines.append(f"    council: {council}")
    return "\n".join(lines) + "\n"


ANALYSIS = parse_config(config_yaml()).analyses[0]


def evidence(level, *, surprise=None, breach=None, time_to_breach=None, drift=None, isolation=None,
             novelty=None, record=None, state=None, features=FEATURES, roles=ROLES_OF) -> Evidence:
    level = np.asarray(level, dtype=float)
    entities = level.shape[0]
    nothing = np.full(level.shape, np.nan)
    return Evidence(
        features=features,
        roles=roles,
        level=level,
        state=np.zeros(level.shape) if state is None else np.asarray(state, dtype=float),
        surprise=nothing if surprise is None else np.asarray(surprise, dtype=float),
        breach=nothing if breach is None else np.asarray(breach, dtype=float),
        time_to_breach=nothing if time_to_breach is None else np.asarray(time_to_breach, dtype=float),
        novelty=nothing if novelty is None else np.asarray(novelty, dtype=float),
        record=nothing if record is None else np.asarray(record, dtype=float),
        drift=np.zeros(entities) if drift is None else np.asarray(drift, dtype=float),
        isolation=np.zeros(entities) if isolation is None else np.asarray(isolation, dtype=float),
        level_units=level,
        settled=np.ones(entities, dtype=bool),
    )


def council_inputs(state, analysis: Analysis = ANALYSIS, units=None, drift=None,
                   isolation=None) -> tuple[Windows, Topology]:
    """Windows and a real Topology whose recent state (in baseline units) is `state` [E, F]."""
    state = np.asarray(state, dtype=float)
    entities, features = state.shape
    steps = analysis.steps
    rng = np.random.default_rng(7)
    windows = Windows(analysis.name, ("instance",), tuple((f"host{i}",) for i in range(entities)),
                      tuple(f.name for f in analysis.features), np.arange(steps) * analysis.step,
                      rng.normal(size=(entities, steps, features)))
    topology = TopologyStage(analysis).run(windows, now=0.0)
    return windows, replace(
        topology,
        scaled=np.repeat(state[:, None, :], steps, axis=1),
        units=np.ones((entities, features)) if units is None else np.asarray(units, dtype=float),
        drift_zscore=np.zeros(entities) if drift is None else np.asarray(drift, dtype=float),
        fleet=replace(topology.fleet, components=1, threshold=1.0,
                      isolation=np.zeros(entities) if isolation is None else np.asarray(isolation, dtype=float)),
    )


def forecast(entities: int, surprise=None, breach=None, time_to_breach=None) -> Forecast:
    shape = (entities, len(FEATURES))
    nothing = np.full(shape, np.nan)
    return Forecast(
        horizons=HORIZONS,
        quantiles=np.zeros((*shape, len(HORIZONS), 3)),
        residual_zscore=np.zeros(shape) if surprise is None else np.asarray(surprise, dtype=float),
        time_to_breach=nothing if time_to_breach is None else np.asarray(time_to_breach, dtype=float),
        breach_probability=nothing if breach is None else np.asarray(breach, dtype=float),
    )


def settled(stage: CouncilStage, windows: Windows, topology: Topology, forecast: Forecast | None = None) -> Verdict:
    """The verdict once the same evidence has been seen for `confirm_cycles` cycles."""
    verdict = None
    for cycle in range(stage.analysis.council.confirm_cycles):
        verdict = stage.run(windows, topology, forecast, 60.0 * cycle)
    assert verdict is not None
    return verdict


def agent_named(name: str):
    return next(a for a in AGENTS if a.name == name)


# --- sigma_score ---------------------------------------------------------------------------------------------------


def test_sigma_score_is_one_half_at_sigmas():
    assert sigma_score(np.array([5.0]), 5.0)[0] == pytest.approx(0.5)
    assert sigma_score(np.array([3.0]), 3.0)[0] == pytest.approx(0.5)


def test_sigma_score_is_monotone_in_size_and_symmetric_in_sign():
    deviations = np.linspace(0.0, 12.0, 241)
    scores = sigma_score(deviations, SIGMAS)
    assert np.all(np.diff(scores) >= 0)
    assert np.all(np.diff(scores[deviations < 8]) > 0)
    np.testing.assert_array_equal(sigma_score(-deviations, SIGMAS), scores)
    assert np.all((scores >= 0) & (scores <= 1))


def test_sigma_score_keeps_nan_and_is_near_zero_for_healthy_noise():
    scores = sigma_score(np.array([np.nan, 0.0, 2.0, -3.5, 1e6]), SIGMAS)
    assert np.isnan(scores[0])
    assert scores[1] < 1e-4 and scores[2] < 0.01
    assert scores[3] < 0.05
    assert scores[4] == pytest.approx(1.0)


# --- agents --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("agent", AGENTS, ids=lambda a: a.name)
def test_agent_weighs_only_the_features_of_its_role(agent):
    own = ROLES_OF.index(agent.name)
    calm = agent.assess(evidence(np.zeros((1, 4))), SIGMAS)
    assert {c.feature for c in calm.columns if c.feature is not None} == {FEATURES[own]}

    others = np.full((1, 4), 9.0)
    others[0, own] = 0.0
    breach = np.full((1, 4), 0.99)
    breach[0, own] = np.nan
    loud_elsewhere = agent.assess(evidence(others, surprise=others, breach=breach), SIGMAS)
    np.testing.assert_array_equal(loud_elsewhere.score, calm.score)

    mine = np.zeros((1, 4))
    mine[0, own] = 6.0
    np.testing.assert_allclose(agent.assess(evidence(mine), SIGMAS).score, sigma_score(np.array([6.0]), SIGMAS))


@pytest.mark.parametrize("agent", AGENTS, ids=lambda a: a.name)
def test_agent_score_is_its_strongest_column(agent):
    own = ROLES_OF.index(agent.name)
    level, surprise = np.zeros((2, 4)), np.full((2, 4), np.nan)
    level[:, own] = 5.5
    surprise[0, own] = -7.0  # entity 1 has no forecast: NaN columns are skipped, not propagated
    assessment = agent.assess(evidence(level, surprise=surprise), SIGMAS)
    np.testing.assert_allclose(assessment.score, sigma_score(np.array([7.0, 5.5]), SIGMAS))
    np.testing.assert_allclose(assessment.score, np.nanmax(assessment.scores, axis=1))


def test_network_agent_weighs_isolation_and_no_other_agent_does():
    isolation = np.array([0.0, 5.0 / ISOLATION_SIGMAS, 4.0])
    calm = evidence(np.zeros((3, 4)))
    isolated = evidence(np.zeros((3, 4)), isolation=isolation)
    network = agent_named("network").assess(isolated, SIGMAS)
    column = network.columns.index(Column("isolation", None))
    np.testing.assert_allclose(network.values[:, column], isolation * ISOLATION_SIGMAS)
    assert network.score[1] == pytest.approx(0.5)
    assert network.score[2] > 0.99
    for agent in AGENTS:
        if agent.name != "network":
            np.testing.assert_array_equal(agent.assess(isolated, SIGMAS).score, agent.assess(calm, SIGMAS).score)


def test_security_agent_weighs_only_more_drift_than_usual():
    drift = np.array([-9.0, 0.0, 6.0])
    security = agent_named("security").assess(evidence(np.zeros((3, 4)), drift=drift), SIGMAS)
    column = security.columns.index(Column("drift", None))
    np.testing.assert_array_equal(security.values[:, column], [0.0, 0.0, 6.0])
    assert security.score[0] < 1e-3
    assert security.score[0] == security.score[1]
    assert security.score[2] == pytest.approx(sigma_score(np.array([6.0]), SIGMAS)[0])
    for agent in AGENTS:
        if agent.name != "security":
            assert Column("drift", None) not in agent.assess(evidence(np.zeros((3, 4)), drift=drift), SIGMAS).columns


def test_agent_with_nothing_to_look_at_abstains():
    foo = RoleAgent("foo").assess(evidence(np.full((3, 4), 9.0), drift=[9.0] * 3, isolation=[9.0] * 3), SIGMAS)
    assert foo.columns == ()
    assert foo.values.shape == (3, 0)
    assert np.all(np.isnan(foo.score)) and foo.score.shape == (3,)


def test_security_agent_abstains_without_security_features_while_drift_is_unknown():
    without = evidence(np.zeros((2, 1)), features=("cpu",), roles=("resources",), drift=[np.nan, 6.0])
    security = agent_named("security").assess(without, SIGMAS)
    assert np.isnan(security.score[0])
    assert security.score[1] == pytest.approx(sigma_score(np.array([6.0]), SIGMAS)[0])
    # the network agent always has the fleet's shape to look at
    assert np.all(np.isfinite(agent_named("network").assess(without, SIGMAS).score))


def test_breach_columns_use_the_probability_as_is():
    breach = np.full((3, 4), np.nan)
    breach[:, 0] = [0.3, np.nan, 0.0]
    resources = agent_named("resources").assess(evidence(np.zeros((3, 4)), breach=breach), SIGMAS)
    column = resources.columns.index(Column("breach", "cpu"))
    np.testing.assert_array_equal(resources.values[:, column], [0.3, np.nan, 0.0])
    np.testing.assert_array_equal(resources.scores[:, column], [0.3, np.nan, 0.0])
    assert resources.score[0] == pytest.approx(0.3)  # sigma_score(0.3) would be ~0
    assert resources.score[1] < 1e-3


def test_breach_columns_are_omitted_when_no_entity_has_breach_odds():
    for agent in AGENTS:
        assessment = agent.assess(evidence(np.zeros((2, 4)), breach=np.full((2, 4), np.nan)), SIGMAS)
        assert all(c.kind != "breach" for c in assessment.columns)


def test_novelty_columns_score_in_sigmas_only_where_novelty_is_on():
    novelty = np.full((2, 4), np.nan)
    novelty[:, 0] = [6.0, 0.0]  # cpu: one entity in a state it has not been in lately
    resources = agent_named("resources").assess(evidence(np.zeros((2, 4)), novelty=novelty), SIGMAS)
    column = resources.columns.index(Column("novelty", "cpu"))
    assert resources.scores[0, column] > 0.85 and resources.scores[1, column] < 1e-3
    performance = agent_named("performance").assess(evidence(np.zeros((2, 4)), novelty=novelty), SIGMAS)
    assert Column("novelty", "p99") not in performance.columns  # unknown for p99: no column, not a zero
    for agent in AGENTS:
        assessment = agent.assess(evidence(np.zeros((2, 4))), SIGMAS)
        assert all(c.kind != "novelty" for c in assessment.columns)


def test_a_record_is_a_warning_alone_in_its_direction_and_says_which_extreme():
    windows, topology = council_inputs(np.zeros((3, 4)))
    record = np.zeros((3, 4))
    record[0, 0] = 0.12  # cpu past its highest: cpu has a limit, so only up counts
    record[1, 0] = -0.3  # cpu below its lowest: no risk
    record[2, 3] = -0.2  # p99 below its lowest: both directions count
    topology = replace(topology, record=record, novelty=np.zeros((3, 4)))
    verdict = settled(CouncilStage(ANALYSIS), windows, topology)
    assert verdict.decision.tolist() == [1, 0, 1]  # a warning, not critical, alone
    column = verdict.assessments[1].columns.index(Column("record", "cpu"))
    assert verdict.assessments[1].scores[0, column] == pytest.approx(sigma_score(np.array([SIGMAS + 0.5]), SIGMAS)[0])
    high = explain(verdict, topology.critical[0], {}, max(HORIZONS), 0)
    assert "cpu is past the highest it has been since it was first seen (by 12% of its range)" in high.summary
    assert ACTIONS["record"].format(feature="cpu") in high.actions
    low = explain(verdict, topology.critical[2], {}, max(HORIZONS), 2)
    assert "p99 is past the lowest" in low.summary and "(by 20% of its range)" in low.summary
    without = agent_named("resources").assess(evidence(np.zeros((2, 4))), SIGMAS)
    assert all(c.kind != "record" for c in without.columns)  # novelty off: no record column


class SloAgent:
    """A fifth agent, added without touching the others: it scores its own 'burn' evidence."""

    name = "slo"

    def __init__(self, burn: list[float]):
        self.burn = np.array(burn)

    def assess(self, evidence: Evidence, sigmas: float) -> Assessment:
        return Assessment(self.name, (Column("burn", None),), self.burn[:, None], self.burn[:, None])


def test_a_fifth_agent_joins_the_council_without_touching_the_others():
    windows, topology = council_inputs(np.zeros((3, 4)))
    four = settled(CouncilStage(ANALYSIS), windows, topology)
    five = settled(CouncilStage(ANALYSIS, agents=AGENTS + (SloAgent([0.9, 0.0, np.nan]),)), windows, topology)
    assert five.agents == ("network", "resources", "security", "performance", "slo")
    assert five.scores.shape == (3, 5)
    np.testing.assert_array_equal(five.scores[:, :4], four.scores)
    np.testing.assert_array_equal(five.scores[:, 4], [0.9, 0.0, np.nan])
    np.testing.assert_array_equal(five.votes[:, 4], [1.0, 0.0, np.nan])
    assert five.risk[0] >= 0.9 and five.decision[0] == 2
    np.testing.assert_allclose(five.risk[1:], four.risk[1:])


def test_a_fifth_agent_that_flags_an_entity_can_be_explained():
    windows, topology = council_inputs(np.zeros((2, 4)))
    verdict = settled(CouncilStage(ANALYSIS, agents=AGENTS + (SloAgent([0.9, 0.0]),)), windows, topology)
    assert verdict.decision[0] == 2
    explanation = explain(verdict, topology.critical[0], {"cpu": 0.95}, max(HORIZONS), 0)
    assert explanation.decision == "critical"
    assert explanation.contributions[0].agent == "slo"
    assert "burn" in explanation.contributions[0].text and "slo" in explanation.actions[0]


# --- risk and votes ------------------------------------------------------------------------------------------------


def test_combined_risk_is_a_noisy_or_of_the_agents():
    scores = np.array([
        [0.95, 0.0, 0.0, 0.0],
        [0.5, 0.5, 0.0, 0.0],
        [0.5, np.nan, 0.5, np.nan],
        [np.nan] * 4,
        [0.2, 0.3, 0.4, 0.5],
    ])
    risk = combined_risk(scores)
    assert risk[0] == pytest.approx(0.95)  # one sure agent is not diluted by three quiet ones
    assert risk[1] == 0.75 and risk[2] == 0.75  # abstaining agents count as 0
    assert risk[3] == 0.0
    assert risk[4] == pytest.approx(1 - 0.8 * 0.7 * 0.6 * 0.5)


def test_combined_risk_never_falls_when_a_score_rises():
    rng = np.random.default_rng(11)
    scores = rng.uniform(size=(200, 4))
    scores[rng.uniform(size=scores.shape) < 0.2] = np.nan
    risk = combined_risk(scores)
    assert np.all((risk >= 0) & (risk <= 1))
    assert np.all(risk >= np.nanmax(np.nan_to_num(scores, nan=0.0), axis=1) - 1e-12)
    for agent in range(4):
        raised = scores.copy()
        raised[:, agent] = np.fmin(np.nan_to_num(raised[:, agent], nan=0.0) + rng.uniform(0, 0.5, size=200), 1.0)
        assert np.all(combined_risk(raised) >= risk)


def test_an_agent_votes_when_its_own_score_reaches_warn():
    settings = CouncilConfig(quorum=0.75, warn=0.4)
    np.testing.assert_array_equal(votes(np.array([[0.4, 0.3999, np.nan, 1.0]]), settings), [[1.0, 0.0, np.nan, 1.0]])


def test_quorum_and_warn_are_reached_at_their_exact_values():
    settings = CouncilConfig(quorum=0.75, warn=0.4)
    risk = np.array([0.75, 0.7499, 0.4, 0.3999, 1.0, 0.0])
    expected = [2, 1, 1, 0, 2, 0]
    np.testing.assert_array_equal(raw_level(risk, settings), expected)
    keys = tuple((f"host{i}",) for i in range(len(risk)))
    at_once = DecisionKeeper(replace(settings, confirm_cycles=1), 3600.0)
    np.testing.assert_array_equal(at_once.decide(keys, risk, 0.0), expected)
    confirming = DecisionKeeper(settings, 3600.0)
    for cycle in range(settings.confirm_cycles):
        decided = confirming.decide(keys, risk, 60.0 * cycle)
    np.testing.assert_array_equal(decided, expected)


def test_two_agents_at_one_half_reach_the_default_quorum():
    risk = combined_risk(np.array([[0.5, 0.5, np.nan, 0.0]]))
    assert raw_level(risk, CouncilConfig())[0] == 2


# --- confirmation and hysteresis -----------------------------------------------------------------------------------


def decisions(keeper: DecisionKeeper, risks: list[float], key: tuple = ("a",), start: float = 0.0) -> list[int]:
    return [int(keeper.decide((key,), np.array([r]), start + 60.0 * i)[0]) for i, r in enumerate(risks)]


def keeper(**settings) -> DecisionKeeper:
    """Decisions that rise at once (confirm_cycles 1) unless told otherwise."""
    return DecisionKeeper(CouncilConfig(**{"confirm_cycles": 1, **settings}), forget_after=3600.0)


def test_decisions_rise_at_once_without_confirmation():
    assert decisions(keeper(), [0.1, 0.9]) == [0, 2]
    assert decisions(keeper(), [0.1, 0.5, 0.8]) == [0, 1, 2]


def test_decisions_rise_once_confirmed_for_confirm_cycles():
    assert CouncilConfig().confirm_cycles == 2
    assert decisions(keeper(confirm_cycles=2), [0.9, 0.9]) == [0, 2]
    assert decisions(keeper(confirm_cycles=3), [0.9, 0.9, 0.9, 0.9]) == [0, 0, 2, 2]
    assert decisions(keeper(confirm_cycles=2), [0.9, 0.1, 0.9, 0.1, 0.9]) == [0] * 5  # lone spikes never count
    assert decisions(keeper(confirm_cycles=2), [0.9, 0.5, 0.9, 0.9]) == [0, 1, 1, 2]  # the lower of the two


def test_a_risk_wavering_around_the_quorum_stays_critical():
    assert decisions(keeper(), [0.8] + [0.74, 0.76] * 20) == [2] * 41
    assert decisions(keeper(confirm_cycles=2), [0.8, 0.8] + [0.74, 0.76] * 20) == [0] + [2] * 41


@pytest.mark.parametrize("confirm_cycles", [1, 2])
@pytest.mark.parametrize("clear_cycles", [1, 3, 5])
def test_a_fall_takes_effect_after_clear_cycles_calm_cycles(clear_cycles, confirm_cycles):
    k = keeper(clear_cycles=clear_cycles, confirm_cycles=confirm_cycles)
    assert decisions(k, [0.9] * confirm_cycles)[-1] == 2
    assert decisions(k, [0.1] * (clear_cycles + 2), start=600.0) == [2] * (clear_cycles - 1) + [0] * 3


def test_a_high_cycle_resets_the_calm_count():
    assert decisions(keeper(clear_cycles=3), [0.9, 0.1, 0.1, 0.7, 0.1, 0.1, 0.1]) == [2, 2, 2, 2, 2, 2, 0]
    assert decisions(keeper(clear_cycles=3), [0.9, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1]) == [2, 2, 2, 2, 2, 2, 0]
    k = keeper(clear_cycles=3, confirm_cycles=2)
    assert decisions(k, [0.9, 0.9, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1]) == [0, 2, 2, 2, 2, 2, 2, 0]


def test_a_risk_inside_the_hysteresis_band_holds_critical_indefinitely():
    band = list(np.linspace(0.61, 0.749, 100))  # quorum 0.75, hysteresis 0.15: the band is [0.6, 0.75)
    assert decisions(keeper(), [0.9] + band) == [2] * 101
    assert decisions(keeper(confirm_cycles=2), [0.9, 0.9] + band)[1:] == [2] * 101


def test_critical_falls_to_warn_and_warn_holds_inside_its_band():
    assert decisions(keeper(), [0.9, 0.5, 0.5, 0.5, 0.3, 0.3, 0.3, 0.3, 0.2, 0.2, 0.2]) == \
        [2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 0]


def test_entities_are_decided_independently():
    k = keeper()
    keys = (("a",), ("b",))
    np.testing.assert_array_equal(k.decide(keys, np.array([0.9, 0.1]), 0.0), [2, 0])
    np.testing.assert_array_equal(k.decide(keys, np.array([0.1, 0.5]), 60.0), [2, 1])


@pytest.mark.parametrize("confirm_cycles", [1, 2])
def test_entities_unseen_longer_than_forget_after_start_afresh(confirm_cycles):
    k = keeper(confirm_cycles=confirm_cycles)
    assert decisions(k, [0.9] * confirm_cycles)[-1] == 2
    seen = 60.0 * (confirm_cycles - 1)
    k.decide((("b",),), np.array([0.0]), seen + 3600.0)  # unseen exactly forget_after: kept
    assert ("a",) in k.states
    assert decisions(k, [0.1], start=seen + 3601.0) == [2]  # still held by hysteresis
    k.decide((("b",),), np.array([0.0]), seen + 3601.0 + 3601.0)
    assert ("a",) not in k.states
    assert decisions(k, [0.1, 0.9], start=seen + 7300.0) == [0, 2 if confirm_cycles == 1 else 0]


# --- evidence ------------------------------------------------------------------------------------------------------


def peer_deviation(state):
    offset, spread = peer_offset(state)
    return offset / spread


def test_peer_deviation_removes_what_moves_the_whole_fleet():
    rng = np.random.default_rng(5)
    state = rng.normal(scale=0.2, size=(12, 2))
    shifted = state + 10.0
    shifted[3, 0] += 8.0
    deviation = peer_deviation(shifted)
    assert np.all(np.abs(np.delete(deviation, 3, axis=0)) < 1.0)
    assert abs(deviation[3, 1]) < 1.0
    assert deviation[3, 0] > 6.0
    np.testing.assert_allclose(peer_deviation(shifted + 5.0), deviation, atol=1e-9)


def test_peer_deviation_needs_min_peers():
    rng = np.random.default_rng(6)
    small = rng.normal(size=(MIN_PEERS - 1, 3)) + 10.0
    np.testing.assert_array_equal(peer_deviation(small), small)
    fleet = rng.normal(size=(MIN_PEERS, 3)) + 10.0
    assert np.all(np.abs(peer_deviation(fleet)) < 5.0)


def test_level_in_own_units_is_the_offset_from_peers_not_the_sigmas():
    """min_deviation compares the raw difference from the peers' median, whatever the peers' spread."""
    state = np.zeros((MIN_PEERS + 2, 4))
    state[::2, 0] = 4.0  # a wide fleet: median 4, MAD 2 baseline units...
    state[1, 0] = 12.0  # ...and one host 8 units above the median
    windows, topology = council_inputs(state, units=np.full(state.shape, 0.5))
    found = gather_evidence(ANALYSIS, windows, topology, None)
    assert found.level_units[1, 0] == pytest.approx(8.0 * 0.5)  # not 8 / 2.97 sigmas x 0.5
    assert found.level[1, 0] == pytest.approx(8.0 / (1.4826 * 2.0), rel=1e-3)


def test_along_direction():
    values = np.array([[2.0, 2.0, 2.0], [-2.0, -2.0, -2.0], [np.nan, np.nan, np.nan], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(along_direction(values, ["up", "down", "both"]),
                                  [[2.0, 0.0, 2.0], [0.0, -2.0, -2.0], [np.nan] * 3, [0.0] * 3])


def test_gather_evidence_drops_level_deviations_below_min_deviation_in_own_units():
    analysis = parse_config(config_yaml({
        "cpu": "{query: cpu, role: resources, min_deviation: 0.5}",
        "net": "{query: net, role: network}",
        "conns": "{query: conns, role: security}",
        "p99": "{query: p99, role: performance}",
    })).analyses[0]
    state = np.array([[3.0, 3.0, 0, 0], [3.0, 3.0, 0, 0], [5.0, 0.1, 0, 0]])
    units = np.array([[0.1, 0.1, 1, 1], [1.0, 1.0, 1, 1], [0.1, 0.1, 1, 1]])
    windows, topology = council_inputs(state, analysis, units=units)
    found = gather_evidence(analysis, windows, topology, None)
    np.testing.assert_allclose(found.level_units[:, :2], [[0.3, 0.3], [3.0, 3.0], [0.5, 0.01]])
    np.testing.assert_array_equal(found.level[:, 0], [0.0, 3.0, 5.0])  # 0.3 < 0.5 never counts; 0.5 does
    np.testing.assert_array_equal(found.level[:, 1], [3.0, 3.0, 0.1])  # no minimum for net
    assert found.roles == ("resources", "network", "security", "performance")
    assert np.all(np.isnan(found.surprise)) and np.all(np.isnan(found.breach))


def test_gather_evidence_applies_each_features_direction():
    state = np.array([[-9.0, -9.0, 0, 0], [9.0, 9.0, 0, 0]])  # cpu has a limit: up; net: both
    surprise = np.array([[-7.0, -7.0, 0, 0], [7.0, 7.0, 0, 0]])
    windows, topology = council_inputs(state, drift=[1.0, 2.0], isolation=[0.5, 3.0])
    found = gather_evidence(ANALYSIS, windows, topology, forecast(2, surprise=surprise))
    np.testing.assert_array_equal(found.level[:, :2], [[0.0, -9.0], [9.0, 9.0]])
    np.testing.assert_array_equal(found.surprise[:, :2], [[0.0, -7.0], [7.0, 7.0]])
    np.testing.assert_array_equal(found.drift, [1.0, 2.0])
    np.testing.assert_array_equal(found.isolation, [0.5, 3.0])  # in units of the fleet's threshold (1.0 here)


def test_config_direction_defaults_and_min_deviation():
    analysis = parse_config(config_yaml({
        "cpu": "{query: cpu, role: resources, limit: 0.95}",
        "mem": "{query: mem, role: resources, limit: 0.9, direction: both, min_deviation: 0.02}",
        "net": "{query: net, role: network}",
        "p99": "{query: p99, role: performance, direction: down}",
    })).analyses[0]
    assert [f.direction for f in analysis.features] == ["up", "both", "both", "down"]
    assert [f.min_deviation for f in analysis.features] == [0.0, 0.02, 0.0, 0.0]
    assert analysis.council == CouncilConfig()


def test_the_council_weighs_only_the_evidence_it_is_told_to():
    analysis = parse_config(config_yaml(council="{evidence: [novelty, drift]}")).analyses[0]
    assert analysis.council.evidence == ("novelty", "drift")
    novelty = np.zeros((2, 4))
    novelty[0, 0] = 8.0
    level = np.zeros((2, 4))
    level[1, 0] = 9.0  # a level the council is told not to weigh
    resources = agent_named("resources").assess(evidence(level, novelty=novelty, drift=[0.0, 0.0]), SIGMAS)
    kept = weighing_only(resources, analysis.council.evidence)
    assert [c.kind for c in kept.columns] == ["novelty"] and kept.score[0] > 0.9 and kept.score[1] < 1e-3
    slo = SloAgent([0.9, 0.0]).assess(evidence(level), SIGMAS)
    assert weighing_only(slo, ("novelty",)) is slo  # an added agent's own kinds of evidence stay


def test_config_council_values_are_read():
    council = parse_config(config_yaml(council="{quorum: 0.9, warn: 0.5, sigmas: 4, confirm_cycles: 3, "
                                               "hysteresis: 0.1, clear_cycles: 5}")).analyses[0].council
    assert council == CouncilConfig(quorum=0.9, warn=0.5, sigmas=4.0, confirm_cycles=3, hysteresis=0.1, clear_cycles=5)
    assert parse_config(config_yaml(council="{quorum: 1}")).analyses[0].council.quorum == 1.0


@pytest.mark.parametrize(("features", "council", "path"), [
    ({"cpu": "{query: cpu, role: resources, direction: sideways}"}, None, "analyses[0].features.cpu.direction"),
    ({"cpu": "{query: cpu, role: resources, min_deviation: -1}"}, None, "analyses[0].features.cpu.min_deviation"),
    (None, "{warn: 0.75, quorum: 0.75}", "analyses[0].council"),
    (None, "{warn: 0.8, quorum: 0.75}", "analyses[0].council"),
    (None, "{quorum: 1.2}", "analyses[0].council"),
    (None, "{warn: 0.4, hysteresis: 0.4}", "analyses[0].council.hysteresis"),
    (None, "{clear_cycles: 0}", "analyses[0].council.clear_cycles"),
    (None, "{confirm_cycles: 0}", "analyses[0].council.confirm_cycles"),
    (None, "{votes: 3}", "analyses[0].council.votes"),
    (None, "{evidence: [novelty, hunch]}", "analyses[0].council.evidence"),
    (None, "{evidence: []}", "analyses[0].council.evidence"),
], ids=["direction", "min_deviation", "warn_is_quorum", "warn_above_quorum", "quorum_above_one", "hysteresis",
        "clear_cycles", "confirm_cycles", "unknown_key", "unknown_evidence", "no_evidence"])
def test_config_refuses_bad_council_settings_with_their_key_path(features, council, path):
    with pytest.raises(ConfigError) as err:
        parse_config(config_yaml(features, council))
    assert [p for p in err.value.problems if p.startswith(f"{path}: ")], err.value.problems


# --- the stage and explanations ------------------------------------------------------------------------------------


def breach_verdict() -> tuple[Verdict, Topology]:
    """host0: cpu 97% likely to breach within 30 min; host1: cpu 4σ up (a reason, still monitor); host2: calm.
    A fifth agent abstains."""
    breach = np.full((3, 4), np.nan)
    breach[:, 0] = [0.97, 0.01, 0.0]
    eta = np.full((3, 4), np.nan)
    eta[0, 0] = 1800.0
    windows, topology = council_inputs([[0.0] * 4, [4.0, 0, 0, 0], [0.0] * 4])
    stage = CouncilStage(ANALYSIS, agents=AGENTS + (RoleAgent("foo"),))
    return settled(stage, windows, topology, forecast(3, breach=breach, time_to_breach=eta)), topology


def test_stage_combines_agents_into_risk_and_decision():
    verdict, _ = breach_verdict()
    assert verdict.agents[:4] == tuple(a.name for a in AGENTS)
    assert verdict.scores[0, 1] == pytest.approx(0.97)
    assert np.all(np.isnan(verdict.scores[:, 4])) and np.all(np.isnan(verdict.votes[:, 4]))
    np.testing.assert_allclose(verdict.risk, combined_risk(verdict.scores))
    np.testing.assert_array_equal(verdict.decision, [2, 0, 0])


def test_stage_scores_with_the_configured_sigmas():
    analysis = parse_config(config_yaml(council="{sigmas: 3}")).analyses[0]
    windows, topology = council_inputs([[4.0, 0, 0, 0]], analysis)
    verdict = CouncilStage(analysis).run(windows, topology, None, 0.0)
    assert verdict.scores[0, 1] == pytest.approx(sigma_score(np.array([4.0]), 3.0)[0])
    assert verdict.scores[0, 1] > 0.5


def test_explanation_of_a_resources_breach():
    verdict, topology = breach_verdict()
    explanation = explain(verdict, topology.critical[0], {"cpu": 0.95}, max(HORIZONS), 0)
    assert explanation.decision == "critical"
    assert explanation.risk == pytest.approx(float(verdict.risk[0]))
    top = explanation.contributions[0]
    assert (top.agent, top.kind, top.feature) == ("resources", "breach", "cpu")
    assert top.score == pytest.approx(0.97) and top.value == pytest.approx(0.97)
    assert "cpu" in explanation.summary and "resources" in explanation.summary
    assert explanation.actions and explanation.actions[0] == ACTIONS["breach"].format(feature="cpu")
    assert [(b.feature, b.limit, b.seconds) for b in explanation.breaches] == [("cpu", 0.95, 1800.0)]
    views = {view.agent: view for view in explanation.agents}
    assert views["resources"].score == pytest.approx(0.97) and views["resources"].vote is True
    assert views["foo"].score is None and views["foo"].vote is None


def test_a_monitored_entity_has_no_actions():
    verdict, topology = breach_verdict()
    explanation = explain(verdict, topology.critical[1], {"cpu": 0.95}, max(HORIZONS), 1)
    assert explanation.decision == "monitor"
    assert [(c.kind, c.feature) for c in explanation.contributions] == [("level", "cpu")]
    assert "4.0σ above its baseline" in explanation.contributions[0].text
    assert explanation.actions == []
    calm = explain(verdict, topology.critical[2], {"cpu": 0.95}, max(HORIZONS), 2)
    assert calm.decision == "monitor" and calm.contributions == [] and calm.actions == []
    assert "nothing stands out" in calm.summary


def test_explanation_keeps_the_strongest_contributions_in_order():
    state = np.array([[6.0, 5.5, 7.0, 4.8], [0.0, 0.0, 0.0, 0.0]])
    surprise = np.array([[5.2, 6.5, np.nan, 5.8], [0.0, 0.0, 0.0, 0.0]])
    windows, topology = council_inputs(state)
    weighing_surprise = replace(ANALYSIS, council=replace(ANALYSIS.council, evidence=(*ANALYSIS.council.evidence,
                                                                             "surprise")))  # not weighed by default
    verdict = settled(CouncilStage(weighing_surprise), windows, topology, forecast(2, surprise=surprise))
    explanation = explain(verdict, topology.critical[0], {"cpu": 0.95}, max(HORIZONS), 0)
    scores = [c.score for c in explanation.contributions]
    assert len(scores) == TOP_CONTRIBUTIONS
    assert scores == sorted(scores, reverse=True)
    everything = sorted((s for a in verdict.assessments for s in a.scores[0] if np.isfinite(s) and s >= 0.05),
                        reverse=True)
    assert len(everything) > TOP_CONTRIBUTIONS
    np.testing.assert_allclose(scores, everything[:TOP_CONTRIBUTIONS])
    assert (explanation.contributions[0].kind, explanation.contributions[0].feature) == ("level", "conns")


def test_calibration_turns_a_risk_into_how_unusual_it_is_for_that_entity():
    from aura_exporter.council.calibration import WARM_UP, Calibrator

    calibrator = Calibrator(forget_after=3600)
    rng = np.random.default_rng(1)
    keys = (("steady",), ("noisy",))
    first = calibrator.calibrate(keys, np.array([0.9, 0.5]), 0.0)
    assert (first == 0).all()  # no history, nothing unusual yet
    for t in range(1, 200):
        calm = calibrator.calibrate(keys, np.array([0.2 + rng.normal(0, 0.01), rng.uniform(0, 1)]), float(t))
    assert calm.max() < 0.5  # its usual level, however high or noisy, is not unusual
    for t in range(200, 210):
        jumped = calibrator.calibrate(keys, np.array([0.6, rng.uniform(0, 1)]), float(t))
    assert jumped[0] > 0.9 and jumped[1] < 0.5
    assert WARM_UP > 1
    calibrator.calibrate((("other",),), np.array([0.1]), 10_000.0)
    assert set(calibrator.histories) == {("other",)}  # the others were unseen for over an hour
