"""The built-in UI: a fleet page and an entity page, rendered on the server as HTML and SVG.

What Grafana cannot draw well — persistence diagrams, barcodes, the fleet's shape — is drawn here.
No build step: pages are strings, charts are SVG (svg.py), and one small script (static/ui.js)
sorts tables and applies the live decision feed with textContent only. Every label value and
explanation is escaped; a Content-Security-Policy forbids inline scripts besides.
"""

from __future__ import annotations

import functools
from collections import deque
from importlib import resources
from urllib.parse import quote

import numpy as np
from aiohttp import web
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from aura_exporter import __version__
from aura_exporter.council import DECISIONS
from aura_exporter.durations import format_duration
from aura_exporter.exposition.api import EntityIndex
from aura_exporter.exposition.markup import escape
from aura_exporter.exposition.svg import (
    Line,
    Node,
    ServiceEdge,
    barcode,
    fleet_graph,
    line_chart,
    persistence_diagram,
    service_graph,
)
from aura_exporter.exposition.views import (
    entity_id,
    graph_actions,
    graph_sentence,
    kubernetes_view,
    placed_explanation,
)
from aura_exporter.snapshot import AnalysisResult, GraphResult, Snapshot
from aura_exporter.sources.kubernetes import ClusterTopology
from aura_exporter.topology.fleet import recent_state, spanning_tree

HISTORY_POINTS = 240  # risk values kept per entity for its timeline
GRAPH_NODES = 300  # the fleet graph shows at most this many entities, the riskiest
TABLE_ROWS = 500  # ...and its table these many: a page of 10,000 rows costs the event loop and the browser
CSP = ("default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self'; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'")

_STYLE = """body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse}
td,th{padding:.2em .7em;text-align:left;vertical-align:top}
th[data-sort]{cursor:pointer;text-decoration:underline dotted}
tr:nth-child(even){background:#f4f4f4}.monitor{color:#2ca02c}.warn{color:#ff7f0e;font-weight:bold}
.critical{color:#d62728;font-weight:bold}svg{border:1px solid #ddd;margin:.3em}.charts{display:flex;flex-wrap:wrap}
#live{font-size:.8em;color:#666}"""


def _page(title: str, body: str, entity: str = "") -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<style>{_STYLE}</style><script src="/ui/static/ui.js" defer></script></head>'
            f'<body data-entity="{escape(entity)}"><p><a href="/ui">Fleet</a> · <a href="/">Exporter</a> · '
            f'<a href="/api/v1/openapi.json">API</a> · AURA exporter {escape(__version__)} '
            f'<span id="live">live updates: connecting…</span></p>{body}</body></html>')


class RiskHistory:
    """The last HISTORY_POINTS risk values of each entity, recorded as snapshots are published."""

    def __init__(self, points: int = HISTORY_POINTS):
        self.points = points
        self.series: dict[tuple[str, tuple], deque] = {}

    def record(self, snapshot: Snapshot) -> None:
        seen = set()
        for name, result in snapshot.results.items():
            for index, key in enumerate(result.windows.entities):
                series = self.series.setdefault((name, key), deque(maxlen=self.points))
                if not series or series[-1][0] < result.data_time:
                    series.append((result.data_time, float(result.verdict.risk[index])))
                seen.add((name, key))
        for gone in set(self.series) - seen:
            del self.series[gone]

    def of(self, analysis: str, key: tuple) -> np.ndarray:
        return np.array(self.series.get((analysis, key), ()), dtype=float).reshape(-1, 2)


