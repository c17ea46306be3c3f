"""The council stage of one analysis: evidence → each agent's assessment → risk and decision."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import numpy as np

from aura_exporter.config import Analysis
from aura_exporter.council.agents import AGENTS, Agent, Assessment, weighing_only
from aura_exporter.council.budget import PageBudget, strength
from aura_exporter.council.calibration import Calibrator
from aura_exporter.council.decision import DecisionKeeper, combined_risk, votes
from aura_exporter.council.evidence import Evidence, gather_evidence
from aura_exporter.forecast.stage import Forecast
from aura_exporter.graph import GraphOutcome
from aura_exporter.topology import Topology
from aura_exporter.windows import Windows


@dataclass(frozen=True)
class Verdict:
    evidence: Evidence
    assessments: tuple[Assessment, ...]
    scores: np.ndarray  # [E, agents], NaN where an agent abstains
    votes: np.ndarray  # [E, agents] 1 / 0, NaN where an agent abstains
    risk: np.ndarray  # [E] 0..1
    decision: np.ndarray  # [E] index into DECISIONS
    usual_per_week: np.ndarray  # [E] how often a week normal behaviour is this unusual (page budget; else NaN)

    @property
    def agents(self) -> tuple[str, ...]:
        return tuple(a.agent for a in self.assessments)


class CouncilStage:
    """Keeps each entity's decision across cycles; `run` is called once per cycle."""

    def __init__(self, analysis: Analysis, agents: tuple[Agent, ...] = AGENTS):
        self.analysis = analysis
        self.agents = agents
        self.keeper = DecisionKeeper(analysis.council, analysis.baseline.forget_after)
        self.calibrator = Calibrator(analysis.baseline.forget_after) if analysis.council.calibrate else None
        settings = analysis.council
        self.budget = (PageBudget(settings.false_pages_per_week, settings.warn, analysis.interval,
                                  analysis.baseline.forget_after, settings.confirm_cycles, settings.clear_cycles,
                                  shared=settings.budget_scope == "fleet")
                       if settings.false_pages_per_week else None)

    def budget_state(self) -> dict[str, np.ndarray]:
        """The page budget's learning, for the analysis' state file (nothing without a budget)."""
        return self.budget.state(self._strengths_fingerprint()) if self.budget is not None else {}

    def restore_budget(self, arrays: dict[str, np.ndarray]) -> bool:
        """Take back `budget_state`'s arrays; False when there are none this budget can use."""
        return self.budget is not None and self.budget.restore(arrays, self._strengths_fingerprint())

    def _strengths_fingerprint(self) -> str:
        """What an entity's strengths mean: the council's settings but the budget itself, the interval
        and the topology's (novelty); the features and windows are the state file's own fingerprint."""
        council = dataclasses.replace(self.analysis.council, false_pages_per_week=0.0)
        what = (council, self.analysis.interval, self.analysis.topology)
        return hashlib.sha256(repr(what).encode()).hexdigest()[:16]

    def run(self, windows: Windows, topology: Topology, forecast: Forecast | None, now: float,
            graph: GraphOutcome | None = None) -> Verdict:
        return self.weigh(gather_evidence(self.analysis, windows, topology, forecast, graph), windows.entities, now)

    def assess(self, evidence: Evidence) -> tuple[Assessment, ...]:
        """Each agent's assessment, of the kinds of evidence `council.evidence` lists."""
        settings = self.analysis.council
        return tuple(weighing_only(agent.assess(evidence, settings.sigmas), settings.evidence) for agent in self.agents)

    def weigh(self, evidence: Evidence, keys: tuple[tuple, ...], now: float) -> Verdict:
        """The verdict on the entities `keys` from their evidence: the decision layer alone, which a
        recording of evidence (backtest/recording.py) replays under other settings."""
        settings = self.analysis.council
        assessments = self.assess(evidence)
        scores = np.stack([a.score for a in assessments], axis=1) if assessments else np.zeros((evidence.entities, 0))
        risk = combined_risk(scores)
        if self.calibrator is not None:
            risk = self.calibrator.calibrate(keys, risk, now)
        usual = np.full(evidence.entities, np.nan)
        if self.budget is not None:
            strengths = council_strengths(assessments, settings.sigmas, evidence.entities)
            usual, budgeted = self.budget.assess(keys, strengths, self.keeper.warning(keys), evidence.settled,
                                                 now)
            risk = np.where(np.isnan(usual), risk, budgeted)  # fixed thresholds while learning
        return Verdict(
            evidence=evidence,
            assessments=assessments,
            scores=scores,
            votes=votes(scores, self.analysis.council),
            risk=risk,
            decision=self.keeper.decide(keys, risk, now),
            usual_per_week=usual,
        )


def council_strengths(assessments: tuple[Assessment, ...], sigmas: float, entities: int) -> np.ndarray:
    """[E] what the page budget ranks: the agents' −ln(1 − score) added up, without the risk's saturation."""
    return strength(np.stack([a.strength(sigmas) for a in assessments], axis=1) if assessments
                    else np.zeros((entities, 0)))
