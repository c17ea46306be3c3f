"""How new each entity's latest state is, judged against its own history (`topology.novelty_history`).

Each step's Takens point (the value and its `embedding_dimension − 1` predecessors) is compared with
the entity's last `novelty_history` points: its distance to the nearest of them (Chebyshev) is the
length of the H0 bar it opens when it joins that cloud in the Vietoris–Rips filtration, zero for a
state the series has been in before, large for one it has never visited. The points just before it
(those that share samples with it) are left out, so a point is never its own neighbour.

That distance is in the feature's units and its usual size differs from series to series, so it is
turned into a tail probability of its own past, Numenta's "anomaly likelihood" (Ahmad et al. 2017),
which NAB's best detectors use: the mean of the last SHORT novelties is compared with the mean and
spread of those means over about `topology.novelty_memory` (exponentially weighted: constant memory), and
reported as a z-score in sigmas, the council's unit. Nothing is reported before `topology.novelty_warm_up`
of means exist. Once
warm, an average moves that mean and spread as if it were at most BOUND spreads away: distances are
heavy-tailed, and one spike a thousand times the usual would otherwise widen the spread so much that
nothing short of another such spike stands out for weeks. The spread counts as at least SPAN_FLOOR
of the range of the values so far: a series flat most of the time (a disk written to in bursts)
would otherwise have a spread near 0 and make every burst after a quiet spell a thousand sigmas.

Scales (`topology.novelty_scales`): at scale s a point is made of the means of s steps each, `delay`
× s steps apart, and has its own history and likelihood; an entity's novelty is the largest over its
scales. Scale 1 sees a step unlike any before (a spike, a jump); a coarser scale sees a slow change of
shape (a daily curve that sags or stretches) whose single steps all look familiar.

Two memories beyond the last `novelty_history` points:
- surprises: a point that was judged REMEMBER_SIGMAS or more newer than usual is also kept in a second
  ring as large as the history, so a pattern that surprised once (a weekly batch job, a known kind of
  burst) is still familiar after the history has moved on, and pages once rather than every week;
- records: each feature's lowest and highest value since the entity was first seen. A step beyond
  them by more than RECORD_TOLERANCE of their span is a record, however usual the step's distance
  is (Numenta's detector has the same rule with the same 5%); it counts once the entity has been
  seen for the warm-up, when the likelihood starts speaking too.

Causal by construction: a step is judged only against steps before it. An entity left out of a
cycle (a gap in its data) keeps its history; one unseen for `forget_after` loses it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from aura_exporter.config.model import NOVELTY_MIN_HISTORY, embedding_span
from aura_exporter.windows import ABSOLUTE_SCALE_FLOOR, EntityKey, Windows

SHORT = 5  # steps averaged: one odd step is less than five
SPAN_FLOOR = 1e-3  # of the range of the values so far: a smaller spread of the novelty is flatness, not precision
BOUND = 20.0  # sigmas an average may move the mean and spread by, once warm: a spike still counts, a little
REMEMBER_SIGMAS = 3.0  # a point this much newer than usual is remembered after the history forgets it
RECORD_TOLERANCE = 0.05  # of the span of the values seen so far: a smaller excess is no record


@dataclass(frozen=True)
class Novelty:
    """What the tracker says of each entity's steps new since the last cycle."""

    zscore: np.ndarray  # [E, F] the largest novelty z-score among them (0: none)
    record: np.ndarray  # [E, F] the largest excess beyond the values seen before, as a share of their
    #                     span: positive above the highest, negative below the lowest, 0 for none


@dataclass
class _History:
    """One entity's cloud of past points at one scale and the running distribution of its novelty."""

    capacity: int
    features: int
    dimension: int
    overlap: int  # the newest points that share steps with the next one: not yet its neighbours
    points: np.ndarray = field(init=False)  # [capacity, F, m], a ring
    stored: int = 0
    head: int = 0
    remembered: np.ndarray = field(init=False)  # [capacity, F, m], a ring of the points that surprised
    surprises: int = 0
    surprise_head: int = 0
    waiting: deque = field(default_factory=deque)  # (point, its z-score) not yet stored
    memory: int = 1  # steps of memory of the averages' distribution
    warm_up: int = 1  # averages needed before their spread means anything
    recent: deque = field(default_factory=lambda: deque(maxlen=SHORT))
    averages: int = 0
    mean: np.ndarray = field(init=False)
    variance: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.points = np.zeros((self.capacity, self.features, self.dimension), dtype=np.float32)
        self.remembered = np.zeros_like(self.points)
        self.mean = np.zeros(self.features)
        self.variance = np.zeros(self.features)

    def judge(self, point: np.ndarray, value_range: np.ndarray) -> np.ndarray:
        """[F] z-score of the novelty of `point` [F, m] (0 while warming up), `value_range` [F] the range of
        the entity's values so far; then the point joins the history."""
        zscore = np.zeros(self.features)
        if self.stored >= NOVELTY_MIN_HISTORY:
            known = np.concatenate([self.points[: self.stored], self.remembered[: self.surprises]])
            self.recent.append(np.abs(known - point).max(axis=2).min(axis=0))
            if len(self.recent) == SHORT:
                zscore = self._likelihood(np.mean(self.recent, axis=0), value_range)
        self.waiting.append((point.astype(np.float32), zscore))
        if len(self.waiting) > self.overlap:
            self._store(*self.waiting.popleft())
        return zscore

    def _likelihood(self, average: np.ndarray, value_range: np.ndarray) -> np.ndarray:
        # a flat past must not make noise infinite, nor a series that is mostly flat make each burst a new one
        floor = np.maximum(ABSOLUTE_SCALE_FLOOR, np.maximum(1e-3 * np.abs(self.mean), SPAN_FLOOR * value_range))
        spread = np.maximum(np.sqrt(self.variance), floor)
        delta = average - self.mean
        zscore = delta / spread if self.averages >= self.warm_up else np.zeros(self.features)
        self.averages += 1
        weight = max(1.0 / self.memory, 1.0 / self.averages)
        if self.averages > self.warm_up:  # one huge event must not widen the spread, and deafen the entity, for a month
            delta = np.clip(delta, -BOUND * spread, BOUND * spread)
        self.mean = self.mean + weight * delta
        self.variance = (1.0 - weight) * (self.variance + weight * delta * delta)
        return zscore

    def _store(self, point: np.ndarray, zscore: np.ndarray) -> None:
        self.points[self.head] = point
        self.head = (self.head + 1) % self.capacity
        self.stored = min(self.stored + 1, self.capacity)
        if (zscore >= REMEMBER_SIGMAS).any():  # its other features' coordinates are past states too: kept whole
            self.remembered[self.surprise_head] = point
            self.surprise_head = (self.surprise_head + 1) % self.capacity
            self.surprises = min(self.surprises + 1, self.capacity)


