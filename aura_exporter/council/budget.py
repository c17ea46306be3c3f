"""The page budget: each entity's thresholds learned from its own history, so that its normal behaviour
pages about `council.false_pages_per_week` times a week or less.

Why: the council's raw risk is the strongest of many columns (features × kinds of evidence), and the
maximum of 38 features' deviations is large on an ordinary day; how large differs per entity. One fixed
threshold for every entity either pages all day on the noisy ones or never on the quiet ones.

How (peaks over threshold, as SPOT: Siffer et al., KDD 2017):
- The council's combined risk r is read as a strength, −ln(1 − r) (the sum over agents of
  −ln(1 − score), computed from the sigmas): the same order as the risk, without its saturation at 1.
- Each entity keeps its last week of strengths (at most MOST_HISTORY), leaving out the cycles it
  spent warning or worse once it has a tail (an incident does not teach that incidents are normal).
  Every REFIT cycles it takes u, the strength exceeded by the top 5% of them, finds the episodes
  above u (consecutive cycles are one episode: one page), lowering u step by step to the median
  where the strengths move too slowly for MIN_EPISODES episodes above it (a day of 5-minute cycles),
  and fits a generalised Pareto tail to their peaks' excesses (method of moments, shape clipped to
  [0, MAX_SHAPE]: never lighter than exponential, so it errs towards fewer pages).
- The tail is that of the strengths held for `confirm_cycles` (the lowest of each run of that many),
  since a decision needs the risk at its threshold that long: the budget counts pages, not cycles.
- λ(s), the episodes per week at least as strong as s in the entity's normal behaviour, follows from
  the tail; the risk is warn^(λ(s) / budget): the warn threshold at exactly the budget, critical where
  normal behaviour gets there about three times more rarely (with warn 0.4, quorum 0.75), and near 0
  for what happens every day. Below u (what the top 5% of cycles exceed) the risk is 0: the tail says
  nothing there, so a budget asking for more pages a week than λ(u) gets λ(u), and an ordinary cycle
  always lets a warning clear (else an entity whose strengths sit at their floor, under a large budget,
  would warn without end, and a warning is not learned from).
- Until an entity has a day of strengths and MIN_EPISODES episodes above u it is learning
  (`threshold` and λ are NaN), and the council keeps the fixed thresholds for it (CouncilStage.weigh):
  a new entity is not blind for a day, it is only as noisy as without a budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from aura_exporter.storage import keys_array, read_keys

WEEK = 7 * 86400.0
DAY = 86400.0
MOST_HISTORY = 4096  # strengths kept per entity (float32: 16 KiB), a week of cycles when they fit
MIN_EPISODES = 10
TAIL_SHARES = (0.05, 0.1, 0.2, 0.3, 0.5)  # u: exceeded by the first of these shares with MIN_EPISODES episodes
TAIL_SHARE = TAIL_SHARES[0]  # so a tail needs at least MIN_EPISODES / TAIL_SHARE = 200 cycles
MAX_SHAPE = 0.45  # the method of moments needs a finite variance (shape < 0.5)
REFIT = 12
STATE_PREFIX = "council_budget_"  # its arrays in the analysis' state file (saved with the baselines)
STATE_VERSION = 1


def strength(per_agent: np.ndarray) -> np.ndarray:
    """[E] −ln(1 − risk) from [E, agents] strengths (Assessment.strength): the risk multiplies the agents'
    1 − score, so the strengths add up."""
    return np.sum(per_agent, axis=1)


@dataclass(frozen=True)
class Tail:
    """Where an entity's normal strengths exceed u, and how fast they thin out beyond it."""

    u: float
    episodes_per_week: float  # at u
    scale: float
    shape: float

    def episodes_above(self, value: float) -> float:
        """λ(value): episodes per week at least this strong in normal behaviour."""
        excess = max(value - self.u, 0.0)
        if self.shape < 1e-6:
            return self.episodes_per_week * float(np.exp(-excess / self.scale))
        return self.episodes_per_week * float((1.0 + self.shape * excess / self.scale) ** (-1.0 / self.shape))

    def threshold(self, per_week: float) -> float:
        """The strength normal behaviour reaches `per_week` times a week."""
        ratio = max(self.episodes_per_week / per_week, 1.0)
        if self.shape < 1e-6:
            return self.u + self.scale * float(np.log(ratio))
        return self.u + self.scale / self.shape * float(ratio ** self.shape - 1.0)


