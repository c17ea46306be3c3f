"""The benchmarks still run against the code they measure: the cycle benchmark once broke unnoticed when the
forecaster's inputs gained seasons, the forecast benchmarks when a helper they imported moved. Tiny sizes:
this checks that they import and run, never a time."""

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


def test_every_bench_script_imports_what_it_uses():
    scripts = sorted(path.stem for path in (REPO / "bench").glob("*.py"))
    code = ("import importlib, sys\nsys.path.insert(0, 'bench')\n"
            f"for name in {scripts!r}:\n    importlib.import_module(name)\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
