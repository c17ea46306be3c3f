"""Every scrape configuration the project ships is valid and honours the entities' own labels."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import REPO

SCRAPE_CONFIGS = sorted(p for p in (REPO / "deploy").rglob("*.y*ml") if "scrape_configs" in p.read_text())


def test_there_are_shipped_scrape_configs():
    assert SCRAPE_CONFIGS


@pytest.mark.parametrize("path", SCRAPE_CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_scrape_config_is_valid_and_sets_honor_labels(path: Path):
    document = yaml.safe_load(path.read_text())
    jobs = [job for job in document["scrape_configs"] if "aura" in job["job_name"]]
    assert jobs and all(job.get("honor_labels") is True for job in jobs)
    check = subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