def fit_tail(strengths: np.ndarray, interval: float, confirm: int = 1) -> Tail | None:
    """The tail of these consecutive strengths (one per cycle) as the decision sees them, held for
    `confirm` cycles (a page needs the risk at warn that long); None with too few episodes above u."""
    if confirm > 1:
        strengths = np.lib.stride_tricks.sliding_window_view(strengths, confirm).min(axis=1)
    for share in TAIL_SHARES:  # slow strengths come in long episodes: a lower u finds enough of them
        u = float(np.quantile(strengths, 1.0 - share))
        peaks = episode_peaks(strengths, u)
        if len(peaks) >= MIN_EPISODES:
            break
    else:
        return None
    excess = peaks - u
    mean, variance = float(excess.mean()), float(excess.var())
    shape = 0.0 if variance <= 0 else float(np.clip(0.5 * (1.0 - mean * mean / variance), 0.0, MAX_SHAPE))
    scale = max(mean * (1.0 - shape), 1e-9)
    weeks = len(strengths) * interval / WEEK
    return Tail(u, len(peaks) / weeks, scale, shape)


def episode_peaks(strengths: np.ndarray, u: float) -> np.ndarray:
    """The highest strength of each run of consecutive strengths above u (one run: one page)."""
    above = strengths > u
    starts = np.flatnonzero(above & ~np.concatenate([[False], above[:-1]]))
    if not len(starts):
        return np.zeros(0)
    peaks = np.maximum.reduceat(np.where(above, strengths, -np.inf), starts)
    return peaks[np.isfinite(peaks)]


class _Entity:
    """One entity's recent strengths (a ring) and its tail."""

    def __init__(self, size: int):
        self.ring = np.zeros(size, dtype=np.float32)
        self.count = 0
        self.tail: Tail | None = None
        self.since_fit = 0
        self.last_seen = 0.0

    def learn(self, value: float) -> None:
        self.ring[self.count % len(self.ring)] = value
        self.count += 1
        self.since_fit += 1

    def strengths(self) -> np.ndarray:
        """In time order, oldest first."""
        if self.count <= len(self.ring):
            return self.ring[:self.count].astype(np.float64)
        return np.roll(self.ring, -(self.count % len(self.ring))).astype(np.float64)


