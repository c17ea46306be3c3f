"""Checkpoints: round trip, refusal of corrupt, truncated and foreign files (counted, then
retrained), and crash safety: SIGKILL in the middle of writes never leaves a broken checkpoint."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import REPO

from aura_exporter.config import Analysis, Feature, ForecastConfig
from aura_exporter.forecast.checkpoint import CheckpointError, checkpoint_path, load_checkpoint, save_checkpoint
from aura_exporter.forecast.manager import ModelManager, model_shape
from aura_exporter.forecast.model import Forecaster
from aura_exporter.forecast.stage import ForecastStage
from aura_exporter.telemetry import SelfMetrics

ANALYSIS = Analysis(name="node", entity_labels=("instance",), step=60.0, window=1800.0, interval=300.0,
                    features=(Feature("cpu", "cpu", "resources"), Feature("mem", "mem", "resources", 0.9)),
                    forecast=ForecastConfig(horizons=(900.0, 3600.0), context=7200.0, input_steps=30, units=8))


def weights(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return Forecaster(model_shape(ANALYSIS)).state_dict()


def manager(storage) -> tuple[ModelManager, SelfMetrics]:
    metrics = SelfMetrics(["node"])
    return ModelManager(ANALYSIS, ForecastStage(ANALYSIS), storage, history=None, metrics=metrics, clock=None), metrics


def errors(metrics: SelfMetrics, reason: str) -> float:
    return metrics.registry.get_sample_value("aura_checkpoint_errors_total", {"analysis": "node", "reason": reason})


def test_round_trip(tmp_path):
    path = checkpoint_path(tmp_path, ANALYSIS)
    save_checkpoint(path, ANALYSIS, weights(), {"trained_at": 123.0})
    state, meta = load_checkpoint(path, ANALYSIS)
    assert meta["trained_at"] == 123.0
    for name, tensor in weights().items():
        assert torch.equal(state[name], tensor)
    loaded, metrics = manager(tmp_path)
    assert loaded.load() is not None and errors(metrics, "corrupt") == 0
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary files left


@pytest.mark.parametrize("damage, reason", [
    (lambda p: p.write_bytes(os.urandom(4096)), "corrupt"),
    (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "corrupt"),
    (lambda p: p.unlink(), "missing"),
])
def test_damaged_checkpoints_are_counted_and_retrained(tmp_path, damage, reason):
    path = checkpoint_path(tmp_path, ANALYSIS)
    save_checkpoint(path, ANALYSIS, weights(), {})
    damage(path)
    loader, metrics = manager(tmp_path)
    assert loader.load() is None  # the manager then trains a new model
    assert errors(metrics, reason) == 1


def test_foreign_checkpoint_is_refused(tmp_path):
    other = dataclasses.replace(ANALYSIS, step=30.0)
    save_checkpoint(checkpoint_path(tmp_path, ANALYSIS), other, weights(), {})
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(checkpoint_path(tmp_path, ANALYSIS), ANALYSIS)
    assert caught.value.reason == "foreign"
    loader, metrics = manager(tmp_path)
    assert loader.load() is None and errors(metrics, "foreign") == 1


WRITER = """
import sys, torch
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_checkpoint import ANALYSIS, weights
from aura_exporter.forecast.checkpoint import checkpoint_path, save_checkpoint
path = checkpoint_path(Path({storage!r}), ANALYSIS)
big = {{**weights(), "padding": torch.zeros(2_000_000)}}  # 8 MB: writes take long enough to be cut
print("ready", flush=True)
i = {first}
while True:
    save_checkpoint(path, ANALYSIS, big, {{"generation": i}})
    print(i, flush=True)
    i += 1
"""


def test_sigkill_while_writing_leaves_the_last_complete_checkpoint(tmp_path):
    import random

    path = checkpoint_path(tmp_path, ANALYSIS)
    save_checkpoint(path, ANALYSIS, weights(), {"generation": 0})
    chooser, last = random.Random(5), 0
    for _ in range(6):
        code = WRITER.format(tests=str(REPO / "tests"), storage=str(tmp_path), first=last + 1)
        writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO)
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(chooser.uniform(0.0, 0.6))  # somewhere in the middle of a write, most of the time
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        written = [int(line) for line in writer.stdout.read().split()]
        state, meta = load_checkpoint(path, ANALYSIS)  # never corrupt
        finished = written[-1] if written else last
        assert meta["generation"] in (finished, finished + 1)  # the last complete one, or one renamed in
        last = meta["generation"]
    assert last > 0
    save_checkpoint(path, ANALYSIS, weights(), {"generation": last + 1})  # the next write sweeps up
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # what killed writers left
