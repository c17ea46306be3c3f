"""How new each entity's latest state is, judged against its own history (`topology.novelty_history`).

Each step's Takens point (the value and its `embedding_dimension − 1` predecessors) is compared with
the entity's last `novelty_history` points: its distance to the nearest of them (Chebyshev) is the
length of the H0 bar it opens when it joins that cloud in the Vietoris–Rips filtration, zero for a
state the series has been in before, large for one it has never visited. The points just before it
(those that share samples with it) are left out, so a point is never its own neighbour.

That distance is in the feature's units and its usual size differs from series to series, so it is
turned into a tail probability of its own past, Numenta's "anomaly likelihood" (Ahmad et al. 2017),
which NAB's best detectors use: the mean of the last SHORT novelties is compared with the mean and
spread of those means over about LONG steps (exponentially weighted: constant memory), and reported
as a z-score in sigmas, the council's unit. Nothing is reported before WARM_UP means exist.

Causal by construction: a step is judged only against steps before it. An entity left out of a
cycle (a gap in its data) keeps its history; one unseen for `forget_after` loses it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from aura_exporter.config.model import NOVELTY_MIN_HISTORY
from aura_exporter.windows import ABSOLUTE_SCALE_FLOOR, EntityKey, Windows

SHORT = 5  # steps averaged: one odd step is less than five
LONG = 8640  # steps of memory of the averages' distribution (a month of 5-minute steps)
WARM_UP = 300  # averages needed before the spread means anything


@dataclass
class _History:
    """One entity's cloud of past points and the running distribution of its novelty."""

    capacity: int
    features: int
    dimension: int
    points: np.ndarray = field(init=False)  # [capacity, F, m], a ring
    stored: int = 0
    head: int = 0
    waiting: deque = field(default_factory=deque)  # the newest points, not yet neighbours (they overlap)
    recent: deque = field(default_factory=lambda: deque(maxlen=SHORT))
    averages: int = 0
    mean: np.ndarray = field(init=False)
    variance: np.ndarray = field(init=False)
    last_time: float = -np.inf  # the last step judged
    last_seen: float = -np.inf  # the end of the last window the entity was in

    def __post_init__(self) -> None:
        self.points = np.zeros((self.capacity, self.features, self.dimension), dtype=np.float32)
        self.mean = np.zeros(self.features)
        self.variance = np.zeros(self.features)

    def judge(self, point: np.ndarray) -> np.ndarray:
        """[F] z-score of the novelty of `point` [F, m] (0 while warming up); then it joins the history."""
        zscore = np.zeros(self.features)
        if self.stored >= NOVELTY_MIN_HISTORY:
            distance = np.abs(self.points[: self.stored] - point).max(axis=2).min(axis=0)
            self.recent.append(distance)
            if len(self.recent) == SHORT:
                zscore = self._likelihood(np.mean(self.recent, axis=0))
        self.waiting.append(point.astype(np.float32))
        if len(self.waiting) > self.dimension:
            self._store(self.waiting.popleft())
        return zscore

    def _likelihood(self, average: np.ndarray) -> np.ndarray:
        spread = np.sqrt(self.variance)
        floor = np.maximum(ABSOLUTE_SCALE_FLOOR, 1e-3 * np.abs(self.mean))  # a flat past must not make noise infinite
        zscore = (average - self.mean) / np.maximum(spread, floor)
        if self.averages < WARM_UP:
            zscore = np.zeros(self.features)
        self.averages += 1
        weight = max(1.0 / LONG, 1.0 / self.averages)
        delta = average - self.mean
        self.mean = self.mean + weight * delta
        self.variance = (1.0 - weight) * (self.variance + weight * delta * delta)
        return zscore

    def _store(self, point: np.ndarray) -> None:
        self.points[self.head] = point
        self.head = (self.head + 1) % self.capacity
        self.stored = min(self.stored + 1, self.capacity)


@dataclass
class NoveltyTracker:
    history: int  # points kept per entity
    dimension: int  # Takens embedding
    delay: int
    forget_after: float
    entities: dict[EntityKey, _History] = field(default_factory=dict)

    def update(self, windows: Windows) -> np.ndarray:
        """[E, F] the largest novelty z-score among each entity's steps new since the last cycle (0: none)."""
        values = windows.values
        span = (self.dimension - 1) * self.delay
        result = np.zeros((len(windows.entities), values.shape[2]))
        now = float(windows.timestamps[-1])
        for i, key in enumerate(windows.entities):
            history = self.entities.get(key) or self.entities.setdefault(
                key, _History(self.history, values.shape[2], self.dimension))
            history.last_seen = now
            for step in np.flatnonzero(windows.timestamps > history.last_time):
                if step < span:
                    continue
                point = values[i, step - span: step + 1: self.delay].T  # [F, m]
                if np.isnan(point).any():
                    continue
                result[i] = np.maximum(result[i], history.judge(point))
                history.last_time = float(windows.timestamps[step])
        for gone in [key for key, history in self.entities.items() if now - history.last_seen > self.forget_after]:
            del self.entities[gone]
        return result
