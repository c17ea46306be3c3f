"""The council's agents: each reads the evidence of its domain and scores every entity 0..1.

An agent is anything with a `name` and an `assess(evidence, sigmas)` that returns an Assessment:
the columns of evidence it weighed (kind and feature), their values and their scores. Its score for
an entity is its strongest column (evidence of one domain is correlated: a leak shows in the level,
the surprise and the breach odds of the same feature at once, and is one reason, not three).

Scores are calibrated the same way everywhere: a deviation of `sigmas` robust standard deviations
scores 0.5, the score rising steeply on either side (SCORE_WIDTH); a forecast's breach probability is
already a probability and is used as it is. An agent with nothing to look at abstains (NaN).

To add an agent, write a class with that interface and add an instance to AGENTS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from aura_exporter.config.model import EVIDENCE_KINDS
from aura_exporter.council.evidence import Evidence

# Sigmas between a score of 0.5 and one of 0.88: 4.5σ → 0.27, 5σ → 0.5, 5.5σ → 0.73, 6σ → 0.88, 7σ → 0.98
# (with the default `sigmas` of 5); healthy noise (under 3.5σ) scores under 0.05.
SCORE_WIDTH = 0.5

# A record (a value beyond every one before, topology/novelty.py) counts as this many sigmas beyond
# `sigmas`: a score of 0.73, a warning alone, critical with any other agent's warning.
RECORD_SIGMAS = 0.5

# Each feature's state deviation counts at most this many sigmas in its role's joint deviation: one
# feature far off still makes the joint deviation large, but cannot alone stand for the whole role.
STATE_CLIP = 10.0

# An entity `isolation` noise thresholds away from the fleet's majority counts as that many sigmas
# times this (twice the threshold is a clear split: 2 x 2 = 4 sigmas, a score of 0.5 by default).
ISOLATION_SIGMAS = 2.0

MOST_SCORE = 1.0 - 1e-12  # a probability of 1 is certainty: its strength is large, not infinite


@dataclass(frozen=True)
class Column:
    kind: str  # level | state | surprise | novelty | record | breach | drift | isolation | ...
    feature: str | None  # None for evidence about the whole entity (or all the agent's features: state)


@dataclass(frozen=True)
class Assessment:
    agent: str
    columns: tuple[Column, ...]
    values: np.ndarray  # [E, K] sigmas, or a probability for breach columns
    scores: np.ndarray  # [E, K] 0..1, NaN where the evidence is missing

    def strength(self, sigmas: float) -> np.ndarray:
        """[E] the strongest column as −ln(1 − score), computed without the score's saturation at 1 (the
        page budget ranks deviations far beyond `sigmas`); 0 when the agent has nothing to say."""
        if not self.columns:
            return np.zeros(self.scores.shape[0])
        strengths = np.stack([column_strength(c.kind, self.values[:, k], self.scores[:, k], sigmas)
                              for k, c in enumerate(self.columns)], axis=1)
        return np.nan_to_num(np.fmax.reduce(strengths, axis=1), nan=0.0)

    @property
    def score(self) -> np.ndarray:
        """[E] the strongest column per entity; NaN when the agent has nothing to say."""
        if not self.columns:
            return np.full(self.scores.shape[0], np.nan)
        return np.fmax.reduce(self.scores, axis=1)


def weighing_only(assessment: Assessment, kinds: tuple[str, ...]) -> Assessment:
    """The assessment without the built-in kinds of evidence left out of `kinds` (`council.evidence`);
    an added agent's own kinds stay."""
    kept = [k for k, c in enumerate(assessment.columns) if c.kind in kinds or c.kind not in EVIDENCE_KINDS]
    if len(kept) == len(assessment.columns):
        return assessment
    return Assessment(assessment.agent, tuple(assessment.columns[k] for k in kept), assessment.values[:, kept],
                      assessment.scores[:, kept])


class Agent(Protocol):
    name: str

    def assess(self, evidence: Evidence, sigmas: float) -> Assessment: ...


