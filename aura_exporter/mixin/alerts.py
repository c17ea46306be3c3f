"""The shipped alerting rules, built from settings; prediction alerts wait for aura_model_ready."""

from __future__ import annotations

from typing import Any

from aura_exporter.mixin import settings as s

READY = "and on (analysis) (aura_model_ready == 1)"


def _alert(name: str, expr: str, duration: str, severity: str, summary: str, description: str) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": duration,
        "labels": {"severity": severity},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": f"{s.RUNBOOK_BASE}#{name.lower()}",
        },
    }


def alert_rules() -> dict[str, Any]:
    meta = [
        _alert("AuraExporterDown", f"up{{{s.EXPORTER_SELECTOR}}} == 0", "5m", "warning",
               "The AURA exporter is not being scraped.",
               "Prometheus cannot scrape {{ $labels.instance }}: no predictions are made while it is down."),
        _alert("AuraAnalysisStale",
               f"time() - aura_analysis_last_success_timestamp_seconds > {s.STALE_AFTER_SECONDS}", "5m", "warning",
               "AURA analysis {{ $labels.analysis }} is stale.",
               "No cycle of analysis {{ $labels.analysis }} has completed for {{ $value | humanizeDuration }}."),
        _alert("AuraQueryErrors", "sum by (analysis, reason) (rate(aura_query_errors_total[10m])) > 0",
               s.QUERY_ERRORS_FOR, "warning",
               "AURA analysis {{ $labels.analysis }} cannot query Prometheus ({{ $labels.reason }}).",
               "PromQL queries of analysis {{ $labels.analysis }} fail with reason {{ $labels.reason }} "
               "at {{ $value | humanize }} per second."),
    ]
    predictions = [
        _alert("AuraCapacityBreachPredicted", f"aura_time_to_breach_seconds < {s.BREACH_WITHIN_SECONDS} {READY}",
               s.BREACH_FOR, "warning",
               "{{ $labels.feature }} is forecast to reach its limit in {{ $value | humanizeDuration }}.",
               "Analysis {{ $labels.analysis }}: the median forecast of {{ $labels.feature }} reaches its "
               "configured limit in {{ $value | humanizeDuration }} (the entity is in this alert's labels)."),
        _alert("AuraTopologyDrift", f"aura_drift_zscore > {s.DRIFT_ZSCORE} {READY}", s.DRIFT_FOR, "warning",
               "The shape of an entity's metrics has drifted from its baseline.",
               "Analysis {{ $labels.analysis }}: the entity in this alert's labels drifts {{ $value | humanize }} "
               "robust standard deviations from its own norm."),
    ]
    return {"groups": [{"name": "aura-exporter.meta", "rules": meta},
                       {"name": "aura-exporter.predictions", "rules": predictions}]}
