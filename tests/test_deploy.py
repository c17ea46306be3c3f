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


ALERTMANAGER = REPO / "deploy" / "alertmanager" / "alertmanager.yml"


def test_alertmanager_example_is_valid():
    check = subprocess.run(["amtool", "check-config", str(ALERTMANAGER)], capture_output=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("severity, receiver", [("critical", "pager"), ("warning", "chat")])
def test_alertmanager_example_routes_by_severity(severity, receiver):
    routed = subprocess.run(["amtool", "config", "routes", "test", f"--config.file={ALERTMANAGER}",
                             f"severity={severity}", "alertname=AuraCapacityBreachPredicted", "analysis=node",
                             "instance=db-3"], capture_output=True, text=True, timeout=30)
    assert routed.returncode == 0 and routed.stdout.strip() == receiver, routed.stdout + routed.stderr


def test_alertmanager_example_lets_critical_inhibit_warnings_of_the_same_entity():
    document = yaml.safe_load(ALERTMANAGER.read_text())
    rule = document["inhibit_rules"][0]
    assert 'severity="critical"' in rule["source_matchers"] and 'severity="warning"' in rule["target_matchers"]
    assert {"analysis", "instance"} <= set(rule["equal"])
