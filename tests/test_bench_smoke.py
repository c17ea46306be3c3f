"""The cycle benchmark still runs against the code it measures (it once broke unnoticed when the forecaster's
inputs gained seasons). Tiny sizes: this checks that it runs and prints its table, never a time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_the_full_cycle_bench_runs_at_a_tiny_size():
    run = subprocess.run([sys.executable, "bench/full_cycle.py", "--entities", "12", "--steps", "40", "--repeat", "1",
                          "--workers", "1"], cwd=REPO, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "| **full cycle** |" in run.stdout
    assert "state kept per entity" in run.stdout
