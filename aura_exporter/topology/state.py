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
        usuals = [self.entities.get(key) or self.entities.setdefault(key, _new_usual(shape[1], now))
                  for key in windows.entities]
        for usual in usuals:
            usual.last_seen = now
        if usuals:
            last_times = np.array([usual.last_time for usual in usuals])
            new = _new_steps(windows.timestamps, last_times)
            judged = np.flatnonzero(new.any(axis=1))
            if judged.size:  # all entities at once: a loop over 10,000 of them took half a second a cycle
                together = _stacked([usuals[i] for i in judged])
                elapsed = np.where(np.isfinite(last_times[judged]), now - last_times[judged], 0.0)
                zscore[judged], units[judged] = _judge_and_learn(together, elapsed,
                                                                 _mean_state(windows.values[judged], new[judged]))
                _unstack(together, [usuals[i] for i in judged], now)
        warm = np.array([usual.cycles >= WARM_UP for usual in usuals], dtype=bool).reshape(shape)
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


def _new_steps(timestamps: np.ndarray, last_times: np.ndarray) -> np.ndarray:
    """[E, T] the steps each entity has not been judged on: those after its last cycle; the window's recent
    eighth (at least 4 steps) for an entity seen for the first time."""
    recent = np.arange(len(timestamps)) >= len(timestamps) - max(4, len(timestamps) // 8)
    return np.where(np.isfinite(last_times)[:, None], timestamps[None, :] > last_times[:, None], recent[None, :])


def _mean_state(steps: np.ndarray, new: np.ndarray) -> np.ndarray:
    """[E, F] the mean of each entity's `new` steps of [E, T, F], NaN where a feature has no sample among them."""
    present = np.isfinite(steps) & new[:, :, None]
    counts = present.sum(axis=1)
    total = np.zeros(counts.shape)
    for step in range(steps.shape[1]):  # in time order, as each entity's own sum was: the same bits
        total += np.where(present[:, step], steps[:, step], 0.0)
    return np.where(counts > 0, total / np.maximum(counts, 1), np.nan)


def _stacked(usuals: list[_Usual]) -> _Usual:
    """Entities' usual states as one, each per-feature field an array with a row per entity (their times stay
    with the caller)."""
    return _Usual(**{name: np.array([getattr(u, name) for u in usuals]) for name in PER_FEATURE},
                  last_time=np.nan, last_seen=np.nan)


def _unstack(together: _Usual, usuals: list[_Usual], now: float) -> None:
    """Each entity's row back into its own usual state (views of the stacked arrays, not copies), learned `now`."""
    for row, usual in enumerate(usuals):
        for name in PER_FEATURE:
            setattr(usual, name, getattr(together, name)[row])
        usual.last_time = now


def _new_usual(features: int, now: float) -> _Usual:
    return _Usual(mean=np.zeros(features), variance=np.zeros(features), low=np.full(features, np.inf),
                  high=np.full(features, -np.inf), cycles=np.zeros(features, dtype=np.int64), last_time=-np.inf,
                  last_seen=now)


def _judge_and_learn(usual: _Usual, elapsed: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """([E, F] z-scores, [E, F] offsets in units) of `state` against `usual` (entities stacked, _stacked),
    which then learns it, [E] seconds after it last learned."""
    present = np.isfinite(state)
    observed = np.where(present, state, usual.mean)
    span = np.where(np.isfinite(usual.high - usual.low), usual.high - usual.low, 0.0)
    spread = np.maximum(np.sqrt(usual.variance), np.maximum(SPAN_FLOOR * span, ABSOLUTE_SCALE_FLOOR))
    delta = observed - usual.mean
    warm = present & (usual.cycles >= WARM_UP)
    zscore = np.where(warm, delta / spread, 0.0)
    units = np.where(warm, delta, 0.0)
    # Per entity with Python's pow: numpy's differs in the last bit, and the usual state would drift from
    # what earlier versions learned and saved.
    decay = 1.0 - np.array([0.5 ** (seconds / HALF_LIFE) for seconds in elapsed.tolist()])[:, None]
    weight = np.where(present, np.maximum(decay, 1.0 / (usual.cycles + 1)), 0.0)
    delta = np.where(warm, np.clip(delta, -BOUND * spread, BOUND * spread), delta)
    usual.mean = usual.mean + weight * delta
    usual.variance = (1.0 - weight) * (usual.variance + weight * delta * delta)
    usual.low = np.where(present, np.minimum(usual.low, observed), usual.low)
    usual.high = np.where(present, np.maximum(usual.high, observed), usual.high)
    usual.cycles = usual.cycles + present
    return zscore, units
