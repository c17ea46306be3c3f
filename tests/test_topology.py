"""Topology on shapes whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster, linkage

from aura_exporter.topology.fleet import fleet_topology, single_linkage
from aura_exporter.topology.persistence import PersistenceEngine
from aura_exporter.topology.summaries import (
    betti_numbers,
    critical_features,
    noise_thresholds,
    persistence_entropy,
)
from aura_exporter.topology.wasserstein import wasserstein, wasserstein_h0

rng = np.random.default_rng(42)


def circle(points: int = 60, noise: float = 0.02) -> np.ndarray:
    angle = np.linspace(0, 2 * np.pi, points, endpoint=False)
    return np.c_[np.cos(angle), np.sin(angle)] + rng.normal(scale=noise, size=(points, 2))


def two_clusters(points: int = 60) -> np.ndarray:
    half = points // 2
    return np.r_[rng.normal(scale=0.05, size=(half, 2)), rng.normal(scale=0.05, size=(half, 2)) + [10, 0]]


def summaries(clouds: np.ndarray, min_persistence: float = 0.2):
    diagrams = PersistenceEngine((0, 1), workers=1).compute(clouds)
    thresholds = noise_thresholds(diagrams, noise_factor=3.0, min_persistence=min_persistence)
    return diagrams, thresholds, betti_numbers(diagrams, thresholds)


def test_circle_has_one_long_loop():
    _, _, betti = summaries(circle()[None])
    assert betti[0].tolist() == [1, 1]


def test_two_far_clusters_have_two_components():
    _, _, betti = summaries(two_clusters()[None])
    assert betti[0].tolist() == [2, 0]


def test_batch_of_entities_is_analysed_at_once():
    clouds = np.stack([circle(), two_clusters(), rng.normal(scale=0.01, size=(60, 2))])
    diagrams, thresholds, betti = summaries(clouds)
    assert betti.tolist() == [[1, 1], [2, 0], [1, 0]]
    critical = critical_features(diagrams, thresholds)
    assert critical[0, 0, 0] == 1  # the circle's most persistent significant feature is its loop
    assert critical[1, 0, 0] == 0 and np.isnan(critical[1, 1]).all()  # one split, nothing else
    assert np.isnan(critical[2]).all()  # pure noise: nothing significant


def test_entropy_of_equal_bars_is_log2_of_their_count():
    diagrams = PersistenceEngine((0,), workers=1).compute(np.arange(0, 5.0)[None, :, None])  # 4 bars of 1
    assert persistence_entropy(diagrams)[0, 0] == pytest.approx(2.0)


def test_identical_windows_have_zero_drift():
    from aura_exporter.config import BaselineConfig
    from aura_exporter.topology.baseline import BaselineStore

    store = BaselineStore(BaselineConfig(), (0, 1), window=60)
    engine = PersistenceEngine((0, 1), workers=1)
    windows = rng.normal(size=(3, 40, 4))
    keys = (("a",), ("b",), ("c",))
    for now in (0.0, 15.0, 30.0):
        scaled = store.scale(keys, windows, now)
        drift = store.drift(keys, engine.compute(scaled), now)
        assert np.all(drift.per_dim == 0)


def test_wasserstein_by_hand():
    # (0,2) against (0,4): moving the point costs |4-2| = 2, sending both to the diagonal 1 + 2 = 3.
    assert wasserstein(np.array([[0, 2.0]]), np.array([[0, 4.0]])) == pytest.approx(2.0)
    # (1,3) against nothing: its L∞ distance to the diagonal, (3-1)/2.
    assert wasserstein(np.array([[1, 3.0]]), np.zeros((0, 2))) == pytest.approx(1.0)
    # (0,1) and (0,10) against (0,9): match 10↔9 (1) and send (0,1) to the diagonal (0.5).
    assert wasserstein(np.array([[0, 1.0], [0, 10.0]]), np.array([[0, 9.0]])) == pytest.approx(1.5)
    assert wasserstein_h0(np.array([[1.0, 10.0]]), np.array([[9.0, 0.0]]))[0] == pytest.approx(1.5)


def test_h0_dynamic_program_equals_the_hungarian_method():
    for _ in range(100):
        n, m = rng.integers(0, 12, size=2)
        a, b = rng.gamma(2, 1, n), rng.gamma(2, 1, m)
        exact = wasserstein(np.c_[np.zeros(n), a], np.c_[np.zeros(m), b])
        padded_a, padded_b = np.r_[a, np.zeros(3)], np.r_[b, np.zeros(5)]
        assert wasserstein_h0(padded_a[None], padded_b[None])[0] == pytest.approx(exact, abs=1e-9)


def augmented_wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook form: Hungarian method on the (n + m) × (n + m) matrix with diagonal slots."""
    from scipy.optimize import linear_sum_assignment

    n, m = len(a), len(b)
    cost = np.zeros((n + m, n + m))
    cost[:n, :m] = np.maximum(np.abs(a[:, None, 0] - b[None, :, 0]), np.abs(a[:, None, 1] - b[None, :, 1]))
    cost[:n, m:] = ((a[:, 1] - a[:, 0]) / 2)[:, None]
    cost[n:, :m] = ((b[:, 1] - b[:, 0]) / 2)[None, :]
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].sum())