@dataclass
class PageBudget:
    """Each entity's learned tail; `risk` is called once per cycle with the entities' strengths."""

    per_week: float
    warn: float
    interval: float
    forget_after: float
    confirm: int = 1  # council.confirm_cycles
    entities: dict[tuple, _Entity] = field(default_factory=dict)

    @property
    def history(self) -> int:
        """A week of cycles, within what the tail needs and what memory allows."""
        return int(np.clip(WEEK / self.interval, 2 * self.least_cycles, MOST_HISTORY))

    @property
    def min_cycles(self) -> int:
        """A day of cycles, and at least enough for MIN_EPISODES above the top TAIL_SHARE."""
        return int(min(max(DAY / self.interval, self.least_cycles), self.history))

    @property
    def least_cycles(self) -> int:
        return int(np.ceil(MIN_EPISODES / TAIL_SHARE))

    def assess(self, keys: tuple[tuple, ...], strengths: np.ndarray, warning: np.ndarray,
               now: float) -> tuple[np.ndarray, np.ndarray]:
        """([E] λ(s), [E] risk): how many times a week each entity's normal behaviour is at least this strong
        (NaN while it learns), and the risk that makes of it; `warning` [E] marks entities whose decision is
        warn or worse, whose strengths are not learned from."""
        rates = np.full(len(keys), np.nan)
        in_tail = np.zeros(len(keys), dtype=bool)
        for i, key in enumerate(keys):
            entity = self.entities.get(key) or self.entities.setdefault(key, _Entity(self.history))
            entity.last_seen = now
            value = float(strengths[i])
            if entity.tail is not None:
                rates[i] = entity.tail.episodes_above(value)
                in_tail[i] = value >= entity.tail.u
            if not (warning[i] and entity.tail is not None):  # while it learns, warnings are the fixed thresholds'
                entity.learn(value)
            if entity.since_fit >= REFIT and entity.count >= self.min_cycles:
                # a week too quiet for a tail (too few episodes above u) keeps the last one: once learned,
                # an entity does not fall back to learning
                entity.tail = fit_tail(entity.strengths(), self.interval, self.confirm) or entity.tail
                entity.since_fit = 0
        for key in [k for k, e in self.entities.items() if now - e.last_seen > self.forget_after]:
            del self.entities[key]
        return rates, self.risk(rates, in_tail)

    def risk(self, rates: np.ndarray, in_tail: np.ndarray) -> np.ndarray:
        """[E] warn^(λ/budget) for strengths in the tail: warn at the budget, towards 1 for what normal behaviour
        never does; 0 below the tail and while an entity learns (NaN λ; the council then keeps its fixed
        thresholds)."""
        return np.where(in_tail, self.warn ** (np.nan_to_num(rates, nan=np.inf) / self.per_week), 0.0)

    def state(self, fingerprint: str) -> dict[str, np.ndarray]:
        """Every entity's strengths as arrays for the state file; `fingerprint` says what they were measured by."""
        entities = list(self.entities.items())
        return {f"{STATE_PREFIX}{name}": value for name, value in {
            "version": np.array(STATE_VERSION), "fingerprint": np.array(fingerprint),
            "keys": keys_array(key for key, _ in entities),
            "strengths": (np.stack([e.ring for _, e in entities]) if entities
                          else np.zeros((0, self.history), dtype=np.float32)),
            "counts": np.array([e.count for _, e in entities], dtype=np.int64),
            "last_seen": np.array([e.last_seen for _, e in entities], dtype=np.float64),
        }.items()}

    def restore(self, arrays: dict[str, np.ndarray], fingerprint: str) -> bool:
        """Take back what `state` wrote (and refit each tail at once); False, leaving nothing, when the arrays
        are missing, malformed or were measured another way (they are then learned afresh)."""
        try:
            get = {name.removeprefix(STATE_PREFIX): value for name, value in arrays.items()
                   if name.startswith(STATE_PREFIX)}
            if int(get["version"]) != STATE_VERSION or str(get["fingerprint"]) != fingerprint:
                return False
            keys = read_keys(get["keys"])
            rings, counts, seen = get["strengths"], get["counts"], get["last_seen"]
            if rings.shape != (len(keys), self.history) or counts.shape != (len(keys),) or seen.shape != counts.shape:
                return False
        except (KeyError, ValueError, TypeError):
            return False
        for i, key in enumerate(keys):
            entity = self.entities[key] = _Entity(self.history)
            entity.ring[:] = rings[i]
            entity.count, entity.last_seen = int(counts[i]), float(seen[i])
            if entity.count >= self.min_cycles:
                entity.tail = fit_tail(entity.strengths(), self.interval, self.confirm)
        return True

    def threshold(self, key: tuple) -> float:
        """The strength at which the entity pages (NaN while it learns)."""
        entity = self.entities.get(key)
        return entity.tail.threshold(self.per_week) if entity is not None and entity.tail is not None else np.nan