class Ui:
    def __init__(self, snapshot, history: RiskHistory, cluster=lambda: None):
        self.snapshot = snapshot
        self.cluster = cluster
        self.history = history
        self.index = EntityIndex()

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/ui", self.fleet)
        app.router.add_get("/ui/entities/{analysis}/by-labels", self.entity_by_labels)
        app.router.add_get("/ui/entities/{analysis}/{id}", self.entity)
        app.router.add_get("/ui/graphs/{analysis}", self.graph)
        app.router.add_get("/ui/static/ui.js", self.script)

    async def script(self, request: web.Request) -> web.Response:
        return web.Response(text=_script(), content_type="application/javascript")

    async def fleet(self, request: web.Request) -> web.Response:
        cluster = self.cluster()
        snapshot = self.snapshot()
        sections = [fleet_section(result, cluster) for result in snapshot.results.values()]
        sections += [graph_overview(result) for result in snapshot.graphs.values()]
        body = "<h1>Fleet</h1>" + ("".join(sections) or "<p>No analysis has completed a cycle yet.</p>")
        return _html(_page("AURA fleet", body))

    async def graph(self, request: web.Request) -> web.Response:
        result = self.snapshot().graphs.get(request.match_info["analysis"])
        if result is None:
            return _html(_page("Not found", "<h1>No such service graph in the latest cycles</h1>"), status=404)
        return _html(_page(f"AURA {result.analysis.name}", graph_page(result)))

    async def entity_by_labels(self, request: web.Request) -> web.Response:
        """Redirect to the page of the entity whose labels are the query's (links from Grafana and alerts)."""
        analysis = request.match_info["analysis"]
        result = self.snapshot().results.get(analysis)
        names = () if result is None else result.windows.label_names
        key = tuple(request.query.get(n) for n in names)
        if result is None or None in key or key not in result.windows.entities:
            return _html(_page("Not found", "<h1>No such entity in the latest cycle</h1>"), status=404)
        raise web.HTTPFound(entity_link(result, result.windows.entities.index(key)))

    async def entity(self, request: web.Request) -> web.Response:
        snapshot = self.snapshot()
        analysis, identifier = request.match_info["analysis"], request.match_info["id"]
        result = snapshot.results.get(analysis)
        index = None if result is None else self.index.find(snapshot, analysis, identifier)
        if result is None or index is None:
            return _html(_page("Not found", "<h1>No such entity in the latest cycle</h1>"), status=404)
        body = entity_section(result, index, self.history.of(analysis, result.windows.entities[index]),
                              kubernetes_view(result, index, self.cluster()))
        return _html(_page(f"AURA {analysis}", body, entity=identifier))


@functools.cache
def _script() -> str:
    """The UI's script, read from the package once (not on every page view)."""
    return resources.files("aura_exporter.exposition").joinpath("static/ui.js").read_text()


def _html(text: str, status: int = 200) -> web.Response:
    response = web.Response(text=text, content_type="text/html", status=status)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def entity_link(result: AnalysisResult, index: int) -> str:
    return f"/ui/entities/{result.analysis.name}/{entity_id(result.analysis.name, result.entity_labels(index))}"


def entity_name(result: AnalysisResult, index: int) -> str:
    return ", ".join(f"{k}={v}" for k, v in result.entity_labels(index).items())


