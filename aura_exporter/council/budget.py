"""The page budget: thresholds learned from history, the fleet's or each entity's own, so that normal behaviour
pages about `council.false_pages_per_week` times a week per entity or less.

Why: the council's raw risk is the strongest of many columns (features × kinds of evidence), and the
maximum of 38 features' deviations is large on an ordinary day. A fixed threshold says nothing of how often
it pages; a budget says it in the unit on-call teams count.

How (counted where the history has seen it, extrapolated only beyond, as peaks over threshold do:
Siffer et al., KDD 2017):
- The council's combined risk r is read as a strength, −ln(1 − r) (the sum over agents of
  −ln(1 − score), computed from the sigmas): the same order as the risk, without its saturation at 1.
- Each entity keeps its last two weeks of strengths (HISTORY_DAYS, at most MOST_HISTORY cycles; a weekly
  rhythm seen twice), leaving out cycles whose evidence is still warming up (Evidence.settled: a new
  entity's first deviations are measured against its window alone, thousands of sigmas that say nothing
  about its normal behaviour) and, once it has a tail, the cycles it spent warning (an incident does not
  teach that incidents are normal).
- Every REFIT cycles it counts, for each level, how many times its strengths rose past it: a page is a
  rise past the threshold, so λ(s), the episodes per week at least as strong as s, is counted, not
  modelled, wherever the history holds MIN_EPISODES such rises or more. Beyond (u, the lowest level
  fewer rises pass), the peaks of the few episodes above u set an exponential tail. A generalised
  Pareto tail fitted above the top 5% of cycles (the first design) priced each entity's rare levels by
  the shape of its common ones, and paged less well for it (README, 'Page budget').
- The counts are those of the strengths held for `confirm_cycles` (the lowest of each run of that many),
  since a decision needs the risk at its threshold that long: the budget counts pages, not cycles.
- The risk is warn^(λ(s) / budget): the warn threshold at exactly the budget, critical where normal
  behaviour gets there about three times more rarely (with warn 0.4, quorum 0.75), and near 0 for what
  happens every day. At or below the strength nine cycles in ten stay under (ORDINARY) the risk is 0:
  a budget asking for more pages a week than the entity rises past it gets that many, and ordinary cycles
  let a warning clear within `clear_cycles` (else an entity whose strengths sit at their floor, under a
  large budget, would warn without end, and a warning is not learned from).
- Shared by the fleet (`council.budget_scope: fleet`, the default): λ is counted over the strengths of all
  the analysis' entities together (a sample of FLEET_SAMPLE of them; rates per entity-week), never below an
  entity's own λ divided by OWN_SHARE. Counted alone, an entity's recurring incidents are its normal
  behaviour and never page; the evidence is already measured against each entity's usual state (README,
  'Page budget', with the SMD figures).
- Until an entity has a day of settled strengths and MIN_EPISODES rises past a level above ORDINARY it
  is learning (`threshold` and λ are NaN), and the council keeps the fixed thresholds for it
  (CouncilStage.weigh): a new entity is not blind for a day, it is only as noisy as without a budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from aura_exporter.storage import keys_array, read_keys

WEEK = 7 * 86400.0
DAY = 86400.0
HISTORY_DAYS = 14
MOST_HISTORY = 4096  # strengths kept per entity (float32: 16 KiB), two weeks of 5-minute cycles
MIN_EPISODES = 10  # rises past a level for its rate to be counted, not extrapolated
ORDINARY = 0.9  # the quantile of an entity's strengths at or below which nothing is news
CURVE_POINTS = 64  # levels kept per entity, rates about 10% apart from ORDINARY's to u's
LEAST_CYCLES = 200  # a tail from fewer cycles than this (hourly cycles: a day is 24) would count noise
REFIT = 12
MOST_LEVELS = 2048  # levels a fleet's tail is counted at
# A shared budget (`council.budget_scope: fleet`): the fleet's tail is counted from at most FLEET_SAMPLE entities
# (rates are per entity-week, so a sample estimates them; a fleet of 10,000 is not sorted every hour), and
# no entity takes more than OWN_SHARE times its share (one host broken in its own way pages a few times a
# week, not all the fleet's pages).
FLEET_SAMPLE = 256
OWN_SHARE = 4.0
STATE_PREFIX = "council_budget_"  # its arrays in the analysis' state file (saved with the baselines)
STATE_VERSION = 2  # 2: settled strengths only, two weeks, counted rates


def strength(per_agent: np.ndarray) -> np.ndarray:
    """[E] −ln(1 − risk) from [E, agents] strengths (Assessment.strength): the risk multiplies the agents'
    1 − score, so the strengths add up."""
    return np.sum(per_agent, axis=1)


@dataclass(frozen=True, eq=False)
class Tail:
    """How many times a week an entity's normal strengths rise past each level: counted up to u, an
    exponential tail beyond."""

    levels: np.ndarray  # [L] increasing, from the ORDINARY quantile to u
    rates: np.ndarray  # [L] decreasing: episodes per week at least as strong as each level
    scale: float  # of the exponential tail beyond u = levels[-1]

    @property
    def u(self) -> float:
        return float(self.levels[-1])

    @property
    def floor(self) -> float:
        """The ORDINARY quantile: no strength at or below it is news."""
        return float(self.levels[0])

    @property
    def episodes_per_week(self) -> float:
        """At u, where the tail begins."""
        return float(self.rates[-1])

    def episodes_above(self, value: float) -> float:
        """λ(value): episodes per week at least this strong in normal behaviour (the rate of the highest
        counted level at or below it, so between levels it errs towards more episodes, fewer pages)."""
        if value >= self.u:
            return self.episodes_per_week * float(np.exp(-(value - self.u) / self.scale))
        return float(self.rates[max(int(np.searchsorted(self.levels, value, side="right")) - 1, 0)])

    def threshold(self, per_week: float) -> float:
        """The lowest strength normal behaviour reaches at most `per_week` times a week (never below the
        floor)."""
        if per_week >= self.episodes_per_week:
            return float(self.levels[int(np.argmax(self.rates <= per_week))])
        return self.u + self.scale * float(np.log(self.episodes_per_week / per_week))


def fit_tail(series: Sequence[np.ndarray], interval: float, confirm: int = 1, clear: int = 1) -> Tail | None:
    """The tail of one or more entities' consecutive strengths (one per cycle each) as the decision sees them,
    held for `confirm` cycles (a page needs the risk at warn that long) and cleared after `clear` calm ones;
    the rates are per entity-week. None when no level above the ORDINARY quantile is risen past
    MIN_EPISODES times."""
    held = [np.lib.stride_tricks.sliding_window_view(s, confirm).min(axis=1) if confirm > 1 else s for s in series]
    pooled = np.concatenate(held)
    levels = candidate_levels(pooled, float(np.quantile(pooled, ORDINARY)))
    rises = np.sum([rises_past(s, levels, clear) for s in held], axis=0)
    at_least = np.maximum.accumulate(rises[::-1])[::-1]  # a higher threshold never pages more often
    if at_least[0] < MIN_EPISODES:
        return None
    tail_start = int(np.argmax(at_least < MIN_EPISODES))  # the highest level always has none: it exists
    u = float(levels[tail_start])
    excess = np.concatenate([episode_peaks(s, u) for s in held]) - u
    scale = max(float(excess.mean()), 1e-9) if len(excess) else 1e-9  # none ever went beyond: beyond is new
    weeks = len(pooled) * interval / WEEK
    kept = curve_points(at_least[:tail_start + 1])
    return Tail(levels[kept], at_least[kept] / weeks, scale)


def candidate_levels(pooled: np.ndarray, lowest: float) -> np.ndarray:
    """The distinct strengths from `lowest` on, increasing; past MOST_LEVELS of them (a fleet's), the highest
    half of MOST_LEVELS as they are (where thresholds and u lie) and evenly spaced quantiles below."""
    levels = np.unique(pooled[pooled >= lowest])
    if len(levels) <= MOST_LEVELS:
        return levels
    top = MOST_LEVELS // 2
    return np.unique(np.concatenate([levels[-top:], np.quantile(levels[:-top], np.linspace(0.0, 1.0, top))]))


def rises_past(strengths: np.ndarray, levels: np.ndarray, gap: int = 1) -> np.ndarray:
    """[L] how many times the strengths rose above each of `levels` after `gap` cycles at or below it: a
    threshold at that level would have paged that many times, since a decision clears only after
    `clear_cycles` calm cycles and rises closer together are one page."""
    earlier = np.concatenate([np.full(gap, -np.inf), strengths[:-1]])
    before = np.lib.stride_tricks.sliding_window_view(earlier, gap).max(axis=1)  # the `gap` cycles before each
    rising = strengths > before
    lows, highs = np.sort(before[rising]), np.sort(strengths[rising])
    return np.searchsorted(lows, levels, side="right") - np.searchsorted(highs, levels, side="right")


def curve_points(at_least: np.ndarray) -> np.ndarray:
    """Indices of at most CURVE_POINTS levels, each the lowest with its count or fewer, the counts spaced
    evenly on a log scale from the first's to the last's (both kept)."""
    wanted = np.geomspace(at_least[0], max(at_least[-1], 1), CURVE_POINTS)
    descending = at_least[::-1]  # increasing, so that searchsorted counts the levels with at most each wanted count
    lowest_at_most = len(at_least) - np.searchsorted(descending, wanted, side="right")
    return np.unique(np.concatenate([[0], np.clip(lowest_at_most, 0, len(at_least) - 1), [len(at_least) - 1]]))


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
    """Each entity's learned tail, and the fleet's (`shared`); `assess` is called once per cycle with the
    entities' strengths."""

    per_week: float
    warn: float
    interval: float
    forget_after: float
    confirm: int = 1  # council.confirm_cycles
    clear: int = 1  # council.clear_cycles
    shared: bool = False  # council.budget_scope: fleet
    entities: dict[tuple, _Entity] = field(default_factory=dict)
    fleet_tail: Tail | None = None
    fleet_fits: int = 0
    since_fleet_fit: int = 0

    @property
    def history(self) -> int:
        """HISTORY_DAYS of cycles, within what counting needs and what memory allows."""
        return int(np.clip(HISTORY_DAYS * DAY / self.interval, 2 * LEAST_CYCLES, MOST_HISTORY))

    @property
    def min_cycles(self) -> int:
        """A day of cycles, and at least LEAST_CYCLES."""
        return int(min(max(DAY / self.interval, LEAST_CYCLES), self.history))

    def assess(self, keys: tuple[tuple, ...], strengths: np.ndarray, warning: np.ndarray, settled: np.ndarray,
               now: float) -> tuple[np.ndarray, np.ndarray]:
        """([E] λ(s), [E] risk): how many times a week each entity's normal behaviour is at least this strong
        (NaN while it learns), and the risk that makes of it. Learned from: the strengths of `settled` [E]
        entities (their evidence warmed up) whose decision is not warn or worse (`warning` [E])."""
        rates = np.full(len(keys), np.nan)
        news = np.zeros(len(keys), dtype=bool)
        for i, key in enumerate(keys):
            entity = self.entities.get(key) or self.entities.setdefault(key, _Entity(self.history))
            entity.last_seen = now
            value = float(strengths[i])
            if entity.tail is not None:
                rates[i] = self.episodes_above(entity.tail, value)
                news[i] = value > self.floor(entity.tail)
            if settled[i] and not (warning[i] and entity.tail is not None):  # while it learns, warnings are
                entity.learn(value)                                          # the fixed thresholds'
            if entity.since_fit >= REFIT and entity.count >= self.min_cycles:
                # a fortnight too quiet to count (no level risen past often enough) keeps the last tail: once
                # learned, an entity does not fall back to learning
                entity.tail = self._fit_own(entity) or entity.tail
                entity.since_fit = 0
        for key in [k for k, e in self.entities.items() if now - e.last_seen > self.forget_after]:
            del self.entities[key]
        if self.shared:
            self.since_fleet_fit += 1
            if self.since_fleet_fit >= REFIT:
                self._fit_fleet()
        return rates, self.risk(rates, news)

    def episodes_above(self, own: Tail, value: float) -> float:
        """λ(value) for an entity with this tail of its own: its own alone, or, shared, the fleet's but never
        below its own divided by OWN_SHARE (so that it pages at most OWN_SHARE times its share)."""
        if self.fleet_tail is None:
            return own.episodes_above(value)
        return max(self.fleet_tail.episodes_above(value), own.episodes_above(value) / OWN_SHARE)

    def floor(self, own: Tail) -> float:
        """The strength at or below which nothing is news for an entity with this tail of its own."""
        return own.floor if self.fleet_tail is None else max(own.floor, self.fleet_tail.floor)

    def _fit_own(self, entity: _Entity) -> Tail | None:
        return fit_tail([entity.strengths()], self.interval, self.confirm, self.clear)

    def _fit_fleet(self) -> None:
        """The fleet's tail from a sample of the entities that have one of their own (a different sample at each
        fit, the same in every replay of the same cycles); a fleet too quiet to count keeps the last."""
        learned = [e for e in self.entities.values() if e.tail is not None]
        if learned:
            picked = np.random.default_rng(self.fleet_fits).permutation(len(learned))[:FLEET_SAMPLE]
            tail = fit_tail([learned[i].strengths() for i in sorted(picked)], self.interval, self.confirm, self.clear)
            self.fleet_tail = tail or self.fleet_tail
        self.fleet_fits += 1
        self.since_fleet_fit = 0

    def risk(self, rates: np.ndarray, news: np.ndarray) -> np.ndarray:
        """[E] warn^(λ/budget) for strengths above the entity's floor (`news`): warn at the budget, towards 1
        for what normal behaviour never does; 0 at or below the floor and while an entity learns (NaN λ; the
        council then keeps its fixed thresholds)."""
        return np.where(news, self.warn ** (np.nan_to_num(rates, nan=np.inf) / self.per_week), 0.0)

    def forget(self) -> None:
        """Everything learned (the analysis' entities start afresh)."""
        self.entities.clear()
        self.fleet_tail = None

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
                entity.tail = self._fit_own(entity)
        if self.shared:
            self._fit_fleet()
        return True

    def threshold(self, key: tuple) -> float:
        """The strength at which the entity pages (NaN while it learns): the lowest whose λ is within the budget."""
        entity = self.entities.get(key)
        if entity is None or entity.tail is None:
            return np.nan
        if self.fleet_tail is None:
            return entity.tail.threshold(self.per_week)
        return max(self.fleet_tail.threshold(self.per_week), entity.tail.threshold(OWN_SHARE * self.per_week))
