"""Each entity's baseline: its robust scale, its reference diagrams and its own drift variability.

Lifecycle (documented in the README, 'Baselines'):
- learned: the first complete window of an entity gives its scale (per-feature median and MAD) and,
  one cycle later, in that scale, its reference diagrams;
- used: every cycle, drift is the Wasserstein distance of the window's diagrams from the reference,
  and the z-score compares the summed drift with the entity's own recent drift (median and MAD).
  Drift joins that history only once the window no longer overlaps the reference window, and the
  z-score is 0 until `min_history` such samples exist (the warm-up);
- protected: a window whose z-score reaches `learn_below_zscore` never feeds the history and never
  becomes the reference;
- refreshed: every `refresh_interval`, when the entity looks normal, scale and reference are learned
  again from the current window and the drift history starts afresh;
- forgotten: entities unseen for `forget_after` lose their baseline.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from aura_exporter.config import BaselineConfig
from aura_exporter.topology.persistence import Diagrams
from aura_exporter.topology.wasserstein import wasserstein, wasserstein_h0
from aura_exporter.windows import MAD_TO_SIGMA, robust_scale

SCALED_CLIP = 1000.0
# Successive drift samples overlap (the window moves one interval at a time), so their MAD
# understates how far a healthy entity's drift wanders: the spread is at least this share of the
# median drift, and a z-score of 4 means drift at three times its usual level.
DRIFT_RELATIVE_FLOOR = 0.5
# ...and at least a tenth of a baseline unit: an entity whose drift has been ~0 (a flat series)
# would otherwise make any wobble a z-score in the millions.
DRIFT_ABSOLUTE_FLOOR = 0.1


@dataclass
class EntityBaseline:
    center: np.ndarray
    scale: np.ndarray
    learned_at: float
    last_seen: float
    history: deque
    reference: dict[int, np.ndarray] | None = None
    relearn: bool = False  # learn scale and reference again from the next window


@dataclass(frozen=True)
class Drift:
    per_dim: np.ndarray  # [E, dims]
    zscore: np.ndarray  # [E]


@dataclass
class BaselineStore:
    config: BaselineConfig
    dims: tuple[int, ...]
    window: float  # seconds; drift of windows overlapping the reference is not yet typical
    entities: dict[tuple, EntityBaseline] = field(default_factory=dict)

    def scale(self, keys: tuple[tuple, ...], values: np.ndarray, now: float) -> np.ndarray:
        """[E, T, F] windows in each entity's baseline units; new entities learn their scale here."""
        if not keys:
            return values
        center, scale = robust_scale(values)
        for i, key in enumerate(keys):
            known = self.entities.get(key)
            if known is None or known.relearn:
                self.entities[key] = EntityBaseline(center[i], scale[i], now, now, deque(maxlen=self.config.history))
            else:
                known.last_seen = now
        centers, scales = self.units(keys)
        return np.clip((values - centers[:, None, :]) / scales[:, None, :], -SCALED_CLIP, SCALED_CLIP)

    def units(self, keys: tuple[tuple, ...]) -> tuple[np.ndarray, np.ndarray]:
        """[E, F] baseline centers and scales (one baseline unit, in the features' own units)."""
        return (np.stack([self.entities[k].center for k in keys]),
                np.stack([self.entities[k].scale for k in keys]))

    def drift(self, keys: tuple[tuple, ...], diagrams: Diagrams, now: float) -> Drift:
        """Drift from each entity's reference; then learn from the windows that look normal."""
        references = [self._reference_or_learn(key, diagrams, i) for i, key in enumerate(keys)]
        per_dim = np.zeros((len(keys), len(self.dims)))
        for column, dim in enumerate(self.dims):
            current = diagrams.of_dim(dim)
            if dim == 0:
                per_dim[:, column] = wasserstein_h0(current[..., 1], _padded_deaths(references, current.shape[1]))
            else:
                per_dim[:, column] = [wasserstein(current[i], ref[dim]) for i, ref in enumerate(references)]
        totals = per_dim.sum(axis=1)
        zscore = np.array([self._zscore(self.entities[k], t) for k, t in zip(keys, totals, strict=True)])
        for i, key in enumerate(keys):
            self._learn(key, totals[i], zscore[i], now)
        self._forget(now)
        return Drift(per_dim=per_dim, zscore=zscore)

    def _reference_or_learn(self, key: tuple, diagrams: Diagrams, index: int) -> dict[int, np.ndarray]:
        entity = self.entities[key]
        if entity.reference is None:
            entity.reference = diagrams.entity(index)
        return entity.reference

    def _zscore(self, entity: EntityBaseline, total: float) -> float:
        if len(entity.history) < self.config.min_history:
            return 0.0
        history = np.fromiter(entity.history, dtype=np.float64)
        median = np.median(history)
        spread = MAD_TO_SIGMA * np.median(np.abs(history - median))
        spread = max(spread, DRIFT_RELATIVE_FLOOR * abs(median), DRIFT_ABSOLUTE_FLOOR)
        return float((total - median) / spread)

    def _learn(self, key: tuple, total: float, zscore: float, now: float) -> None:
        entity = self.entities[key]
        if abs(zscore) >= self.config.learn_below_zscore:
            return
        if now - entity.learned_at >= self.window:
            entity.history.append(total)
        if now - entity.learned_at >= self.config.refresh_interval:
            entity.relearn = True

    def _forget(self, now: float) -> None:
        stale = [k for k, e in self.entities.items() if now - e.last_seen > self.config.forget_after]
        for key in stale:
            del self.entities[key]


def _padded_deaths(references: list[dict[int, np.ndarray]], width: int) -> np.ndarray:
    """Reference H0 deaths as an [E, max(n)] array padded with zeros (free to match the diagonal)."""
    width = max([width] + [len(r[0]) for r in references])
    out = np.zeros((len(references), width))
    for i, ref in enumerate(references):
        out[i, : len(ref[0])] = ref[0][:, 1]
    return out
