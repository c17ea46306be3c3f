"""The service graph's series: a graph analysis' result as (name, labels, value) samples.

A graph is one object per analysis, not a batch of entities, so its samples are few: the graph's
size, Betti numbers and drift, and one series per finding (a service in a loop, a service cut off,
an edge that came or went), each kind bounded by graph.max_findings (the rest are counted in
aura_graph_findings_truncated). A loop and a cut-off part are named by their first service (sorted),
which is stable while their membership is.
"""

from __future__ import annotations

from aura_exporter.graph.edges import SKIP_REASONS
from aura_exporter.snapshot import GraphResult

HELP = {
    "aura_graph_services": "Services in the service graph (callers and callees of its edges).",
    "aura_graph_edges": "Edges (caller, callee pairs) in the service graph.",
    "aura_graph_edges_skipped": "Edge series left out of the service graph in the last cycle, by reason.",
    "aura_graph_betti": "Betti numbers of the service graph: 0, its parts; 1, its independent request loops.",
    "aura_graph_wasserstein_drift": "1-Wasserstein distance of the graph's persistence diagram from its baseline's.",
    "aura_graph_baseline_age_seconds": "Age of the baseline graph that findings are compared with.",
    "aura_graph_cycle_services": "Services in a request loop (a circular dependency), by loop; the value is 1.",
    "aura_graph_cycle_new": "1 when the request loop is not within a loop of the baseline graph, else 0.",
    "aura_graph_cycle_weakest_link": "The weakest edge of the request loop, in the edge query's units.",
    "aura_graph_partition_services": "Services cut off from the graph's main part (joined to it in the baseline); "
                                     "the value is 1.",
    "aura_graph_edge_change": "Edges that appeared or vanished against the baseline; the value is the edge's weight "
                              "(now, or in the baseline).",
    "aura_graph_findings_truncated": "Findings beyond graph.max_findings, by kind, counted but not exported.",
}


def graph_samples(result: GraphResult) -> list[tuple[str, dict[str, str], float]]:
    outcome, name = result.outcome, result.analysis.name
    settings = result.analysis.graph
    assert settings is not None
    limit = settings.max_findings
    findings = outcome.findings
    graph = outcome.graph
    samples = [("aura_graph_services", {"analysis": name}, float(len(graph.services))),
               ("aura_graph_edges", {"analysis": name}, float(graph.weight.size)),
               ("aura_graph_baseline_age_seconds", {"analysis": name}, result.data_time - outcome.baseline_learned_at),
               ("aura_model_ready", {"analysis": name}, 1.0 if outcome.ready else 0.0)]
    samples += [("aura_graph_edges_skipped", {"analysis": name, "reason": reason}, float(graph.skipped.get(reason, 0)))
                for reason in SKIP_REASONS]
    for dim, betti, drift in zip(outcome.dims, outcome.betti, outcome.drift, strict=True):
        samples.append(("aura_graph_betti", {"analysis": name, "homology_dimension": str(dim)}, float(betti)))
        samples.append(("aura_graph_wasserstein_drift", {"analysis": name, "homology_dimension": str(dim)},
                        float(drift)))
    for loop in findings.loops[:limit]:
        labels = {"analysis": name, "cycle": loop.services[0]}
        samples += [("aura_graph_cycle_services", {**labels, "service": service}, 1.0) for service in loop.services]
        samples.append(("aura_graph_cycle_new", labels, 1.0 if loop.new else 0.0))
        samples.append(("aura_graph_cycle_weakest_link", labels, loop.weakest_link))
    for cut in findings.cuts[:limit]:
        samples += [("aura_graph_partition_services", {"analysis": name, "part": cut.services[0], "service": s}, 1.0)
                    for s in cut.services]
    appeared = [c for c in findings.changes if c.appeared]
    vanished = [c for c in findings.changes if not c.appeared]
    for change in appeared[:limit] + vanished[:limit]:
        samples.append(("aura_graph_edge_change", {"analysis": name, "caller": change.caller, "callee": change.callee,
                                                   "change": "appeared" if change.appeared else "vanished"},
                        change.weight))
    for kind, found in (("cycle", findings.loops), ("partition", findings.cuts), ("edge_appeared", appeared),
                        ("edge_vanished", vanished)):
        samples.append(("aura_graph_findings_truncated", {"analysis": name, "kind": kind},
                        float(max(0, len(found) - limit))))
    return samples
