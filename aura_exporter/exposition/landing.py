"""The landing page at `/`: each analysis' state and the entities that stand out, as plain HTML.

Label values and error messages come from monitored systems: every one is escaped.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np

from aura_exporter import __version__
from aura_exporter.exposition.markup import escape
from aura_exporter.snapshot import AnalysisResult, Snapshot
from aura_exporter.topology.summaries import describe_critical

TOP_ENTITIES = 10

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>AURA exporter</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.2em .8em;text-align:left;vertical-align:top}}
table{{border-collapse:collapse}}tr:nth-child(even){{background:#f4f4f4}}</style></head>
<body><h1>AURA exporter</h1><p>Version {version}. Failure prediction for Prometheus: persistent homology,
forecasts and a risk council, exported as metrics.</p>
<ul><li><a href="/ui">Fleet and entities (UI)</a></li><li><a href="{path}">Metrics</a></li>
<li><a href="/-/healthy">Health</a></li>
<li><a href="/-/ready">Readiness</a></li></ul>
<h2>Analyses</h2>
<table><tr><th>analysis</th><th>entities</th><th>fleet clusters (graph: parts)</th><th>last complete cycle</th>
<th>last error</th></tr>
{analyses}
</table>
{standouts}
</body></html>
"""


def render_landing(snapshot: Snapshot, analyses: Sequence[str], errors: Mapping[str, str], telemetry_path: str) -> str:
    rows, standouts = [], []
    for name in analyses:
        result, graph = snapshot.results.get(name), snapshot.graphs.get(name)
        error = escape(errors.get(name, ""))
        if result is not None:
            rows.append(f"<tr><td>{escape(name)}</td><td>{len(result.windows.entities)}</td>"
                        f"<td>{result.topology.fleet.components}</td><td>{_when(result.completed_at)}</td>"
                        f"<td>{error}</td></tr>")
            standouts.append(_standouts(result))
        elif graph is not None:
            rows.append(f"<tr><td>{escape(name)} (<a href=\"/ui/graphs/{escape(name)}\">service graph</a>)</td>"
                        f"<td>{len(graph.outcome.graph.services)} services</td><td>{int(graph.outcome.betti[0])}</td>"
                        f"<td>{_when(graph.completed_at)}</td><td>{error}</td></tr>")
        else:
            rows.append(f"<tr><td>{escape(name)}</td><td>0</td><td></td><td>never</td><td>{error}</td></tr>")
    return _PAGE.format(version=escape(__version__), path=escape(telemetry_path), analyses="\n".join(rows),
                        standouts="\n".join(standouts))


def _when(completed_at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(completed_at))


def _standouts(result: AnalysisResult) -> str:
    topology = result.topology
    order = np.argsort(-topology.drift_zscore, kind="stable")[:TOP_ENTITIES]
    dims = "/".join(f"H{d}" for d in topology.dims)
    rows = []
    for index in order:
        labels = ", ".join(f'{k}="{v}"' for k, v in result.entity_labels(int(index)).items())
        critical = describe_critical(topology.critical[index])
        reading = critical[0].interpretation if critical else "no feature above the noise threshold"
        betti = "/".join(str(int(b)) for b in topology.betti[index])
        rows.append(f"<tr><td>{escape(labels)}</td><td>{topology.drift_zscore[index]:.2f}</td><td>{betti}</td>"
                    f"<td>{topology.fleet.isolation[index]:.2f}</td><td>{escape(reading)}</td></tr>")
    return (f"<h2>{escape(result.analysis.name)}: entities with the largest drift</h2><table><tr><th>entity</th>"
            f"<th>drift z-score</th><th>Betti {dims}</th><th>fleet isolation</th><th>most persistent feature</th></tr>"
            + "\n".join(rows) + "</table>")
