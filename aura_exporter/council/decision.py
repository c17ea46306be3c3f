"""The council's vote: agents' scores → a risk and a decision, held steady by hysteresis.

Risk is the chance that at least one domain fails, the agents' scores taken as independent
probabilities: 1 − Π(1 − score). Averaging would let three quiet agents hide one certain failure
(a memory leak is seen by the resources agent alone); the product is monotone, so more evidence
never lowers the risk, and agreement adds up: two agents at 0.5 make 0.75.

The quorum is the risk the council needs before it calls critical: one agent reaches it alone when
it is sure, or several reach it together. `warn` is the lower threshold. An agent votes (1) when its
own score reaches `warn`.

A decision is taken once the risk has reached its threshold for `confirm_cycles` consecutive
cycles (one surprising sample is not a failure), and left only once the risk has stayed
`hysteresis` below the threshold of the current decision for `clear_cycles` consecutive cycles: a
risk wavering around a threshold does not flap between decisions (nor the alerts built on them).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from aura_exporter.config import CouncilConfig

DECISIONS = ("monitor", "warn", "critical")


def combined_risk(scores: np.ndarray) -> np.ndarray:
    """[E] from [E, agents] scores; abstaining agents (NaN) count as 0."""
    return 1.0 - np.prod(1.0 - np.nan_to_num(scores, nan=0.0), axis=1)


def votes(scores: np.ndarray, settings: CouncilConfig) -> np.ndarray:
    """[E, agents] 1 for an agent that flags the entity, 0 for one that does not, NaN when it abstains."""
    return np.where(np.isnan(scores), np.nan, (scores >= settings.warn).astype(float))


def raw_level(risk: np.ndarray, settings: CouncilConfig, margin: float = 0.0) -> np.ndarray:
    """[E] 0 monitor, 1 warn, 2 critical for thresholds lowered by `margin`."""
    return (risk >= settings.warn - margin).astype(int) + (risk >= settings.quorum - margin).astype(int)


@dataclass
class DecisionState:
    recent: deque  # the last confirm_cycles raw levels
    level: int = 0
    calm: int = 0  # consecutive cycles the risk has stayed clear of the current level
    last_seen: float = 0.0


@dataclass
class DecisionKeeper:
    """Each entity's decision from one cycle to the next; entities unseen for `forget_after` go."""

    settings: CouncilConfig
    forget_after: float
    states: dict[tuple, DecisionState] = field(default_factory=dict)

    def decide(self, keys: tuple[tuple, ...], risk: np.ndarray, now: float) -> np.ndarray:
        rising = raw_level(risk, self.settings)
        holding = raw_level(risk, self.settings, self.settings.hysteresis)
        levels = np.zeros(len(keys), dtype=int)
        for i, key in enumerate(keys):
            state = self.states.get(key) or self.states.setdefault(
                key, DecisionState(deque(maxlen=self.settings.confirm_cycles)))
            state.last_seen = now
            state.recent.append(int(rising[i]))
            confirmed = min(state.recent) if len(state.recent) == state.recent.maxlen else 0
            if confirmed >= state.level:
                state.level, state.calm = confirmed, 0
            elif rising[i] >= state.level:
                state.calm = 0
            elif holding[i] < state.level:
                state.calm += 1
                if state.calm >= self.settings.clear_cycles:
                    state.level, state.calm = int(holding[i]), 0
            else:
                state.calm = 0
            levels[i] = state.level
        self._forget(now)
        return levels

    def warning(self, keys: tuple[tuple, ...]) -> np.ndarray:
        """[E] whether each entity's decision is warn or worse now."""
        return np.array([(s := self.states.get(key)) is not None and s.level > 0 for key in keys], dtype=bool)

    def _forget(self, now: float) -> None:
        for key in [k for k, s in self.states.items() if now - s.last_seen > self.forget_after]:
            del self.states[key]
