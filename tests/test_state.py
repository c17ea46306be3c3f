"""State that survives: baselines saved and loaded whole, across restarts and SIGKILLs."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import REPO

from aura_exporter.cli import main
from aura_exporter.config import parse_config
from aura_exporter.cycle import AnalysisCycle
from aura_exporter.sources.replay import ReplayFleet, ReplaySource
from aura_exporter.telemetry import SelfMetrics
from aura_exporter.topology.baseline import BaselineStore
from aura_exporter.topology.baseline_file import BaselineFileError, load_baselines, save_baselines

# A short window and warm-up, so that a few cycles give drift z-scores.
ANALYSIS = parse_config(open("tests/fixtures/replay-forecast.yml").read().replace(
    "window: 30m", "window: 5m\n    baseline: {min_history: 3}")).analyses[0]
START = 1_764_000_000.0


def cycle_with_storage(storage, analysis=ANALYSIS) -> AnalysisCycle:
    fleet = ReplayFleet(hosts=8, origin=START - 6 * 3600)
    return AnalysisCycle(analysis, ReplaySource(fleet), SelfMetrics([analysis.name]), ThreadPoolExecutor(1),
                         storage=storage)


def run_cycles(cycle: AnalysisCycle, count: int, first: float = START):
    results = []
    for i in range(count):
        results.append(asyncio.run(cycle.run(first + i * ANALYSIS.interval)))
    return results


def saved_cycle(storage, cycles: int) -> AnalysisCycle:
    """A cycle that started from an empty state directory, ran `cycles` cycles and saved."""
    cycle = cycle_with_storage(storage)
    cycle.restore(START)
    run_cycles(cycle, cycles)
    cycle.save()
    return cycle


def test_a_restart_carries_on_with_the_same_baselines(tmp_path):
    before = saved_cycle(tmp_path, 14)
    after = cycle_with_storage(tmp_path)
    after.restore(START + 14 * ANALYSIS.interval)
    assert after.first_success == before.first_success == START
    assert set(after.topology.baselines.entities) == set(before.topology.baselines.entities)
    assert set(after.topology.state.entities) == set(before.topology.state.entities)
    for key, usual in before.topology.state.entities.items():
        np.testing.assert_array_equal(after.topology.state.entities[key].mean, usual.mean)
        assert after.topology.state.entities[key].cycles.tolist() == usual.cycles.tolist()
    # the next cycle gives the same drift and z-scores as if the process had never stopped
    later = START + 14 * ANALYSIS.interval
    same, restored = run_cycles(before, 1, later)[0], run_cycles(after, 1, later)[0]
    assert np.any(restored.topology.drift_zscore != 0)  # past the warm-up straight away
    np.testing.assert_allclose(restored.topology.drift, same.topology.drift)
    np.testing.assert_allclose(restored.topology.drift_zscore, same.topology.drift_zscore)
    assert restored.model_ready == same.model_ready


def test_unusable_baseline_files_are_refused_with_a_reason(tmp_path):
    cycle = saved_cycle(tmp_path, 3)
    path = cycle.state_path
    store = BaselineStore(ANALYSIS.baseline, ANALYSIS.topology.homology_dimensions, ANALYSIS.window)
    other = dataclasses.replace(ANALYSIS, features=(*ANALYSIS.features[:-1], dataclasses.replace(ANALYSIS.features[-1], query="other_query")))
    with pytest.raises(BaselineFileError) as foreign:
        load_baselines(path, other, store)
    assert foreign.value.reason == "foreign" and not store.entities

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, format=np.array([{"evil": 1}], dtype=object))
    for bad in (truncated, pickled, tmp_path / "missing.npz"):
        with pytest.raises(BaselineFileError) as corrupt:
            load_baselines(bad, ANALYSIS, store)
        assert corrupt.value.reason == "corrupt" and not store.entities

    lying = tmp_path / "lying.npz"  # well-formed arrays whose lengths do not add up
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(lying, "w") as target:
        for item in source.namelist():
            data = source.read(item)
            if item == "history_lengths.npy":
                buffer = tmp_path / "lengths.npy"
                np.save(buffer, np.load(source.open(item)) + 1)
                data = buffer.read_bytes()
            target.writestr(item, data)
    with pytest.raises(BaselineFileError) as malformed:
        load_baselines(lying, ANALYSIS, store)
    assert malformed.value.reason == "corrupt" and not store.entities


def test_a_refused_file_is_counted_and_the_analysis_learns_afresh(tmp_path):
    (tmp_path / "baselines-node.npz").write_bytes(b"not a zip at all")
    cycle = cycle_with_storage(tmp_path)
    cycle.restore(START)
    assert not cycle.topology.baselines.entities and cycle.first_success is None
    assert cycle.metrics.baseline_errors.labels("node", "corrupt")._value.get() == 1
    assert len(run_cycles(cycle, 1)[0].windows.entities) == 8


def test_baselines_from_the_future_are_not_used(tmp_path):
    saved_cycle(tmp_path, 3)
    replayed = cycle_with_storage(tmp_path)
    replayed.restore(START - 3600)  # a demo replay restarted, or a clock set back
    assert not replayed.topology.baselines.entities
    assert replayed.metrics.baseline_errors.labels("node", "foreign")._value.get() == 1


def test_a_failed_write_is_counted_and_keeps_the_old_file(tmp_path):
    cycle = saved_cycle(tmp_path, 2)
    kept = cycle.state_path.read_bytes()
    cycle.state_path = tmp_path / "not-a-directory" / "baselines-node.npz"
    (tmp_path / "not-a-directory").write_text("a file where the directory should be")
    cycle.save()
    assert cycle.metrics.baseline_errors.labels("node", "write")._value.get() == 1
    assert (tmp_path / "baselines-node.npz").read_bytes() == kept


def test_an_empty_store_round_trips(tmp_path):
    empty = BaselineStore(ANALYSIS.baseline, ANALYSIS.topology.homology_dimensions, ANALYSIS.window)
    save_baselines(tmp_path / "b.npz", ANALYSIS, empty, None)
    assert load_baselines(tmp_path / "b.npz", ANALYSIS, empty) is None and not empty.entities


def test_every_restart_after_a_sigkill_loads_the_last_complete_state(tmp_path):
    """SIGKILL the writer at random moments until it has completed 50 writes of baselines and
    checkpoint; each restart must load whole files: the last write it reported, or the one it
    completed and was killed before reporting."""
    rng = random.Random(20261127)
    confirmed, restarts = -1, 0
    while confirmed < 50:
        writer = subprocess.Popen([sys.executable, "tests/helpers/state_writer.py", str(tmp_path)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
        first = writer.stdout.readline().split()
        assert first[:1] == ["loaded"], writer.stderr.read()
        baselines, checkpoint = int(first[1]), int(first[2])
        assert baselines in (confirmed, confirmed + 1) and checkpoint in (confirmed, confirmed + 1), (first, confirmed)
        assert checkpoint <= baselines  # written in that order
        lines = [writer.stdout.readline()]  # one write at least, then a kill anywhere in the next ones
        time.sleep(rng.uniform(0, 0.8))
        writer.kill()
        lines += writer.stdout.read().splitlines()
        writer.wait()
        confirmed = max([confirmed] + [int(line.split()[1]) for line in lines if line.startswith("wrote")])
        restarts += 1
    print(f"{restarts} SIGKILLs and restarts over {confirmed} complete writes")  # docs/reliability.md quotes it
    assert restarts >= 5


def test_a_state_directory_that_is_not_writable_stops_the_start(tmp_path, capfd):
    occupied = tmp_path / "a-file"
    occupied.write_text("")
    assert main(["run", "--config.file=tests/fixtures/replay-forecast.yml", f"--storage.path={occupied}",
                 "--web.listen-address=127.0.0.1:0"]) == 1
    assert "is not a writable directory" in capfd.readouterr().err


def test_the_page_budget_is_saved_with_the_baselines_and_refused_when_measured_otherwise(tmp_path):
    budgeted = dataclasses.replace(ANALYSIS, council=dataclasses.replace(ANALYSIS.council, false_pages_per_week=1.0))
    before = cycle_with_storage(tmp_path, budgeted)
    before.restore(START)
    run_cycles(before, 5)
    assert before.council.budget is not None and len(before.council.budget.entities) == 8
    keys = tuple(before.council.budget.entities)
    for cycle in range(5):  # five cycles are no usual state (200): strengths as settled cycles would give them
        before.council.budget.assess(keys, np.full(len(keys), float(cycle)), np.zeros(len(keys), dtype=bool),
                                     np.ones(len(keys), dtype=bool), START + cycle * ANALYSIS.interval)
    before.save()
    after = cycle_with_storage(tmp_path, budgeted)
    after.restore(START + 5 * ANALYSIS.interval)
    assert after.council.budget is not None
    for key, entity in before.council.budget.entities.items():
        restored = after.council.budget.entities[key]
        assert restored.count == entity.count == 5
        np.testing.assert_array_equal(restored.strengths(), entity.strengths())
    # strengths measured with other sigmas mean something else: learned afresh, the baselines kept
    louder = dataclasses.replace(budgeted, council=dataclasses.replace(budgeted.council, sigmas=7.0))
    other = cycle_with_storage(tmp_path, louder)
    other.restore(START + 5 * ANALYSIS.interval)
    assert other.council.budget is not None and not other.council.budget.entities
    assert set(other.topology.baselines.entities) == set(before.topology.baselines.entities)
