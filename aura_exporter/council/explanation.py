"""Why the council decided what it did about one entity, in words an on-call engineer can act on.

Explanations are free text: they go to the JSON API, the WebSocket feed and the UI, never into
label values. They are built on request from a published result, so a cycle pays nothing for them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from aura_exporter.council.decision import DECISIONS
from aura_exporter.council.evidence import Evidence
from aura_exporter.council.stage import Verdict
from aura_exporter.durations import format_duration
from aura_exporter.jsonvalues import finite
from aura_exporter.topology.summaries import describe_critical

SHARED_NODE_ACTION = ("{count} other flagged entities run on node {node}: check the node itself (kubelet, disk, "
                      "network, noisy neighbours) before the workloads.")
TOP_CONTRIBUTIONS = 5
MIN_CONTRIBUTION = 0.05  # scores below this are the normal background, not reasons

ACTIONS = {
    "breach": "Scale out or add capacity before {feature} reaches its limit; if it only ever grows (a leak), "
              "schedule a restart or fail over before then.",
    "resources": "Check what is consuming {feature} on this entity; scale out or move load to healthy peers.",
    "network": "Check this entity's network path (links, routes, DNS, firewall rules); fail traffic over to "
               "healthy peers while it is cut off.",
    "isolation": "The entity stands apart from its peers: check for a network partition or a failover, and fail "
                 "traffic over to healthy peers if it cannot be reached.",
    "performance": "Check for saturation and slow dependencies behind {feature}; shed load or scale out if it "
                   "keeps rising.",
    "security": "Review who connects to this entity (unexpected clients, scans, connection floods) and compare "
                "with recent changes.",
    "novelty": "{feature} behaves as it has not lately: compare with recent deploys, configuration changes, "
               "traffic and failures of what it depends on.",
    "state": "Several of its {agent} metrics are away from their usual values together (the strongest are named): "
             "check what changed (traffic, a deploy, a failing dependency, a batch job).",
    "record": "{feature} is beyond anything seen on this entity: check whether a limit is near (disk, memory, "
              "connections) and what changed (traffic, a deploy, a failing dependency).",
    "drift": "Investigate the topology change: compare with recent deploys, configuration changes and failovers.",
    "loop": "Look for retry loops or circular dependencies between services and break them (timeouts, backoff, "
            "circuit breakers).",
    "dependency_loop": "Find what makes these services call each other in a loop (retries, callbacks, a new "
                       "route) and break it: timeouts with backoff, circuit breakers, a retry budget.",
    "partition": "The service no longer reaches the rest of the mesh: check its pods, network policies, the "
                 "mesh's sidecars and DNS; fail traffic over while it is cut off.",
    "new_caller": "A service calls this one that did not before: confirm it is an intended change (a deploy, a "
                  "new feature); if not, review the caller's identity and the network policy.",
    "split": "The window splits into separate regimes: check for restarts, failovers or a step change.",
    "other": "Look at what the {agent} agent flags for this entity and at its recent changes.",
}


@dataclass(frozen=True)
class Contribution:
    agent: str
    kind: str
    feature: str | None
    value: float  # sigmas, or a probability for breach
    score: float
    text: str


@dataclass(frozen=True)
class AgentView:
    agent: str
    score: float | None  # None: abstains
    vote: bool | None


@dataclass(frozen=True)
class Breach:
    feature: str
    limit: float
    probability: float
    seconds: float | None  # None: not within the horizons


@dataclass(frozen=True)
class TopologicalFeature:
    dimension: int
    birth: float
    death: float
    persistence: float
    interpretation: str


@dataclass(frozen=True)
class Explanation:
    decision: str
    risk: float
    summary: str
    agents: list[AgentView]
    contributions: list[Contribution]
    topology: list[TopologicalFeature]
    breaches: list[Breach]
    actions: list[str]
    usual_per_week: float | None = None  # page budget: how often a week normal behaviour is this unusual


def explain(verdict: Verdict, critical: np.ndarray, limits: dict[str, float], horizon: float,
            index: int) -> Explanation:
    """The explanation of entity `index`; `critical` is its [k, 3] critical-feature rows."""
    contributions = top_contributions(verdict, index, horizon)
    topology = [TopologicalFeature(f.dimension, f.birth, f.death, f.persistence, f.interpretation)
                for f in describe_critical(critical)]
    decision = DECISIONS[int(verdict.decision[index])]
    risk = float(verdict.risk[index])
    usual = finite(verdict.usual_per_week[index])
    return Explanation(
        decision=decision,
        risk=risk,
        summary=summarise(decision, risk, contributions, usual),
        agents=[AgentView(agent, finite(verdict.scores[index, a]), _optional_vote(verdict.votes[index, a]))
                for a, agent in enumerate(verdict.agents)],
        contributions=contributions,
        topology=topology,
        breaches=breaches(verdict, limits, index),
        actions=recommended_actions(contributions, topology) if decision != "monitor" else [],
        usual_per_week=usual,
    )


def with_shared_node(explanation: Explanation, node: str, flagged_on_node: int) -> Explanation:
    """With Kubernetes enrichment: when other flagged entities run on the entity's node, the node is the
    first thing to check."""
    if not flagged_on_node or explanation.decision == "monitor":
        return explanation
    return replace(explanation, actions=[SHARED_NODE_ACTION.format(count=flagged_on_node, node=node),
                                         *explanation.actions])


def top_contributions(verdict: Verdict, index: int, horizon: float) -> list[Contribution]:
    found = []
    for assessment in verdict.assessments:
        for k, column in enumerate(assessment.columns):
            score = assessment.scores[index, k]
            if np.isfinite(score) and score >= MIN_CONTRIBUTION:
                value = float(assessment.values[index, k])
                text = describe(assessment.agent, column.kind, column.feature, value, verdict, index, horizon)
                found.append(Contribution(assessment.agent, column.kind, column.feature, value, float(score), text))
    found.sort(key=lambda c: -c.score)
    return found[:TOP_CONTRIBUTIONS]


def describe(agent: str, kind: str, feature: str | None, value: float, verdict: Verdict, index: int,
             horizon: float) -> str:
    evidence = verdict.evidence
    side = "above" if value > 0 else "below"
    if kind == "state":
        strongest = strongest_states(evidence, agent, index)
        return f"its {agent} metrics together are {value:.1f}σ from their usual state ({strongest})"
    if kind == "level":
        column = evidence.features.index(str(feature))
        peers = "its peers" if evidence.peers else "its baseline"
        units = evidence.level_units[index, column]
        return f"{feature} is {abs(value):.1f}σ {side} {peers} ({units:+.4g} in its own units)"
    if kind == "surprise":
        return f"the newest {feature} value is {abs(value):.1f}σ {side} what the forecaster expected"
    if kind == "novelty":
        return f"{feature} is in a state it has not been in lately ({value:.1f}σ newer than usual)"
    if kind == "record":
        share = evidence.record[index, evidence.features.index(str(feature))]
        extreme = "highest" if share > 0 else "lowest"
        return f"{feature} is past the {extreme} it has been since it was first seen (by {abs(share):.0%} of its range)"
    if kind == "breach":
        column = evidence.features.index(str(feature))
        eta = evidence.time_to_breach[index, column]
        when = f", in about {format_duration(round(eta / 60) * 60)}" if np.isfinite(eta) else ""
        return f"{feature} has a {value:.0%} chance of reaching its limit within {format_duration(horizon)}{when}"
    if kind == "drift":
        return f"the shape of its metrics has drifted {value:.1f}σ from its own norm"
    if kind == "isolation":
        return f"it stands apart from the fleet's majority ({value:.1f}σ-equivalent)"
    if evidence.graph is not None and index in evidence.graph.texts.get(kind, {}):
        return evidence.graph.texts[kind][index]
    subject = f"{feature} " if feature else ""
    return f"{subject}{kind} evidence of {value:.3g}"  # an added agent's own kind of evidence


def strongest_states(evidence: Evidence, role: str, index: int, shown: int = 3) -> str:
    """The features of a role furthest from their usual state, with their z-scores."""
    own = [(evidence.state[index, k], name) for k, (name, r) in enumerate(zip(evidence.features, evidence.roles,
                                                                               strict=True)) if r == role]
    own.sort(key=lambda pair: -abs(pair[0]))
    return ", ".join(f"{name} {z:+.1f}σ" for z, name in own[:shown] if z != 0) or "none alone"


def breaches(verdict: Verdict, limits: dict[str, float], index: int) -> list[Breach]:
    evidence = verdict.evidence
    found = []
    for column, feature in enumerate(evidence.features):
        probability = evidence.breach[index, column]
        if feature in limits and np.isfinite(probability):
            eta = evidence.time_to_breach[index, column]
            found.append(Breach(feature, limits[feature], float(probability), finite(eta)))
    return found


def recommended_actions(contributions: list[Contribution], topology: list[TopologicalFeature]) -> list[str]:
    actions: list[str] = []
    for contribution in contributions:
        key = next((k for k in (contribution.kind, contribution.agent) if k in ACTIONS), "other")
        action = ACTIONS[key].format(feature=contribution.feature, agent=contribution.agent)
        if action not in actions:
            actions.append(action)
    for feature in topology:
        action = ACTIONS["loop" if feature.dimension >= 1 else "split"]
        if action not in actions:
            actions.append(action)
    return actions


def summarise(decision: str, risk: float, contributions: list[Contribution], usual_per_week: float | None) -> str:
    rarity = "" if usual_per_week is None else f" (normal behaviour is this unusual {_per_week(usual_per_week)})"
    if not contributions:
        return f"{decision}: risk {risk:.0%}{rarity}; nothing stands out"
    reasons = "; ".join(c.text for c in contributions[:2])
    return f"{decision}: risk {risk:.0%}{rarity}, mainly the {contributions[0].agent} agent: {reasons}"


def _per_week(rate: float) -> str:
    if rate >= 0.5:
        return f"about {rate:.2g} times a week"
    weeks = 1.0 / rate if rate > 0 else float("inf")
    return "less than once a year" if weeks > 52 else f"about once in {weeks:.0f} weeks"


def _optional_vote(value: float) -> bool | None:
    return bool(value) if np.isfinite(value) else None
