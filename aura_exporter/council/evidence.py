"""What the agents look at: each entity's deviations, surprises and breach odds, in comparable units.

Every deviation is measured in robust standard deviations ("sigmas") of the entity's own baseline,
so a number means the same in every analysis whatever the feature's units:
- level: the entity's recent state (the fleet topology's point) against its peers' recent states.
  Comparing with the peers' median removes what moves the whole fleet at once (the daily cycle
  that a 30-minute baseline cannot know). A fleet smaller than MIN_PEERS, or with `council.peers`
  off, is compared with its own baseline window instead, but only until the state evidence has
  learned the entity's usual state: a window's spread is no measure of how far a feature usually
  wanders (a feature flat for an hour makes its first wobble a thousand sigmas), and one such
  comparison per feature is as many chances to page;
- state: the entity's recent state against its own usual state, learned over weeks (topology/state.py),
  per feature in spreads of that state's own history; each role agent weighs its features together;
- surprise: the newest value against the forecaster's nowcast (seasonality-aware, from the forecast);
- breach: the forecast's probability of reaching the feature's limit within the horizons;
- drift: the z-score of the window's diagram drift from its baseline (topology);
- novelty (`topology.novelty_history`): how new the newest steps' state is against the entity's own
  history, as a z-score of its own past novelty (topology/novelty.py); only more than usual counts;
- record (with novelty): a value beyond the lowest or highest the entity has had since it was first
  seen, by more than 5% of that span (topology/novelty.py), as a signed share of the span;
- isolation: how far apart from the fleet's majority the entity stands, in noise thresholds (0 with
  `council.peers` off: unrelated entities are no fleet to stand apart from);
- graph (an analysis linked to a graph analysis by `council.graph`): the service the entity is, in a
  new request loop, cut off from the main part of the service graph, or called by new callers. A
  finding is no deviation: it is given the weight of one, in sigmas (GRAPH_SIGMAS).
Direction and minimum deviation per feature are applied here, once, for every agent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aura_exporter.config import Analysis
from aura_exporter.forecast.stage import Forecast
from aura_exporter.graph import GraphOutcome
from aura_exporter.topology import Topology
from aura_exporter.topology.fleet import recent_state
from aura_exporter.windows import MAD_TO_SIGMA, Windows

MIN_PEERS = 8  # fewer entities than this are no fleet to compare with

# Findings of the service graph in sigmas beyond council.sigmas (a score of 0.5, a warn vote): a new loop
# or a new caller is worth a warning; being cut off from the rest of the graph is an outage (0.88, critical
# alone with the default thresholds); each further new caller adds half a sigma.
GRAPH_SIGMAS = {"dependency_loop": 0.0, "partition": 1.0, "new_caller": 0.0}
NEW_CALLER_SIGMAS = 0.5


@dataclass(frozen=True)
class GraphEvidence:
    """What a graph analysis found about each entity, in sigmas (0: nothing), and in words."""

    analysis: str
    values: dict[str, np.ndarray]  # kind (GRAPH_SIGMAS) -> [E]
    texts: dict[str, dict[int, str]]  # kind -> entity index -> what was found


@dataclass(frozen=True)
class Evidence:
    features: tuple[str, ...]
    roles: tuple[str, ...]  # per feature
    level: np.ndarray  # [E, F] signed sigmas from the peers (or own baseline); 0 when it does not count
    state: np.ndarray  # [E, F] signed z-score from the entity's usual state; 0 when it does not count
    surprise: np.ndarray  # [E, F] signed residual z-score; NaN without a forecast; 0 when it does not count
    breach: np.ndarray  # [E, F] probability of reaching the limit; NaN without a limit or a forecast
    time_to_breach: np.ndarray  # [E, F] seconds; NaN when no breach is in sight
    novelty: np.ndarray  # [E, F] sigmas, 0 or more; NaN when novelty is off
    record: np.ndarray  # [E, F] excess beyond the entity's range, share of its span (+ above, − below, 0 none)
    drift: np.ndarray  # [E] drift z-score
    isolation: np.ndarray  # [E] distance from the fleet's majority, in units of its noise threshold
    level_units: np.ndarray  # [E, F] the level deviation in the feature's own units
    settled: np.ndarray  # [E] bool: every feature's usual state is learned (before, levels are the window's own)
    graph: GraphEvidence | None = None
    peers: bool = False  # levels are against the peers (else against each entity's own baseline)

    @property
    def entities(self) -> int:
        return self.level.shape[0]


def gather_evidence(analysis: Analysis, windows: Windows, topology: Topology, forecast: Forecast | None,
                    graph: GraphOutcome | None = None) -> Evidence:
    entities, features = len(windows.entities), len(analysis.features)
    offset, spread = (peer_offset(recent_state(topology.scaled), analysis.council.peers) if entities
                      else (np.zeros((0, features)), 1.0))
    level = offset / spread
    level_units = offset * topology.units  # the same deviation in the feature's own units
    minimum = np.array([f.min_deviation for f in analysis.features])
    level = np.where((np.abs(level_units) >= minimum) & (compared_with_peers(entities, analysis.council.peers)
                                                         | ~topology.state_warm), level, 0.0)
    state = np.where(np.abs(topology.state_units) >= minimum, topology.state, 0.0)
    nothing = np.full((entities, features), np.nan)
    surprise = nothing if forecast is None else forecast.residual_zscore
    directions = [f.direction for f in analysis.features]
    return Evidence(
        features=tuple(f.name for f in analysis.features),
        roles=tuple(f.role for f in analysis.features),
        level=along_direction(level, directions),
        state=along_direction(state, directions),
        surprise=along_direction(surprise, directions),
        breach=nothing if forecast is None else forecast.breach_probability,
        time_to_breach=nothing if forecast is None else forecast.time_to_breach,
        novelty=np.maximum(topology.novelty, 0.0),  # a state less new than usual is no news
        record=along_direction(topology.record, directions),
        drift=topology.drift_zscore,
        isolation=(topology.fleet.isolation / topology.fleet.threshold if analysis.council.peers
                   else np.zeros(entities)),  # entities that are no peers of each other are no fleet to leave
        level_units=level_units,
        settled=topology.state_warm.all(axis=1),
        graph=graph_evidence(analysis, windows, graph) if analysis.graph_link is not None else None,
        peers=compared_with_peers(entities, analysis.council.peers),
    )


def graph_evidence(analysis: Analysis, windows: Windows, graph: GraphOutcome | None) -> GraphEvidence:
    """The linked graph's findings about each entity (none while the graph has no result or no baseline)."""
    assert analysis.graph_link is not None
    link = analysis.graph_link
    column = windows.label_names.index(link.label)
    index = {key[column]: i for i, key in enumerate(windows.entities)}
    values = {kind: np.zeros(len(windows.entities)) for kind in GRAPH_SIGMAS}
    texts: dict[str, dict[int, str]] = {kind: {} for kind in GRAPH_SIGMAS}

    def found(kind: str, service: str, text: str, extra: float = 0.0) -> None:
        if service in index:
            values[kind][index[service]] = analysis.council.sigmas + GRAPH_SIGMAS[kind] + extra
            texts[kind][index[service]] = text

    if graph is not None and graph.ready:
        findings = graph.findings
        for loop in (loop for loop in findings.loops if loop.new):
            for service in loop.services:
                found("dependency_loop", service, f"it is in a new request loop of {link.analysis}: "
                                                  f"{', '.join(loop.services)}")
        for cut in findings.cuts:
            for service in cut.services:
                how = "lost every call to and from" if cut.vanished else "is cut off from"
                found("partition", service, f"it {how} the main part of {link.analysis}")
        callers: dict[str, list[str]] = {}
        for change in findings.changes:
            if change.appeared:
                callers.setdefault(change.callee, []).append(change.caller)
        for service, names in callers.items():
            found("new_caller", service, f"new callers in {link.analysis}: {', '.join(sorted(names))}",
                  NEW_CALLER_SIGMAS * (len(names) - 1))
    return GraphEvidence(link.analysis, values, texts)


def compared_with_peers(entities: int, peers: bool) -> bool:
    return peers and entities >= MIN_PEERS


def peer_offset(state: np.ndarray, peers: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """[E, F] each entity's recent state minus the fleet's median, and [F] the fleet's spread (at least
    one baseline unit); fewer than MIN_PEERS entities, or entities that are no peers of each other
    (`council.peers: false`), are compared with their own baseline."""
    if not compared_with_peers(state.shape[0], peers):
        return state, np.ones(state.shape[1])
    median = np.median(state, axis=0)
    spread = MAD_TO_SIGMA * np.median(np.abs(state - median), axis=0)
    return state - median, np.maximum(spread, 1.0)


def along_direction(values: np.ndarray, directions: list[str]) -> np.ndarray:
    """Deviations against a feature's direction count as none (0); NaN stays NaN."""
    up = np.array([d == "up" for d in directions])
    down = np.array([d == "down" for d in directions])
    return np.where(up & (values < 0), 0.0, np.where(down & (values > 0), 0.0, values))
