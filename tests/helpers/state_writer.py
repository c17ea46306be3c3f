"""A process that loads the state an earlier one of it left, then writes new state as fast as it can.

Used by tests/test_state.py, which SIGKILLs it at random moments. On start it prints
`loaded <baselines version> <checkpoint version>` (-1 where nothing could be loaded), then, after
each complete write of both files, `wrote <version>`. The version is stored inside the state itself
(the baselines' learned_at, the checkpoint's meta), so the test can tell which write it reads back.
"""

from __future__ import annotations

import sys
from collections import deque
from pathlib import Path

import numpy as np
import torch

from aura_exporter.config import parse_config
from aura_exporter.forecast.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from aura_exporter.topology.baseline import BaselineStore, EntityBaseline
from aura_exporter.topology.baseline_file import BaselineFileError, load_baselines, save_baselines

ANALYSIS = parse_config(open("tests/fixtures/replay-forecast.yml").read()).analyses[0]
ENTITIES = 3000  # several MB per file, so that kills land inside writes too


def store_of_version(version: int) -> BaselineStore:
    store = BaselineStore(ANALYSIS.baseline, ANALYSIS.topology.homology_dimensions, ANALYSIS.window)
    features = len(ANALYSIS.features)
    for i in range(ENTITIES):
        store.entities[(f"host-{i}",)] = EntityBaseline(
            center=np.full(features, float(version)), scale=np.ones(features), learned_at=float(version),
            last_seen=float(version), history=deque(np.arange(i % 50, dtype=float), maxlen=240),
            reference={0: np.full((30, 2), float(version)), 1: np.full((i % 7, 2), float(version))})
    return store


def loaded_versions(storage: Path) -> tuple[int, int]:
    store = BaselineStore(ANALYSIS.baseline, ANALYSIS.topology.homology_dimensions, ANALYSIS.window)
    baselines = -1
    if (storage / "baselines.npz").exists():
        try:
            load_baselines(storage / "baselines.npz", ANALYSIS, store)
        except BaselineFileError as err:
            sys.exit(f"unreadable baselines: {err}")
        entities = store.entities.values()
        versions = {e.learned_at for e in entities} | {float(e.center[0]) for e in entities}
        if len(versions) != 1 or len(store.entities) != ENTITIES:
            sys.exit("a mixed or partial baselines file")
        baselines = int(versions.pop())
    try:
        _, meta = load_checkpoint(storage / "forecast.pt", ANALYSIS)
        checkpoint = int(meta["version"])
    except CheckpointError as err:
        if err.reason != "missing":
            sys.exit(f"unreadable checkpoint: {err}")
        checkpoint = -1
    return baselines, checkpoint


def main() -> None:
    storage = Path(sys.argv[1])
    baselines, checkpoint = loaded_versions(storage)
    print(f"loaded {baselines} {checkpoint}", flush=True)
    weights = {"w": torch.randn(512, 512)}
    version = max(baselines, checkpoint) + 1
    while True:
        save_baselines(storage / "baselines.npz", ANALYSIS, store_of_version(version), first_success=None)
        save_checkpoint(storage / "forecast.pt", ANALYSIS, weights, {"version": version})
        print(f"wrote {version}", flush=True)
        version += 1


if __name__ == "__main__":
    main()
