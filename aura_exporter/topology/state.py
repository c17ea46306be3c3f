"""How far each entity's recent state is from its own usual state, feature by feature (evidence `state`).

The `level` evidence compares a window with the entity's baseline window, in that window's robust
spread: a feature flat for an hour has a spread near 0, and its first wobble is a thousand sigmas.
This tracker instead learns, per entity and feature, the usual value of its recent state (the mean of
the steps new since the entity's last cycle, so each step is judged once; the newest eighth of the
window the first time) and how far that wanders: an exponentially weighted mean and spread with a
memory halving every HALF_LIFE, updated once a cycle. Each cycle's recent state is judged against
them before it joins them, as a z-score.

- Nothing is said before WARM_UP cycles (about 17 hours of 5-minute cycles): until then the mean and
  spread are those of every state so far.
- The spread counts as at least SPAN_FLOOR of the range the recent state has covered so far: a
  feature idle most of the time would otherwise make each burst after a quiet spell a thousand sigmas.
- Once warm, a state moves the mean and spread as if it were at most BOUND spreads away: an outage
  must not widen the spread so much that nothing short of another outage stands out for weeks.

The council's role agents weigh the z-scores of their features together (council/agents.py), so many
features are not many chances to page. Causal by construction; an entity unseen for `forget_after`
starts afresh. What it learned is saved with the baselines (`state`, `restore`): a restart does not
silence it for another WARM_UP cycles.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from aura_exporter.storage import keys_array, read_keys
from aura_exporter.windows import ABSOLUTE_SCALE_FLOOR, EntityKey, Windows

HALF_LIFE = 7 * 86400.0  # seconds: a week, so a weekly rhythm is part of the usual state
WARM_UP = 200  # cycles before the spread means anything
SPAN_FLOOR = 0.03  # of the range of recent states so far: a smaller spread is idleness, not precision
BOUND = 20.0  # spreads a state may move the mean and spread by, once warm
STATE_PREFIX = "state_"  # its arrays in the analysis' state file (saved with the baselines)
STATE_VERSION = 1
PER_FEATURE = ("mean", "variance", "low", "high", "cycles")


@dataclass(frozen=True)
class StateDeviation:
    zscore: np.ndarray  # [E, F] signed; 0 while warming up or without a recent state
    units: np.ndarray  # [E, F] the same deviation in the feature's own units
    warm: np.ndarray  # [E, F] bool: the usual state is learned (WARM_UP cycles seen)


@dataclass
class _Usual:
    mean: np.ndarray  # [F]
    variance: np.ndarray  # [F]
    low: np.ndarray  # [F] lowest recent state so far
    high: np.ndarray  # [F] highest
    cycles: np.ndarray  # [F] states learned from
    last_time: float
    last_seen: float


@dataclass
class StateTracker:
    forget_after: float
    entities: dict[EntityKey, _Usual] = field(default_factory=dict)

    def update(self, windows: Windows) -> StateDeviation:
        now = float(windows.timestamps[-1]) if len(windows.timestamps) else 0.0
        shape = (len(windows.entities), windows.values.shape[2])
        zscore = np.zeros(shape)
        units = np.zeros(shape)
        warm = np.zeros(shape, dtype=bool)
        for i, key in enumerate(windows.entities):
            usual = self.entities.get(key) or self.entities.setdefault(key, _new_usual(shape[1], now))
            usual.last_seen = now
            new = windows.timestamps > usual.last_time
            if new.any():
                if not np.isfinite(usual.last_time):  # first sight: the window's recent eighth
                    new = np.arange(len(new)) >= len(new) - max(4, len(new) // 8)
                zscore[i], units[i] = _judge_and_learn(usual, _mean_state(windows.values[i, new]), now)
            warm[i] = usual.cycles >= WARM_UP
        for gone in [key for key, usual in self.entities.items() if now - usual.last_seen > self.forget_after]:
            del self.entities[gone]
        return StateDeviation(zscore, units, warm)

    def state(self) -> dict[str, np.ndarray]:
        """Every entity's usual state as arrays for the state file."""
        entities = list(self.entities.items())
        arrays = {"version": np.array(STATE_VERSION), "keys": keys_array(key for key, _ in entities),
                  "last_time": np.array([u.last_time for _, u in entities], dtype=np.float64),
                  "last_seen": np.array([u.last_seen for _, u in entities], dtype=np.float64)}
        for name in PER_FEATURE:
            arrays[name] = np.array([getattr(u, name) for _, u in entities]).reshape(len(entities), -1)
        return {STATE_PREFIX + name: value for name, value in arrays.items()}

    def restore(self, arrays: dict[str, np.ndarray], features: int) -> bool:
        """Take back what `state` wrote; False, leaving nothing, when the arrays are missing or malformed."""
        try:
            get = {name.removeprefix(STATE_PREFIX): value for name, value in arrays.items()
                   if name.startswith(STATE_PREFIX)}
            if int(get["version"]) != STATE_VERSION:
                return False
            keys = read_keys(get["keys"])
            shapes = {get[name].shape for name in PER_FEATURE} | {get["last_time"].shape + (features,),
                                                                   get["last_seen"].shape + (features,)}
            if shapes != {(len(keys), features)}:
                return False
        except (KeyError, ValueError, TypeError):
            return False
        self.entities = {key: _Usual(**{name: get[name][i].astype(np.int64 if name == "cycles" else np.float64)
                                        for name in PER_FEATURE},
                                     last_time=float(get["last_time"][i]), last_seen=float(get["last_seen"][i]))
                         for i, key in enumerate(keys)}
        return True


