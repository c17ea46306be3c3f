"""The council: four agents weigh each entity's evidence; their scores become a risk and a decision."""

from aura_exporter.council.agents import AGENTS, Agent, Assessment, Column
from aura_exporter.council.decision import DECISIONS
from aura_exporter.council.stage import CouncilStage, Verdict

__all__ = ["AGENTS", "DECISIONS", "Agent", "Assessment", "Column", "CouncilStage", "Verdict"]