@dataclass
class _Entity:
    scales: list[_History]
    low: np.ndarray  # [F] each feature's lowest value so far
    high: np.ndarray  # [F] and its highest
    steps: int = 0  # complete steps seen
    last_time: float = -np.inf  # the last step with all its samples, judged at every scale it fits
    last_seen: float = -np.inf  # the end of the last window the entity was in


@dataclass
class NoveltyTracker:
    history: int  # points kept per entity and scale
    dimension: int  # Takens embedding
    delay: int
    forget_after: float
    memory: int  # steps: topology.novelty_memory
    warm_up: int  # steps: topology.novelty_warm_up
    scales: tuple[int, ...] = (1,)  # steps averaged per coordinate
    entities: dict[EntityKey, _Entity] = field(default_factory=dict)

    def update(self, windows: Windows) -> Novelty:
        """What is new in each entity's steps since the last cycle."""
        zscore = np.zeros((len(windows.entities), windows.values.shape[2]))
        record = np.zeros_like(zscore)
        now = float(windows.timestamps[-1])
        for i, key in enumerate(windows.entities):
            entity = self.entities.get(key) or self.entities.setdefault(key, self._new_entity(windows.values.shape[2]))
            entity.last_seen = now
            new = np.flatnonzero(windows.timestamps > entity.last_time)
            zscore[i] = self._judge(entity, windows.values[i], new)
            complete = new[~np.isnan(windows.values[i, new]).any(axis=1)]
            if len(complete):  # steps after the last complete one are judged again once their samples land
                record[i] = self._records(entity, windows.values[i, complete])
                entity.last_time = float(windows.timestamps[complete[-1]])
        for gone in [key for key, entity in self.entities.items() if now - entity.last_seen > self.forget_after]:
            del self.entities[gone]
        return Novelty(zscore, record)

    def _new_entity(self, features: int) -> _Entity:
        span = embedding_span(self.dimension, self.delay)
        return _Entity([_History(self.history, features, self.dimension, span * scale, memory=self.memory,
                                 warm_up=self.warm_up) for scale in self.scales],
                       low=np.full(features, np.inf), high=np.full(features, -np.inf))

    def _records(self, entity: _Entity, values: np.ndarray) -> np.ndarray:
        """[F] the largest record among these [n, F] complete steps (as a share of the span before it), and
        the entity's lowest and highest values moved past them."""
        high = np.maximum.accumulate(np.vstack([entity.high, values]), axis=0)  # [n + 1, F]: before each, then after
        low = np.minimum.accumulate(np.vstack([entity.low, values]), axis=0)
        entity.high, entity.low = high[-1], low[-1]
        high, low = high[:-1], low[:-1]
        warm = (entity.steps + np.arange(len(values)) >= self.warm_up)[:, None]
        entity.steps += len(values)
        with np.errstate(invalid="ignore", divide="ignore"):
            span = high - low
            above = (values - high) / span
            below = (values - low) / span
        usable = warm & (span > 0)
        excess = np.where(usable & (above > RECORD_TOLERANCE), above, np.where(usable & (below < -RECORD_TOLERANCE),
                                                                                 below, 0.0))
        return excess[np.argmax(np.abs(excess), axis=0), np.arange(values.shape[1])]

    def _judge(self, entity: _Entity, values: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """[F] the largest z-score of these steps of one entity's [T, F] window over its scales."""
        found = np.zeros(values.shape[1])
        span = embedding_span(self.dimension, self.delay)
        value_range = np.maximum(entity.high - entity.low, 0.0)  # 0 before any value
        for scale, history in zip(self.scales, entity.scales, strict=True):
            judged = steps[steps >= span * scale - 1]  # steps whose point fits in the window
            if not len(judged):
                continue
            first = judged[0] - span * scale + 1  # only the means those points use (usually one step's)
            means = np.lib.stride_tricks.sliding_window_view(values[first:], scale, axis=0).mean(axis=2)
            for end in judged - first - scale + 1:  # the index of the mean ending at the step
                point = means[end - (span - 1) * scale: end + 1: self.delay * scale].T  # [F, m]
                if not np.isnan(point).any():
                    found = np.maximum(found, history.judge(point, value_range))
        return found
