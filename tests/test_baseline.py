"""Baselines: warm-up, z-scores against the entity's own variability, protection and refresh."""

from __future__ import annotations

import numpy as np

from aura_exporter.config import BaselineConfig
from aura_exporter.topology.baseline import BaselineStore
from aura_exporter.topology.persistence import PersistenceEngine
from aura_exporter.windows import robust_scale

ENGINE = PersistenceEngine((0, 1), workers=1)
KEYS = (("a",), ("b",))


def cycle(store: BaselineStore, windows: np.ndarray, now: float):
    scaled = store.scale(KEYS, windows, now)
    return store.drift(KEYS, ENGINE.compute(scaled), now)


def test_robust_scale_floors_flat_features():
    values = np.zeros((1, 20, 2))
    values[0, :, 1] = 100.0
    center, scale = robust_scale(values)
    assert center.tolist() == [[0, 100]]
    assert scale[0, 0] > 0 and scale[0, 1] == 5.0  # 5% of the level when nothing moves


def test_zscore_warms_up_then_flags_a_regime_change():
    rng = np.random.default_rng(0)
    store = BaselineStore(BaselineConfig(min_history=5, history=50), (0, 1), window=60)
    zscores = []
    for step in range(20):
        windows = rng.normal(size=(2, 40, 3))
        zscores.append(cycle(store, windows, now=step * 15.0).zscore)
    assert all(z[0] == 0 for z in zscores[:9])  # warm-up: 60 s of overlap, then 5 samples
    assert np.all(np.abs(np.array(zscores[-5:])) < 4)
    broken = rng.normal(size=(2, 40, 3))
    broken[0, 20:, 0] += 40.0  # entity a splits into two regimes
    drift = cycle(store, broken, now=20 * 15.0)
    assert drift.zscore[0] > 5 and abs(drift.zscore[1]) < 4
    history_before = len(store.entities[("a",)].history)
    cycle(store, broken, now=21 * 15.0)
    assert len(store.entities[("a",)].history) == history_before  # anomalies never feed the baseline


def test_refresh_relearns_scale_and_reference():
    rng = np.random.default_rng(1)
    store = BaselineStore(BaselineConfig(refresh_interval=100.0, min_history=2), (0, 1), window=10)
    cycle(store, rng.normal(size=(2, 30, 3)), now=0.0)
    first_scale = store.entities[("a",)].scale.copy()
    cycle(store, rng.normal(size=(2, 30, 3)), now=150.0)  # refresh due: relearn on the next window
    assert store.entities[("a",)].relearn
    cycle(store, 10 * rng.normal(size=(2, 30, 3)), now=165.0)
    assert store.entities[("a",)].learned_at == 165.0
    assert np.all(store.entities[("a",)].scale > 3 * first_scale)


def test_entities_unseen_for_long_are_forgotten():
    store = BaselineStore(BaselineConfig(forget_after=60.0), (0,), window=10)
    engine = PersistenceEngine((0,), workers=1)
    windows = np.random.default_rng(2).normal(size=(2, 20, 2))
    store.drift(KEYS, engine.compute(store.scale(KEYS, windows, 0.0)), 0.0)
    only_a = (("a",),)
    store.drift(only_a, engine.compute(store.scale(only_a, windows[:1], 120.0)), 120.0)
    assert set(store.entities) == {("a",)}