def test_reduced_assignment_equals_the_textbook_augmented_one():
    def diagram(k):
        birth = rng.uniform(0, 5, k)
        return np.c_[birth, birth + rng.exponential(1, k)]

    for _ in range(300):
        a, b = diagram(rng.integers(0, 15)), diagram(rng.integers(0, 15))
        assert wasserstein(a, b) == pytest.approx(augmented_wasserstein(a, b), abs=1e-9)
        assert wasserstein(a, b) == pytest.approx(wasserstein(b, a), abs=1e-9)


def test_fleet_finds_a_group_that_left_together():
    scaled = rng.normal(scale=0.3, size=(40, 32, 4))
    scaled[[5, 6, 7], -8:, 1] -= 20.0  # three hosts' traffic collapses together
    fleet = fleet_topology(scaled, noise_factor=3.0)
    assert fleet.components == 2
    assert set(np.argsort(fleet.isolation)[-3:]) == {5, 6, 7}
    assert fleet.isolation[[5, 6, 7]].min() > 5 * np.median(fleet.isolation)


@pytest.mark.parametrize(("entities", "features"), [(2, 1), (3, 2), (40, 4), (500, 38)])
def test_single_linkage_is_scipys(entities, features):
    points = rng.normal(size=(entities, features)) * rng.choice([0.01, 1.0, 100.0], size=features)
    ours, scipys = single_linkage(points), linkage(points, method="single")
    np.testing.assert_allclose(ours[:, 2], scipys[:, 2], rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(ours[:, 3], scipys[:, 3])
    np.testing.assert_array_equal(fcluster(ours, t=np.median(ours[:, 2]), criterion="distance"),
                                  fcluster(scipys, t=np.median(scipys[:, 2]), criterion="distance"))


def test_single_linkage_far_from_the_origin():
    """A fleet a million units from the origin (a flat feature's first burst, in its baseline units) keeps the
    distances between its hosts: |a|² − 2a·b + |b|² of uncentred points would round them away."""
    points = rng.normal(size=(200, 3)) + 1e7
    np.testing.assert_allclose(single_linkage(points)[:, 2], linkage(points, method="single")[:, 2], rtol=1e-6)


def test_single_linkage_of_repeated_points():
    """Hosts in exactly the same state (idle, or all reading 0) merge at height 0, in clusters scipy agrees on."""
    points = np.repeat([[0.0, 0.0], [3.0, 4.0]], 3, axis=0)
    merges = single_linkage(points)
    assert merges[:, 2].tolist() == [0.0, 0.0, 0.0, 0.0, 5.0]
    assert merges[-1, 3] == 6
    np.testing.assert_array_equal(fcluster(merges, t=1.0, criterion="distance"), [1, 1, 1, 2, 2, 2])


def test_fleet_of_healthy_hosts_is_one_cluster():
    fleet = fleet_topology(rng.normal(scale=0.3, size=(40, 32, 4)), noise_factor=3.0)
    assert fleet.components == 1


def test_a_group_that_leaves_together_is_one_cluster_a_lone_outlier_is_alone():
    """Partitioned hosts collapse by different amounts in their own units, yet form one group."""
    rng = np.random.default_rng(11)
    scaled = rng.normal(scale=0.3, size=(40, 32, 4))
    for host, depth in ((30, 40.0), (31, 90.0), (32, 60.0)):  # traffic and connections collapse
        scaled[host, -8:, 0] -= depth
        scaled[host, -8:, 1] -= depth / 2
    scaled[5, -8:, 2] += 30.0  # one host's memory alone
    fleet = fleet_topology(scaled, noise_factor=3.0)
    assert fleet.cluster_size[[30, 31, 32]].tolist() == [3.0, 3.0, 3.0]
    assert fleet.cluster_size[5] == 1.0
    assert fleet.cluster_size[0] == 36.0  # the majority
    assert (fleet.isolation[[5, 30, 31, 32]] > fleet.threshold).all()


def test_delay_embedding_turns_one_periodic_series_into_a_loop():
    from aura_exporter.topology.persistence import PersistenceEngine
    from aura_exporter.topology.stage import delay_embed

    t = np.arange(60)
    windows = np.sin(2 * np.pi * t / 20)[None, :, None]  # one entity, one feature, three periods
    embedded = delay_embed(windows, dimension=2, delay=5)
    assert embedded.shape == (1, 55, 2)
    np.testing.assert_array_equal(embedded[0, :, 0], windows[0, :55, 0])
    np.testing.assert_array_equal(embedded[0, :, 1], windows[0, 5:, 0])
    engine = PersistenceEngine((0, 1))
    flat, loop = engine.compute(windows).entity(0), engine.compute(embedded).entity(0)
    assert len(flat[1]) == 0  # points on a line have no loop
    lengths = loop[1][:, 1] - loop[1][:, 0]
    assert lengths.max() > 1.0  # (sin t, sin t+τ) traces a circle of radius 1


def test_an_embedding_longer_than_the_window_is_a_config_error():
    import pytest

    from aura_exporter.config import ConfigError, parse_config

    text = """
prometheus: {url: 'http://p:9090'}
analyses:
  - name: a
    entity_labels: [instance]
    step: 1m
    window: 20m
    features: {x: {query: up, role: resources}}
    topology: {embedding_dimension: 5, embedding_delay: 4}
"""
    with pytest.raises(ConfigError, match="delay embedding"):
        parse_config(text)
    with pytest.raises(ConfigError, match="max_points: 4 points carry no usable shape"):
        parse_config(text.replace("{embedding_dimension: 5, embedding_delay: 4}", "{max_points: 4}"))
    assert parse_config(text.replace("embedding_dimension: 5, embedding_delay: 4", "max_points: 10")).analyses[
        0].topology.max_points == 10


def test_coarsened_clouds_keep_their_loop_in_fewer_points():
    from aura_exporter.topology.stage import coarsen

    cloud = circle(points=120)[None]
    fewer = coarsen(cloud, 50)
    assert fewer.shape == (1, 40, 2)  # 3 points per point: the 120 fit 40 times
    np.testing.assert_allclose(fewer[0, 0], cloud[0, :3].mean(axis=0))
    assert summaries(fewer)[2][0].tolist() == [1, 1]
    assert coarsen(cloud, 0) is cloud and coarsen(cloud, 120) is cloud
    odd = coarsen(cloud[:, :119], 60)  # 2 per point: the oldest leftover goes
    np.testing.assert_allclose(odd[0, -1], cloud[0, 117:119].mean(axis=0))
    assert odd.shape == (1, 59, 2)