def _mean_state(steps: np.ndarray) -> np.ndarray:
    """[F] the mean of [n, F] steps, NaN where a feature has no sample among them."""
    present = np.isfinite(steps)
    counts = present.sum(axis=0)
    return np.where(counts > 0, np.where(present, steps, 0.0).sum(axis=0) / np.maximum(counts, 1), np.nan)


def _new_usual(features: int, now: float) -> _Usual:
    return _Usual(mean=np.zeros(features), variance=np.zeros(features), low=np.full(features, np.inf),
                  high=np.full(features, -np.inf), cycles=np.zeros(features, dtype=np.int64), last_time=-np.inf,
                  last_seen=now)


def _judge_and_learn(usual: _Usual, state: np.ndarray, now: float) -> tuple[np.ndarray, np.ndarray]:
    """([F] z-score, [F] offset in units) of `state` against `usual`, which then learns it."""
    present = np.isfinite(state)
    observed = np.where(present, state, usual.mean)
    span = np.where(np.isfinite(usual.high - usual.low), usual.high - usual.low, 0.0)
    spread = np.maximum(np.sqrt(usual.variance), np.maximum(SPAN_FLOOR * span, ABSOLUTE_SCALE_FLOOR))
    delta = observed - usual.mean
    warm = present & (usual.cycles >= WARM_UP)
    zscore = np.where(warm, delta / spread, 0.0)
    units = np.where(warm, delta, 0.0)
    elapsed = now - usual.last_time if np.isfinite(usual.last_time) else 0.0
    decay = 1.0 - 0.5 ** (elapsed / HALF_LIFE)
    weight = np.where(present, np.maximum(decay, 1.0 / (usual.cycles + 1)), 0.0)
    delta = np.where(warm, np.clip(delta, -BOUND * spread, BOUND * spread), delta)
    usual.mean = usual.mean + weight * delta
    usual.variance = (1.0 - weight) * (usual.variance + weight * delta * delta)
    usual.low = np.where(present, np.minimum(usual.low, observed), usual.low)
    usual.high = np.where(present, np.maximum(usual.high, observed), usual.high)
    usual.cycles = usual.cycles + present
    usual.last_time = now
    return zscore, units
