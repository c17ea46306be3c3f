"""JSON-ready views of a published snapshot: what the API and the decision feed send.

Entities are addressed by a stable id: a hash of their analysis and label set, so label values
(which come from monitored systems) never have to travel inside a URL path.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import Any

import numpy as np

from aura_exporter.council import DECISIONS
from aura_exporter.council.explanation import ACTIONS, Explanation, with_shared_node
from aura_exporter.durations import format_duration
from aura_exporter.jsonvalues import finite
from aura_exporter.snapshot import AnalysisResult, GraphResult
from aura_exporter.sources.kubernetes import ClusterTopology

ID_LENGTH = 16


def entity_id(analysis: str, labels: dict[str, str]) -> str:
    canonical = json.dumps([analysis, sorted(labels.items())], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:ID_LENGTH]


def entity_summary(result: AnalysisResult, index: int) -> dict[str, Any]:
    labels = result.entity_labels(index)
    verdict, topology = result.verdict, result.topology
    return {
        "id": entity_id(result.analysis.name, labels),
        "analysis": result.analysis.name,
        "labels": labels,
        "risk": finite(verdict.risk[index]),
        "usual_per_week": finite(verdict.usual_per_week[index]),
        "decision": DECISIONS[int(verdict.decision[index])],
        "agents": {agent: finite(verdict.scores[index, a]) for a, agent in enumerate(verdict.agents)},
        "drift_zscore": finite(topology.drift_zscore[index]),
        "isolation": finite(topology.fleet.isolation[index]),
        "betti": {str(dim): int(topology.betti[index, c]) for c, dim in enumerate(topology.dims)},
    }


def entity_detail(result: AnalysisResult, index: int, cluster: ClusterTopology | None = None) -> dict[str, Any]:
    topology = result.topology
    diagrams = topology.diagrams.entity(index)
    placement = kubernetes_view(result, index, cluster)
    explanation = placed_explanation(result, index, placement)
    return {
        **entity_summary(result, index),
        "data_time": result.data_time,
        "model_ready": result.model_ready,
        "kubernetes": placement,
        "explanation": _json_safe(asdict(explanation)),
        "diagrams": {str(dim): [[float(b), float(d)] for b, d in pairs] for dim, pairs in diagrams.items()},
        "noise_threshold": float(topology.thresholds[index]),
        "forecast": forecast_view(result, index),
    }


def placed_explanation(result: AnalysisResult, index: int, placement: dict[str, Any] | None) -> Explanation:
    """The entity's explanation, its node first among the actions when other flagged entities share it."""
    explanation = result.explanation(index)
    if placement is None:
        return explanation
    return with_shared_node(explanation, placement["node"], len(placement["flagged_on_node"]))


def kubernetes_view(result: AnalysisResult, index: int, cluster: ClusterTopology | None) -> dict[str, Any] | None:
    """The entity's node and owner, and the other flagged entities on its node; None without enrichment."""
    mapping = result.analysis.kubernetes
    if cluster is None or mapping is None:
        return None
    placement = cluster.place(mapping, result.entity_labels(index))
    if placement is None:
        return None
    flagged = [
        ", ".join(f"{k}={v}" for k, v in result.entity_labels(i).items())
        for i in range(len(result.windows.entities))
        if i != index and int(result.verdict.decision[i]) > 0
        and (other := cluster.place(mapping, result.entity_labels(i))) is not None and other.node == placement.node
    ]
    return {"node": placement.node, "owner": placement.owner, "pod": placement.pod, "flagged_on_node": flagged}


def forecast_view(result: AnalysisResult, index: int) -> dict[str, Any] | None:
    forecast = result.forecast
    if forecast is None:
        return None
    view: dict[str, Any] = {}
    for column, feature in enumerate(result.windows.features):
        view[feature] = {
            "horizons": {
                format_duration(h): dict(zip(("lower", "median", "upper"),
                                             (finite(v) for v in forecast.quantiles[index, column, k]), strict=True))
                for k, h in enumerate(forecast.horizons)
            },
            "residual_zscore": finite(forecast.residual_zscore[index, column]),
            "time_to_breach_seconds": finite(forecast.time_to_breach[index, column]),
            "breach_probability": finite(forecast.breach_probability[index, column]),
        }
    return view


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return finite(float(value))
    return value


def graph_summary(result: GraphResult) -> dict[str, Any]:
    outcome = result.outcome
    findings = outcome.findings
    return {
        "analysis": result.analysis.name,
        "data_time": result.data_time,
        "ready": outcome.ready,
        "services": len(outcome.graph.services),
        "edges": int(outcome.graph.weight.size),
        "betti": {str(d): int(b) for d, b in zip(outcome.dims, outcome.betti, strict=True)},
        "drift": {str(d): finite(v) for d, v in zip(outcome.dims, outcome.drift, strict=True)},
        "new_loops": sum(loop.new for loop in findings.loops),
        "cut_off_services": sum(len(cut.services) for cut in findings.cuts),
        "edges_appeared": sum(change.appeared for change in findings.changes),
        "edges_vanished": sum(not change.appeared for change in findings.changes),
        "summary": graph_sentence(result),
    }


def graph_detail(result: GraphResult) -> dict[str, Any]:
    """Everything about one graph: its services and edges, diagrams, findings and what they mean."""
    outcome = result.outcome
    graph, findings = outcome.graph, outcome.findings
    return {
        **graph_summary(result),
        "baseline_learned_at": outcome.baseline_learned_at,
        "weight": result.analysis.graph.weight,
        "skipped": dict(graph.skipped),
        "nodes": [{"service": name, "part": outcome.parts[name]} for name in graph.services],
        "links": [{"caller": a, "callee": b, "weight": float(w), "level": float(lv), "loop_level": finite(c)}
                  for (a, b), w, lv, c in zip(graph.edges, graph.weight, outcome.levels, outcome.cyclic, strict=True)],
        "diagrams": {str(d): [[float(b), finite(e)] for b, e in outcome.diagrams.of_dim(d)] for d in outcome.dims},
        "loops": [asdict(loop) for loop in findings.loops],
        "cuts": [asdict(cut) for cut in findings.cuts],
        "changes": [asdict(change) for change in findings.changes],
        "actions": graph_actions(result),
    }


def graph_sentence(result: GraphResult) -> str:
    """One line for people: what the graph's findings are, worst first."""
    findings, name = result.outcome.findings, result.analysis.name
    said = [f"services cut off from the rest of {name}: {', '.join(cut.services)}" for cut in findings.cuts]
    said += [f"new request loop: {', '.join(loop.services)}" for loop in findings.loops if loop.new]
    callers = [f"{c.caller} → {c.callee}" for c in findings.changes if c.appeared]
    if callers:
        said.append(f"new dependencies: {', '.join(callers[:5])}" + (" …" if len(callers) > 5 else ""))
    if not said:
        return f"{name}: {len(result.outcome.graph.services)} services in one part as in the baseline; no new loop"
    return "; ".join(said)


def graph_actions(result: GraphResult) -> list[str]:
    findings = result.outcome.findings
    actions = []
    if findings.cuts:
        actions.append(ACTIONS["partition"])
    if any(loop.new for loop in findings.loops):
        actions.append(ACTIONS["dependency_loop"])
    if any(change.appeared for change in findings.changes):
        actions.append(ACTIONS["new_caller"])
    return actions
