"""Shipped rules: generated from code (and committed as generated), valid, unit-tested with promtool,
and using only metrics the exporter really exports."""

from __future__ import annotations

import subprocess

import promql_parser
import yaml
from conftest import REPO

from aura_exporter.exposition.collector import HELP
from aura_exporter.mixin.__main__ import outputs
from aura_exporter.telemetry import SelfMetrics

RULES = REPO / "rules" / "aura-alerts.yml"


def test_committed_rules_are_what_the_code_generates():
    for path, text in outputs("rules").items():
        assert (REPO / path).read_text() == text, f"{path}: run `make rules` and commit the result"


def test_promtool_checks_and_unit_tests_pass():
    for command in (["promtool", "check", "rules", str(RULES)],
                    ["promtool", "test", "rules", *map(str, sorted((REPO / "rules" / "tests").glob("*.yml")))]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=REPO)
        assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_severity_summary_description_and_runbook():
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in (r for r in group["rules"] if "alert" in r):
            assert rule["labels"]["severity"] in ("warning", "critical")
            assert {"summary", "description", "runbook_url"} <= set(rule["annotations"])
            anchor = rule["annotations"]["runbook_url"].split("#")[1]
            assert f"## {rule['alert']}" in (REPO / "docs" / "runbooks.md").read_text() and anchor == rule["alert"].lower()


def metric_names(expression) -> set[str]:
    names = set()

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        for attribute in ("expr", "lhs", "rhs", "vector_selector", "args", "param"):
            child = getattr(node, attribute, None)
            for item in child if isinstance(child, list) else [child]:
                if isinstance(item, promql_parser.Expr):
                    visit(item)

    visit(expression)
    return names


def test_rules_use_only_exported_metrics():
    exported = set(HELP) | {"up"}
    for family in SelfMetrics(["x"]).registry.collect():
        exported |= {sample.name for sample in family.samples} | {family.name}
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            used = metric_names(promql_parser.parse(rule["expr"]))
            assert used and used <= exported, (rule.get("alert", rule.get("record")), used - exported)