def sigma_score(deviation: np.ndarray, sigmas: float) -> np.ndarray:
    """Deviations in sigmas (either sign) to 0..1: 0.5 at `sigmas`; NaN stays NaN."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-(np.abs(deviation) - sigmas) / SCORE_WIDTH))


def sigma_strength(deviation: np.ndarray, sigmas: float) -> np.ndarray:
    """−ln(1 − sigma_score): the same order, linear in sigmas far beyond `sigmas` instead of stuck at 1."""
    with np.errstate(invalid="ignore"):  # NaN (no evidence) stays NaN
        return np.logaddexp(0.0, (np.abs(deviation) - sigmas) / SCORE_WIDTH)


def column_strength(kind: str, values: np.ndarray, scores: np.ndarray, sigmas: float) -> np.ndarray:
    """A column's −ln(1 − score): from its sigmas for the built-in deviations, from the score otherwise
    (a breach probability, an added agent's own kind)."""
    if kind in EVIDENCE_KINDS and kind != "breach":
        return np.where(np.isnan(scores), np.nan, sigma_strength(values, sigmas))
    return -np.log1p(-np.clip(scores, 0.0, MOST_SCORE))


class RoleAgent:
    """Weighs the level, surprise, novelty, records and breach odds of the features whose role is its name,
    and the state deviations of those features together."""

    def __init__(self, name: str):
        self.name = name

    def assess(self, evidence: Evidence, sigmas: float) -> Assessment:
        columns: list[Column] = []
        values: list[np.ndarray] = []
        scores: list[np.ndarray] = []
        for index, (feature, role) in enumerate(zip(evidence.features, evidence.roles, strict=True)):
            if role != self.name:
                continue
            for kind, value in (("level", evidence.level[:, index]), ("surprise", evidence.surprise[:, index])):
                columns.append(Column(kind, feature))
                values.append(value)
                scores.append(sigma_score(value, sigmas))
            if not np.all(np.isnan(evidence.novelty[:, index])):
                columns.append(Column("novelty", feature))
                values.append(evidence.novelty[:, index])
                scores.append(sigma_score(evidence.novelty[:, index], sigmas))
            if not np.all(np.isnan(evidence.record[:, index])):
                record = np.where(evidence.record[:, index] != 0, sigmas + RECORD_SIGMAS, 0.0)
                columns.append(Column("record", feature))
                values.append(record)
                scores.append(np.where(np.isnan(evidence.record[:, index]), np.nan, sigma_score(record, sigmas)))
            if not np.all(np.isnan(evidence.breach[:, index])):
                columns.append(Column("breach", feature))
                values.append(evidence.breach[:, index])
                scores.append(evidence.breach[:, index])
        own = [index for index, role in enumerate(evidence.roles) if role == self.name]
        if own:
            columns.append(Column("state", None))
            values.append(joint_deviation(evidence.state[:, own]))
            scores.append(sigma_score(values[-1], sigmas))
        for kind, value in self.entity_evidence(evidence):
            columns.append(Column(kind, None))
            values.append(value)
            scores.append(sigma_score(value, sigmas))
        shape = (evidence.entities, 0)
        return Assessment(
            agent=self.name,
            columns=tuple(columns),
            values=np.stack(values, axis=1) if values else np.zeros(shape),
            scores=np.stack(scores, axis=1) if scores else np.zeros(shape),
        )

    def entity_evidence(self, evidence: Evidence) -> list[tuple[str, np.ndarray]]:
        """Evidence about the whole entity this agent also weighs, in sigmas."""
        return []


def joint_deviation(zscores: np.ndarray) -> np.ndarray:
    """[E] how far [E, F] z-scores are from 0 together, in sigmas of one normal deviation: the sum of their
    squares (each at most STATE_CLIP) is chi-squared with F degrees of freedom when nothing is wrong, and
    Wilson and Hilferty's cube root makes it normal. So twenty features are not twenty chances to page,
    and two features 4σ off together count more than one alone. 0 when they are closer than usual."""
    squares = np.minimum(zscores * zscores, STATE_CLIP * STATE_CLIP).sum(axis=1)
    dof = zscores.shape[1]
    spread = np.sqrt(2.0 / (9.0 * dof))
    return np.maximum(((squares / dof) ** (1.0 / 3.0) - (1.0 - spread * spread)) / spread, 0.0)


class NetworkAgent(RoleAgent):
    """Network features, the fleet's shape (an entity split off from its peers), and the service graph:
    a new request loop, a service cut off."""

    def __init__(self) -> None:
        super().__init__("network")

    def entity_evidence(self, evidence: Evidence) -> list[tuple[str, np.ndarray]]:
        return [("isolation", evidence.isolation * ISOLATION_SIGMAS),
                *graph_columns(evidence, ("dependency_loop", "partition"))]


class SecurityAgent(RoleAgent):
    """Security features, drift of the window's shape (behaviour unlike the entity's own norm), and
    new callers in the service graph (who calls the payments service now?)."""

    def __init__(self) -> None:
        super().__init__("security")

    def entity_evidence(self, evidence: Evidence) -> list[tuple[str, np.ndarray]]:
        return [("drift", np.maximum(evidence.drift, 0.0)),  # only more drift than usual is news
                *graph_columns(evidence, ("new_caller",))]


def graph_columns(evidence: Evidence, kinds: tuple[str, ...]) -> list[tuple[str, np.ndarray]]:
    """The service graph's findings of these kinds, for an analysis linked to a graph analysis."""
    if evidence.graph is None:
        return []
    return [(kind, evidence.graph.values[kind]) for kind in kinds]


AGENTS: tuple[Agent, ...] = (NetworkAgent(), RoleAgent("resources"), SecurityAgent(), RoleAgent("performance"))
