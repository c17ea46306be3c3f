"""Sharding: consistent assignment of entities, shard resolution, and two shards against a real Prometheus."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import free_port, sample_value, wait_for
from test_end_to_end import HOSTS, sidecar_config

from aura_exporter.history import History, sharded_history
from aura_exporter.sources.shard import Shard, ShardError, entity_hash, jump_hash, resolve_shard

KEYS = [("instance", f"10.0.{i // 250}.{i % 250}:9100") for i in range(20000)]


def owners(count: int) -> np.ndarray:
    return np.array([jump_hash(entity_hash(["instance"], [value]), count) for _, value in KEYS])


@pytest.mark.parametrize("count", [2, 3, 7])
def test_shares_are_even(count):
    shares = np.bincount(owners(count), minlength=count) / len(KEYS)
    assert np.all(np.abs(shares - 1 / count) < 0.02), shares


@pytest.mark.parametrize("count", [1, 2, 4])
def test_one_more_shard_moves_only_its_share_and_only_to_itself(count):
    before, after = owners(count), owners(count + 1)
    moved = before != after
    assert abs(moved.mean() - 1 / (count + 1)) < 0.02, moved.mean()
    assert np.all(after[moved] == count)  # every moved entity went to the new shard


def test_the_hash_is_stable_across_processes_and_label_order():
    assert entity_hash(["job", "instance"], ["node", "a"]) == entity_hash(["instance", "job"], ["a", "node"])
    # pinned: a change here moves entities between the shards of replicas running different versions
    assert entity_hash(["instance"], ["a"]) == 0xA9D63DFC96DF0E01
    assert [jump_hash(entity_hash(["instance"], [f"host-{i}"]), 3) for i in range(6)] == [0, 0, 0, 0, 1, 2]
    assert jump_hash(0, 1) == 0 and jump_hash(2**64 - 1, 1) == 0


def test_shard_from_flags_or_the_statefulset_ordinal():
    assert resolve_shard(3, None, "aura-exporter-2") == Shard(2, 3)
    assert resolve_shard(3, 1, "aura-exporter-2") == Shard(1, 3)  # the flag wins
    assert resolve_shard(1, None, "laptop") == Shard(0, 1)
    for count, index, host in ((3, None, "laptop"), (3, 3, "x"), (0, None, "x"), (2, None, "aura-exporter-5")):
        with pytest.raises(ShardError):
            resolve_shard(count, index, host)


def test_sharded_history_keeps_only_the_shards_entities():
    keys = tuple((f"host-{i}",) for i in range(40))
    history = History(keys, np.arange(3.0), np.arange(40 * 3 * 2, dtype=float).reshape(40, 3, 2))

    class Analysis:
        entity_labels = ("instance",)

    parts = [sharded_history(lambda *_: history, Shard(i, 3))(Analysis, 0, 1) for i in range(3)]
    asked = []
    sharded_history(lambda *args: asked.append(args[3]) or history, Shard(0, 3))(Analysis, 0, 1, most_entities=10)
    assert asked == [30]  # a sample of the whole fleet three times as large: about 10 of them this shard's
    assert sorted(k for p in parts for k in p.entities) == sorted(keys)
    for part in parts:
        assert 0 < len(part.entities) < 40
        for key, values in zip(part.entities, part.values, strict=True):
            np.testing.assert_array_equal(values, history.values[keys.index(key)])


@pytest.mark.prometheus
def test_two_shards_export_disjoint_entities_that_cover_the_fleet(tmp_path, target, prometheus_servers, exporters):
    prometheus_port = free_port()
    config = tmp_path / "aura.yml"
    config.write_text(sidecar_config(f"http://127.0.0.1:{prometheus_port}"))
    shards = [exporters(["run", f"--config.file={config}", "--shard.count=2", f"--shard.index={i}",
                         f"--storage.path={tmp_path / str(i)}"]) for i in range(2)]
    prometheus_servers(port=prometheus_port, scrape_targets={"target": f"127.0.0.1:{target.port}"})

    def exported(shard) -> set[str]:
        text = shard.metrics()
        return {h for h in HOSTS if sample_value(text, "aura_risk_score", {"instance": h}) is not None}

    wait_for(lambda: exported(shards[0]) | exported(shards[1]) == set(HOSTS), 90, interval=1,
             what="both shards together exporting every host")
    first, second = exported(shards[0]), exported(shards[1])
    assert first and second and not first & second
    expected = {h for h in HOSTS if Shard(0, 2).owns(("instance",), (h,))}
    assert first == expected
    for index, shard in enumerate(shards):
        assert sample_value(shard.metrics(), "aura_shard_info", {"shard": str(index), "shard_count": "2"}) == 1

    # A third shard takes exactly the hosts the hash gives it, and only from the other two.
    third = exporters(["run", f"--config.file={config}", "--shard.count=3", "--shard.index=2",
                       f"--storage.path={tmp_path / '2'}"])
    taken = {h for h in HOSTS if Shard(2, 3).owns(("instance",), (h,))}
    assert taken  # host-a, by the pinned hash
    wait_for(lambda: exported(third) == taken, 90, interval=1, what="the third shard exporting its hosts")
    for index in range(2):
        still = {h for h in HOSTS if Shard(index, 3).owns(("instance",), (h,))}
        assert still <= exported(shards[index]) and still == exported(shards[index]) - taken