def fleet_section(result: AnalysisResult, cluster: ClusterTopology | None = None) -> str:
    verdict, topology = result.verdict, result.topology
    nodes_of = node_of_each(result, cluster)
    order = np.argsort(-verdict.risk, kind="stable")[:TABLE_ROWS]
    rows = []
    for index in order:
        decision = DECISIONS[int(verdict.decision[index])]
        identifier = entity_id(result.analysis.name, result.entity_labels(int(index)))
        risk, drift, isolation = verdict.risk[index], topology.drift_zscore[index], topology.fleet.isolation[index]
        rows.append(
            f'<tr data-id="{identifier}"><td data-value="{escape(entity_name(result, int(index)))}">'
            f'<a href="{escape(entity_link(result, int(index)))}">{escape(entity_name(result, int(index)))}</a></td>'
            f'<td class="decision {decision}" data-value="{int(verdict.decision[index])}">{decision}</td>'
            f'<td class="risk" data-value="{risk:.6f}">{risk:.0%}</td>'
            f'<td data-value="{drift:.6f}">{drift:.2f}</td><td data-value="{isolation:.6f}">{isolation:.2f}</td></tr>')
    entities = len(result.windows.entities)
    shown = "" if entities <= TABLE_ROWS else (f' The table shows the {TABLE_ROWS} riskiest; <a href="/api/v1/entities?'
                                               f'analysis={quote(result.analysis.name)}&amp;limit=10000">the API</a> '
                                               'lists them all.')
    return (f'<h2>{escape(result.analysis.name)}</h2><p>{entities} entities, {topology.fleet.components} behaviour '
            f'clusters.{shown}</p>{shared_nodes_note(result, nodes_of)}'
            f'<div class="charts">{fleet_graph_svg(result, nodes_of)}</div>'
            '<table class="entities"><thead><tr><th data-sort="text">entity</th><th data-sort="number">decision</th>'
            '<th data-sort="number">risk</th><th data-sort="number">drift z-score</th>'
            '<th data-sort="number">isolation</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table>")


def fleet_graph_svg(result: AnalysisResult, nodes_of: list[str | None]) -> str:
    """The riskiest entities placed by their recent behaviour (two principal components of their
    log-compressed recent states), joined by the minimum spanning tree of the fleet's distances (the
    single-linkage tree whose long edges are the fleet's splits); with Kubernetes enrichment, flagged
    entities on one node are joined too."""
    chosen = np.argsort(-result.verdict.risk, kind="stable")[:GRAPH_NODES]
    state = recent_state(result.topology.scaled[chosen])
    points = np.sign(state) * np.log1p(np.abs(state))
    positions, edges = _layout(points)
    nodes = [Node(entity_name(result, int(i)) + (f" on node {nodes_of[i]}" if nodes_of[i] else ""),
                  entity_link(result, int(i)), DECISIONS[int(result.verdict.decision[i])],
                  float(result.verdict.risk[i])) for i in chosen]
    flagged = [k for k, i in enumerate(chosen) if result.verdict.decision[i] > 0 and nodes_of[i]]
    shared = [(a, b) for n, a in enumerate(flagged) for b in flagged[n + 1:]
              if nodes_of[chosen[a]] == nodes_of[chosen[b]]]
    return fleet_graph(nodes, positions, edges, f"{result.analysis.name}: fleet graph", shared)


def node_of_each(result: AnalysisResult, cluster: ClusterTopology | None) -> list[str | None]:
    """The Kubernetes node of each entity (None without enrichment or when it is not found)."""
    mapping = result.analysis.kubernetes
    if cluster is None or mapping is None:
        return [None] * len(result.windows.entities)
    placements = [cluster.place(mapping, result.entity_labels(i)) for i in range(len(result.windows.entities))]
    return [p.node if p else None for p in placements]


def shared_nodes_note(result: AnalysisResult, nodes_of: list[str | None]) -> str:
    """Nodes carrying several flagged entities: the node is the likelier cause."""
    counts: dict[str, int] = {}
    for index, node in enumerate(nodes_of):
        if node and result.verdict.decision[index] > 0:
            counts[node] = counts.get(node, 0) + 1
    shared = sorted((n, c) for n, c in counts.items() if c > 1)
    if not shared:
        return ""
    items = "".join(f"<li>{escape(node)}: {count} flagged</li>" for node, count in shared)
    return f'<p>Nodes with several flagged entities (check the node first):</p><ul class="shared-nodes">{items}</ul>'


def _layout(points: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]]]:
    if len(points) < 2:
        return np.zeros((len(points), 2)), []
    centred = points - points.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    positions = centred @ axes[:2].T if axes.shape[0] >= 2 else np.c_[centred @ axes[0], np.zeros(len(points))]
    first, second = spanning_tree(points)
    return positions, list(zip(first.tolist(), second.tolist(), strict=True))


