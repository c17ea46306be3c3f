"""The shipped recording and alerting rules, built from settings; prediction alerts wait for aura_model_ready."""

from __future__ import annotations

from typing import Any

from aura_exporter.mixin import settings as s

READY = "and on (analysis) (aura_model_ready == 1)"
CRITICAL = 'and ignoring (decision) (aura_decision{decision="critical"} == 1)'
WARNING = 'and ignoring (decision) (aura_decision{decision="warning"} == 1)'
BREACH_LIKELY = f"(max without (feature) (aura_breach_probability) >= {s.FAILURE_BREACH_PROBABILITY})"

# Alert labels are the entity's labels, whatever they are called in each analysis; these template
# pieces name the entity, select its other series (for the explanation) and link to its API page.
ENTITY = ('{{ range $k, $v := $labels }}{{ if and (ne $k "__name__") (ne $k "analysis") (ne $k "job") }}'
          '{{ $k }}={{ $v }} {{ end }}{{ end }}')
SELECTOR = ('{{ $sel := "" }}{{ range $k, $v := $labels }}{{ if ne $k "__name__" }}'
            '{{ $sel = printf "%s%s=%q," $sel $k $v }}{{ end }}{{ end }}')
AGENTS = ('Agents: {{ range printf "sort_desc(aura_agent_score{%s} >= 0.05)" $sel | query }}'
          '{{ .Labels.agent }} {{ printf "%.2f" .Value }}; {{ end }}')
# The analysis' page budget as the exporter states it (aura_page_budget_per_week), or the fixed threshold without one.
BUDGET = ('{{ with printf "aura_page_budget_per_week{analysis=%q}" $labels.analysis | query }}more unusual than '
          'normal behaviour gets about {{ . | first | value | humanize }} times a week per entity (the page '
          'budget){{ else }}past the fixed warn threshold (no page budget){{ end }}')
BREACHES = ('{{ range printf "aura_time_to_breach_seconds{%s}" $sel | query }}{{ .Labels.feature }} reaches '
            'its limit in {{ humanizeDuration .Value }}; {{ end }}')
EXPLANATION_URL = (s.AURA_URL + '/api/v1/entities/{{ $labels.analysis }}/by-labels?{{ range $k, $v := $labels }}'
                   '{{ if ne $k "__name__" }}{{ urlquery $k }}={{ urlquery $v }}&{{ end }}{{ end }}')


def _alert(name: str, expr: str, duration: str, severity: str, summary: str, description: str,
           **annotations: str) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": duration,
        "labels": {"severity": severity},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": f"{s.RUNBOOK_BASE}#{name.lower()}",
            **annotations,
        },
    }


def _services(metric: str, key: str) -> str:
    """Template: the services of the alert's loop or part, read back from `metric`, comma-separated."""
    return (f'{{{{ range $i, $s := printf "{metric}{{analysis=%q,{key}=%q}}" $labels.analysis $labels.{key} '
            '| query | sortByLabel "service" }}{{ if $i }}, {{ end }}{{ $s.Labels.service }}{{ end }}')


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
    council = [
        _alert("AuraFailurePredicted", f"aura_risk_score {CRITICAL} and {BREACH_LIKELY} {READY}", s.COUNCIL_FOR,
               "critical",
               "Failure predicted for " + ENTITY + "(analysis {{ $labels.analysis }}).",
               SELECTOR + "The council calls " + ENTITY + "critical with risk {{ humanizePercentage $value }}, and "
               "a forecast reaches its limit: " + BREACHES + AGENTS + " Full explanation: the explanation_url.",
               explanation_url=EXPLANATION_URL),
        _alert("AuraCouncilCritical", f"aura_risk_score {CRITICAL} unless {BREACH_LIKELY} {READY}", s.COUNCIL_FOR,
               "critical",
               "The AURA council calls " + ENTITY + "critical (analysis {{ $labels.analysis }}).",
               SELECTOR + "Risk {{ humanizePercentage $value }} from what " + ENTITY + "does now, without a "
               "forecast breach. " + AGENTS + " Full explanation: the explanation_url.",
               explanation_url=EXPLANATION_URL),
        # The budget (council.false_pages_per_week) is set at the warning: what the backtest counts as alerts.
        _alert("AuraCouncilWarning", f"aura_risk_score {WARNING} {READY}", s.COUNCIL_FOR, "warning",
               "The AURA council warns about " + ENTITY + "(analysis {{ $labels.analysis }}).",
               SELECTOR + "Risk {{ humanizePercentage $value }}: " + ENTITY + "is " + BUDGET + ". " + AGENTS
               + " Full explanation: the explanation_url.",
               explanation_url=EXPLANATION_URL),
        # max by (analysis): one threshold per analysis even when several exporters (shards) export it
        _alert("AuraFleetPartition",
               f"aura_fleet_isolation > on (analysis) group_left () ({s.PARTITION_THRESHOLDS} * "
               "max by (analysis) (aura_fleet_cluster_threshold)) and (aura_fleet_cluster_size >= 2) " + READY,
               s.PARTITION_FOR, "critical",
               ENTITY + "is cut off from the fleet's majority (analysis {{ $labels.analysis }}).",
               "In analysis {{ $labels.analysis }}, " + ENTITY + "and the other entities of its cluster stand "
               "{{ humanize $value }} baseline units from the fleet's majority: a network partition, a failover "
               "or a group of entities failing together.",
               explanation_url=EXPLANATION_URL),
    ]
    graph = [
        _alert("AuraDependencyCycle", f"aura_graph_cycle_new == 1 {READY}", s.GRAPH_CYCLE_FOR, "warning",
               "New request loop in {{ $labels.analysis }}, through {{ $labels.cycle }}.",
               "Services of {{ $labels.analysis }} now call each other in a loop that the baseline graph did not "
               "have (a circular dependency: a retry storm or a deadlock in the making): "
               + _services("aura_graph_cycle_services", "cycle") + "."),
        _alert("AuraServicePartition",
               f"count by (analysis, part) (aura_graph_partition_services) {READY}", s.GRAPH_PARTITION_FOR,
               "critical",
               "{{ $value }} service(s) of {{ $labels.analysis }} cut off from the rest, with {{ $labels.part }}.",
               "These services of {{ $labels.analysis }} were joined to its main part in the baseline graph and "
               "no longer are (no calls either way): " + _services("aura_graph_partition_services", "part") + "."),
        _alert("AuraNewDependency", f'aura_graph_edge_change{{change="appeared"}} {READY}',
               s.GRAPH_NEW_DEPENDENCY_FOR, "warning",
               "{{ $labels.caller }} calls {{ $labels.callee }}, a new dependency in {{ $labels.analysis }}.",
               "{{ $labels.caller }} → {{ $labels.callee }} is not in the baseline graph of {{ $labels.analysis }} "
               "and has carried {{ $value | humanize }} (in the edge query's units) for a while: a deploy, a new "
               "route or a client that should not be there."),
    ]
    records = [
        {"record": "analysis_decision:aura_decision:sum", "expr": "sum by (analysis, decision) (aura_decision)"},
        {"record": "analysis:aura_risk_score:max", "expr": "max by (analysis) (aura_risk_score)"},
        {"record": "analysis_agent:aura_agent_vote:sum", "expr": "sum by (analysis, agent) (aura_agent_vote)"},
    ]
    return {"groups": [{"name": "aura-exporter.records", "rules": records},
                       {"name": "aura-exporter.meta", "rules": meta},
                       {"name": "aura-exporter.predictions", "rules": predictions},
                       {"name": "aura-exporter.council", "rules": council},
                       {"name": "aura-exporter.graph", "rules": graph}]}
