"""The backtest's HTML report: one timeline per entity (its value, its risk, the alerts that would
have fired, the labeled incidents), riskiest first, and the alerts' table. Self-contained (inline
SVG, no script); every label value is escaped."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aura_exporter.backtest.labels import Incident
from aura_exporter.backtest.outputs import Scored, iso
from aura_exporter.backtest.replay import Alert
from aura_exporter.config import Analysis
from aura_exporter.exposition.markup import escape
from aura_exporter.exposition.svg import Span, timeline
from aura_exporter.windows import EntityKey

MOST_ENTITIES = 60
STYLE = ("body{font-family:sans-serif;margin:2em;color:#222}h2{margin-top:2em}td,th{padding:2px 8px;"
         "text-align:left;font-size:13px}table{border-collapse:collapse}tr:nth-child(even){background:#f4f4f4}"
         ".legend span{margin-right:1.5em}")


def write_report(path: Path, analysis: Analysis, scored: dict[EntityKey, Scored], found: list[Alert],
                 incidents: list[Incident], shifts: dict[EntityKey, float]) -> None:
    names = analysis.entity_labels
    ranked = sorted(scored.items(), key=lambda item: -float(np.max(item[1].risk, initial=0.0)))
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>AURA backtest: {escape(analysis.name)}</title>"
             f"<style>{STYLE}</style></head><body><h1>Backtest of analysis {escape(analysis.name)}</h1>",
             f"<p>{len(scored)} entities, {len(found)} alerts would have fired, {len(incidents)} labeled incidents."
             " <span class='legend'><span style='color:#1f77b4'>value</span><span style='color:#ff7f0e'>risk "
             "(0–1)</span><span style='color:#d62728'>alert</span><span style='color:#999'>incident</span></span>"
             "</p>"]
    if len(ranked) > MOST_ENTITIES:
        parts.append(f"<p>The {MOST_ENTITIES} riskiest entities are drawn; scores.csv has them all.</p>")
    for key, s in ranked[:MOST_ENTITIES]:
        labels = dict(zip(names, key, strict=True))
        title = ", ".join(f"{k}={v}" for k, v in labels.items())
        spans = [Span(i.start, i.end, "incident", i.name) for i in incidents if i.matches(labels)]
        shift = shifts.get(key, 0.0)
        spans += [Span(a.start - shift, (a.end if a.end is not None else a.start + analysis.interval) - shift,
                       "alert", f"{a.severity}: {a.explanation}") for a in found if a.entity == labels]
        if len(s.rows.times):
            parts.append(f"<h2>{escape(title)}</h2>" + timeline(s.rows.times, s.rows.values, s.risk, spans, title))
    parts.append("<h2>Alerts that would have fired</h2><table><tr><th>start</th><th>end</th><th>entity</th>"
                 "<th>severity</th><th>explanation</th></tr>")
    for alert in found:
        shift = shifts.get(tuple(alert.entity[n] for n in names), 0.0)
        end = iso(alert.end - shift) if alert.end is not None else "still active"
        parts.append(f"<tr><td>{iso(alert.start - shift)}</td><td>{end}</td><td>{escape(alert.entity)}</td>"
                     f"<td>{escape(alert.severity)}</td><td>{escape(alert.explanation)}</td></tr>")
    parts.append("</table></body></html>")
    path.write_text("".join(parts), encoding="utf-8")