def entity_section(result: AnalysisResult, index: int, history: np.ndarray, placement: dict | None = None) -> str:
    explanation = placed_explanation(result, index, placement)
    diagrams = result.topology.diagrams.entity(index)
    threshold = float(result.topology.thresholds[index])
    name = entity_name(result, index)
    agents = "".join(
        f"<tr><td>{escape(a.agent)}</td><td>{'abstains' if a.score is None else f'{a.score:.2f}'}</td>"
        f"<td>{'' if a.vote is None else ('flags' if a.vote else 'no')}</td></tr>" for a in explanation.agents)
    reasons = "".join(f"<li>{escape(c.text)} <small>({escape(c.agent)}, score {c.score:.2f})</small></li>"
                      for c in explanation.contributions) or "<li>nothing stands out</li>"
    actions = "".join(f"<li>{escape(a)}</li>" for a in explanation.actions) or "<li>none needed</li>"
    features = "".join(f"<li>H{f.dimension} ({f.birth:.3g} → {f.death:.3g}): {escape(f.interpretation)}</li>"
                       for f in explanation.topology) or "<li>no feature above the noise threshold</li>"
    return (f'<h1>{escape(name)}</h1><p>Analysis {escape(result.analysis.name)}: '
            f'<span class="decision {explanation.decision}">{explanation.decision}</span>, risk '
            f'{explanation.risk:.0%}.</p><p class="summary">{escape(explanation.summary)}</p>'
            f'<h2>Council</h2><table class="agents"><tr><th>agent</th><th>score</th><th>vote</th></tr>{agents}'
            f'</table><h2>Why</h2><ul class="reasons">{reasons}</ul><h2>What to do</h2><ul class="actions">{actions}'
            f'</ul>{kubernetes_section(placement)}<h2>Topology</h2><ul>{features}</ul><div class="charts">'
            + persistence_diagram(diagrams, threshold, f"{name}: persistence diagram")
            + barcode(diagrams, threshold, f"{name}: barcode")
            + risk_chart(history, result.data_time)
            + "</div><h2>Forecasts</h2><div class=\"charts\">" + forecast_charts(result, index) + "</div>")


def kubernetes_section(placement: dict | None) -> str:
    if placement is None:
        return ""
    owner = f", owned by {escape(placement['owner'])}" if placement["owner"] else ""
    flagged = "".join(f"<li>{escape(name)}</li>" for name in placement["flagged_on_node"])
    shared = (f"<p>Also flagged on this node:</p><ul class=\"same-node\">{flagged}</ul>" if flagged
              else "<p>No other flagged entity on this node.</p>")
    return f'<h2>Kubernetes</h2><p>On node {escape(placement["node"])}{owner}.</p>{shared}'


def risk_chart(history: np.ndarray, now: float) -> str:
    line = Line("risk", (history[:, 0] - now) / 60, history[:, 1], colour="#d62728")
    return line_chart([line], "risk timeline", "risk")


def forecast_charts(result: AnalysisResult, index: int) -> str:
    forecast, windows = result.forecast, result.windows
    if forecast is None:
        return "<p>No forecast yet: the forecaster is training or the context is incomplete.</p>"
    charts = []
    past = (windows.timestamps - result.data_time) / 60
    ahead = np.array([0.0, *forecast.horizons]) / 60
    for column, feature in enumerate(windows.features):
        quantiles = forecast.quantiles[index, column]  # [H, 3]
        current = windows.values[index, -1, column]
        limit = result.analysis.features[column].limit
        lines = [Line("observed", past, windows.values[index, :, column], colour="#555"),
                 Line("forecast", ahead, np.r_[current, quantiles[:, 1]], colour="#1f77b4",
                      lower=np.r_[current, quantiles[:, 0]], upper=np.r_[current, quantiles[:, 2]])]
        horizon = format_duration(max(forecast.horizons))
        charts.append(line_chart(lines, f"{feature}: observed and forecast to {horizon}", feature, limit))
    return "".join(charts)


def graph_overview(result: GraphResult) -> str:
    """A graph analysis on the fleet page: its findings in a sentence and the drawing."""
    name = result.analysis.name
    outcome = result.outcome
    return (f'<h2 class="graph-title">{escape(name)} (service graph)</h2><p class="graph-summary">'
            f'{escape(graph_sentence(result))}.</p><p>{len(outcome.graph.services)} services, '
            f'{outcome.graph.weight.size} edges, {int(outcome.betti[0])} part(s), {int(outcome.betti[1])} '
            f'independent loop(s). <a href="/ui/graphs/{escape(name)}">Details</a></p>'
            f'<div class="charts">{service_graph_svg(result)}</div>')


def graph_page(result: GraphResult) -> str:
    outcome, findings = result.outcome, result.outcome.findings
    loops = "".join(f'<li class="loop{" new" if loop.new else ""}">{"new: " if loop.new else "known: "}'
                    f'{escape(", ".join(loop.services))} <small>(weakest link {loop.weakest_link:.3g})</small></li>'
                    for loop in findings.loops) or "<li>none</li>"
    cuts = "".join(f'<li class="cut">{escape(", ".join(cut.services))}'
                   f'{" (no calls at all)" if cut.vanished else ""}</li>' for cut in findings.cuts) or "<li>none</li>"
    changes = "".join(f'<li class="change {"appeared" if c.appeared else "vanished"}">'
                      f'{"new" if c.appeared else "gone"}: {escape(c.caller)} → {escape(c.callee)} '
                      f'<small>({c.weight:.3g})'
                      f'</small></li>' for c in findings.changes) or "<li>none</li>"
    actions = "".join(f"<li>{escape(a)}</li>" for a in graph_actions(result)) or "<li>none needed</li>"
    cap = outcome.diagrams.deepest + 1.0  # never-dying features drawn one level beyond the deepest finite one
    pairs = {d: np.minimum(outcome.diagrams.of_dim(d), cap) for d in outcome.dims}
    return (f'<h1>{escape(result.analysis.name)}: service graph</h1><p class="graph-summary">'
            f'{escape(graph_sentence(result))}.</p><h2>Request loops</h2><ul class="loops">{loops}</ul>'
            f'<h2>Cut off from the main part</h2><ul class="cuts">{cuts}</ul><h2>Edges against the baseline</h2>'
            f'<ul class="changes">{changes}</ul><h2>What to do</h2><ul class="actions">{actions}</ul>'
            f'<div class="charts">{service_graph_svg(result)}'
            + persistence_diagram(pairs, 0.0, f"{result.analysis.name}: persistence diagram (never-dying at {cap:.3g})")
            + barcode(pairs, 0.0, f"{result.analysis.name}: barcode") + "</div>")


def service_graph_svg(result: GraphResult) -> str:
    outcome = result.outcome
    graph, findings = outcome.graph, outcome.findings
    on_loop = np.isfinite(outcome.cyclic)
    in_loop = {s for loop in findings.loops for s in loop.services}
    cut = {s for c in findings.cuts for s in c.services}
    appeared = {(c.caller, c.callee) for c in findings.changes if c.appeared}
    vanished = [(c.caller, c.callee, c.weight) for c in findings.changes if not c.appeared]
    names = list(graph.services) + sorted({s for a, b, _ in vanished for s in (a, b)} - set(graph.services))
    index = {name: i for i, name in enumerate(names)}
    edges = [ServiceEdge(int(a), int(b), "appeared" if (graph.services[a], graph.services[b]) in appeared
                         else "loop" if on_loop[k] else "call",
                         f"{graph.services[a]} → {graph.services[b]}: {graph.weight[k]:.3g}")
             for k, (a, b) in enumerate(zip(graph.caller, graph.callee, strict=True))]
    edges += [ServiceEdge(index[a], index[b], "vanished", f"{a} → {b}: gone (was {w:.3g})") for a, b, w in vanished]
    states = ["cut" if n in cut else "loop" if n in in_loop else "ok" for n in names]
    callers = np.array([e.caller for e in edges], dtype=int)
    callees = np.array([e.callee for e in edges], dtype=int)
    return service_graph(names, states, call_depth(len(names), callers, callees), edges,
                         f"{result.analysis.name}: service graph")


def call_depth(size: int, callers: np.ndarray, callees: np.ndarray) -> np.ndarray:
    """[size] each service's layer: the longest chain of calls leading to it, the services of a loop
    sharing one layer (the graph of loops, each taken as one service, is acyclic)."""
    if size == 0:
        return np.zeros(0, dtype=int)
    matrix = coo_matrix((np.ones(callers.size), (callers, callees)), shape=(size, size))
    group = connected_components(matrix, directed=True, connection="strong")[1]
    between = group[callers] != group[callees]
    source, target = group[callers][between], group[callees][between]
    depth = np.zeros(group.max() + 1, dtype=int)
    for _ in range(depth.size):  # longest path in a DAG: at most one round per group
        deeper = depth.copy()
        np.maximum.at(deeper, target, depth[source] + 1)
        if np.array_equal(deeper, depth):
            break
        depth = deeper
    return depth[group]
