"""Small server-rendered SVG charts for the built-in UI: no JavaScript library, no build step.

Every text that reaches a chart (labels, titles) is escaped here; callers pass plain strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aura_exporter.exposition.markup import escape

WIDTH, HEIGHT, MARGIN = 360, 240, 36
DIM_COLOURS = {0: "#1f77b4", 1: "#d62728", 2: "#2ca02c"}
DECISION_COLOURS = {"monitor": "#2ca02c", "warn": "#ff7f0e", "critical": "#d62728"}


def _frame(body: str, title: str, width: int = WIDTH, height: int = HEIGHT, kind: str = "chart") -> str:
    return (f'<svg class="{kind}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" role="img"><title>{escape(title)}</title>{body}</svg>')


@dataclass(frozen=True)
class Scale:
    low: float
    high: float
    start: float  # pixels
    end: float

    @classmethod
    def fit(cls, values: np.ndarray, start: float, end: float) -> Scale:
        finite = values[np.isfinite(values)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if high - low < 1e-12:
            low, high = low - 0.5, high + 0.5
        return cls(low, high, start, end)

    def __call__(self, value: float) -> float:
        return self.start + (value - self.low) / (self.high - self.low) * (self.end - self.start)


def _axes(x: Scale, y: Scale, x_label: str, y_label: str) -> str:
    return (f'<line x1="{x.start}" y1="{y.start}" x2="{x.end}" y2="{y.start}" stroke="#888"/>'
            f'<line x1="{x.start}" y1="{y.start}" x2="{x.start}" y2="{y.end}" stroke="#888"/>'
            f'<text x="{x.end}" y="{y.start + 16}" text-anchor="end" font-size="10">{escape(x_label)} '
            f'{x.low:.3g}…{x.high:.3g}</text>'
            f'<text x="{x.start + 4}" y="{y.end + 10}" font-size="10">{escape(y_label)} '
            f'{y.low:.3g}…{y.high:.3g}</text>')


def persistence_diagram(pairs: dict[int, np.ndarray], threshold: float, title: str) -> str:
    """Birth against death per homology dimension, the diagonal, and the noise band below `threshold`."""
    every = np.concatenate([p.ravel() for p in pairs.values()] + [np.array([0.0, threshold])])
    top = float(every.max()) * 1.05 or 1.0
    x = Scale(0.0, top, MARGIN, WIDTH - 10)
    y = Scale(0.0, top, HEIGHT - MARGIN, 10)
    body = [_axes(x, y, "birth", "death"),
            f'<line x1="{x(0)}" y1="{y(0)}" x2="{x(top)}" y2="{y(top)}" stroke="#bbb"/>',
            f'<polygon points="{x(0)},{y(0)} {x(top)},{y(top)} {x(top)},{y(top - threshold)} '
            f'{x(threshold)},{y(0)}" fill="#eee"><title>noise: persistence below {threshold:.3g}</title></polygon>']
    for dim, points in sorted(pairs.items()):
        for birth, death in points:
            body.append(f'<circle class="point" data-dimension="{dim}" cx="{x(birth):.1f}" cy="{y(death):.1f}" r="3" '
                        f'fill="{DIM_COLOURS.get(dim, "#555")}"><title>H{dim}: {birth:.3g} → {death:.3g}</title>'
                        f'</circle>')
    return _frame("".join(body) + _legend(sorted(pairs)), title, kind="diagram")


def barcode(pairs: dict[int, np.ndarray], threshold: float, title: str) -> str:
    """One bar per feature, longest first within each dimension; bars under the threshold are faint."""
    bars = [(dim, b, d) for dim, points in sorted(pairs.items())
            for b, d in sorted(points.tolist(), key=lambda p: p[0] - p[1])]
    height = max(HEIGHT, 20 + 4 * len(bars))
    top = max([d for _, _, d in bars], default=1.0) or 1.0
    x = Scale(0.0, top, MARGIN, WIDTH - 10)
    body = []
    for row, (dim, birth, death) in enumerate(bars):
        opacity = 1.0 if death - birth > threshold else 0.3
        body.append(f'<rect class="bar" data-dimension="{dim}" x="{x(birth):.1f}" y="{10 + 4 * row}" '
                    f'width="{max(1.0, x(death) - x(birth)):.1f}" height="3" fill="{DIM_COLOURS.get(dim, "#555")}" '
                    f'opacity="{opacity}"><title>H{dim}: {birth:.3g} → {death:.3g}</title></rect>')
    return _frame("".join(body) + _legend(sorted(pairs)), title, height=height, kind="barcode")


def _legend(dims: Sequence[int]) -> str:
    return "".join(f'<text x="{WIDTH - 40}" y="{14 + 12 * i}" font-size="10" fill="{DIM_COLOURS.get(d, "#555")}">'
                   f'H{d}</text>' for i, d in enumerate(dims))


@dataclass(frozen=True)
class Line:
    name: str
    times: np.ndarray
    values: np.ndarray
    colour: str = "#1f77b4"
    lower: np.ndarray | None = None  # a band around the line, e.g. a forecast's 10–90% quantiles
    upper: np.ndarray | None = None


def line_chart(lines: Sequence[Line], title: str, y_label: str, limit: float | None = None) -> str:
    """Lines (and bands) against time in minutes relative to now."""
    times = np.concatenate([line.times for line in lines]) if lines else np.zeros(1)
    values = np.concatenate([v for line in lines for v in (line.values, line.lower, line.upper) if v is not None]
                            + ([np.array([limit])] if limit is not None else []) + [np.zeros(0)])
    x = Scale.fit(times, MARGIN, WIDTH - 10)
    y = Scale.fit(values, HEIGHT - MARGIN, 10)
    body = [_axes(x, y, "minutes from now", y_label)]
    if limit is not None:
        body.append(f'<line x1="{x.start}" y1="{y(limit):.1f}" x2="{x.end}" y2="{y(limit):.1f}" stroke="#d62728" '
                    f'stroke-dasharray="4 3"><title>limit {limit:.3g}</title></line>')
    for line in lines:
        if line.lower is not None and line.upper is not None:
            edge = [f"{x(t):.1f},{y(v):.1f}" for t, v in zip(line.times, line.upper, strict=True)]
            edge += [f"{x(t):.1f},{y(v):.1f}" for t, v in zip(line.times[::-1], line.lower[::-1], strict=True)]
            body.append(f'<polygon points="{" ".join(edge)}" fill="{line.colour}" opacity="0.2"/>')
        finite = np.isfinite(line.values)
        points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(line.times[finite], line.values[finite],
                                                                     strict=True))
        body.append(f'<polyline points="{points}" fill="none" stroke="{line.colour}" stroke-width="1.5">'
                    f'<title>{escape(line.name)}</title></polyline>')
        if finite.sum() < 3:  # too few points to see a line
            body += [f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="3" fill="{line.colour}"/>'
                     for t, v in zip(line.times[finite], line.values[finite], strict=True)]
    return _frame("".join(body), title)


@dataclass(frozen=True)
class Node:
    label: str
    href: str
    decision: str
    risk: float


def fleet_graph(nodes: Sequence[Node], positions: np.ndarray, edges: Sequence[tuple[int, int]], title: str,
                shared: Sequence[tuple[int, int]] = ()) -> str:
    """Entities as nodes placed by their behaviour, edges from the fleet's single-linkage tree, and
    dashed `shared` edges between flagged entities on one Kubernetes node."""
    size = 480
    x = Scale.fit(positions[:, 0] if len(nodes) else np.zeros(1), 20, size - 20)
    y = Scale.fit(positions[:, 1] if len(nodes) else np.zeros(1), size - 20, 20)

    def line(a: int, b: int, style: str) -> str:
        return (f'<line x1="{x(positions[a, 0]):.1f}" y1="{y(positions[a, 1]):.1f}" x2="{x(positions[b, 0]):.1f}" '
                f'y2="{y(positions[b, 1]):.1f}" {style}/>')

    body = [line(a, b, 'stroke="#ccc"') for a, b in edges]
    body += [line(a, b, 'class="shared-node" stroke="#9467bd" stroke-dasharray="5 3"') for a, b in shared]
    for i, node in enumerate(nodes):
        body.append(f'<a href="{escape(node.href)}"><circle class="node" cx="{x(positions[i, 0]):.1f}" '
                    f'cy="{y(positions[i, 1]):.1f}" r="{4 + 6 * node.risk:.1f}" '
                    f'fill="{DECISION_COLOURS.get(node.decision, "#555")}"><title>{escape(node.label)}: '
                    f'{escape(node.decision)}, risk {node.risk:.0%}</title></circle></a>')
    return _frame("".join(body), title, width=size, height=size, kind="fleet-graph")


@dataclass(frozen=True)
class Span:
    start: float
    end: float
    kind: str  # "incident" (labeled) or "alert" (would have fired)
    note: str = ""


SPAN_COLOURS = {"incident": "#999", "alert": "#d62728"}
TIMELINE_WIDTH, TIMELINE_HEIGHT = 960, 170


def timeline(times: np.ndarray, values: np.ndarray, risk: np.ndarray, spans: Sequence[Span], title: str) -> str:
    """A series (blue, its own scale) and its risk (orange, 0–1) against days, labeled incidents shaded
    grey and alerts red. Long series are reduced to at most 1,000 buckets, keeping each bucket's
    highest risk so that no peak disappears."""
    times, values, risk = _buckets(times, values, risk, 1000)
    days = (times - times[0]) / 86400.0 if len(times) else times
    x = Scale.fit(days, MARGIN, TIMELINE_WIDTH - 10)
    y = Scale.fit(values, TIMELINE_HEIGHT - MARGIN, 10)
    r = Scale(0.0, 1.0, TIMELINE_HEIGHT - MARGIN, 10)
    body = []
    for span in spans:
        left, right = x((span.start - times[0]) / 86400.0), x((span.end - times[0]) / 86400.0)
        body.append(f'<rect class="{escape(span.kind)}" x="{left:.1f}" y="10" width="{max(1.5, right - left):.1f}" '
                    f'height="{TIMELINE_HEIGHT - MARGIN - 10}" fill="{SPAN_COLOURS.get(span.kind, "#999")}" '
                    f'opacity="0.25"><title>{escape(span.kind)} {escape(span.note)}</title></rect>')
    body.append(_axes(x, y, "days", "value"))
    for series, scale, colour, name in ((values, y, "#1f77b4", "value"), (risk, r, "#ff7f0e", "risk")):
        finite = np.isfinite(series)
        points = " ".join(f"{x(t):.1f},{scale(v):.1f}" for t, v in zip(days[finite], series[finite], strict=True))
        body.append(f'<polyline class="{name}" points="{points}" fill="none" stroke="{colour}" stroke-width="1">'
                    f'<title>{name}</title></polyline>')
    return _frame("".join(body), title, width=TIMELINE_WIDTH, height=TIMELINE_HEIGHT, kind="timeline")


def _buckets(times: np.ndarray, values: np.ndarray, risk: np.ndarray, most: int):
    if len(times) <= most:
        return times, values, risk
    edges = np.linspace(0, len(times), most + 1).astype(int)
    starts = edges[:-1]
    return (times[starts], np.array([np.nanmean(values[a:b]) if np.isfinite(values[a:b]).any() else np.nan
                                     for a, b in zip(starts, edges[1:], strict=True)]),
            np.maximum.reduceat(np.nan_to_num(risk), starts))


@dataclass(frozen=True)
class ServiceEdge:
    caller: int
    callee: int
    kind: str  # "call", "loop" (on a request loop), "appeared" or "vanished" (against the baseline)
    note: str


SERVICE_EDGE_STYLES = {"call": 'stroke="#bbb"', "loop": 'stroke="#d62728" stroke-width="2"',
                       "appeared": 'stroke="#ff7f0e" stroke-dasharray="6 3"',
                       "vanished": 'stroke="#999" stroke-dasharray="2 3"'}
SERVICE_COLOURS = {"ok": "#2ca02c", "loop": "#d62728", "cut": "#7f7f7f"}


def service_graph(names: Sequence[str], states: Sequence[str], layers: np.ndarray, edges: Sequence[ServiceEdge],
                  title: str) -> str:
    """Services in layers (callers left of their callees), calls as arrows; loops red, services cut off
    grey, edges new against the baseline dashed orange, vanished ones dotted grey."""
    rows = np.zeros(len(names), dtype=int)
    for layer in np.unique(layers):
        members = np.flatnonzero(layers == layer)
        rows[members] = np.arange(members.size)
    columns = int(layers.max()) + 1 if len(names) else 1
    width, height = max(480, 150 * columns + 60), max(160, 24 * (int(rows.max()) + 1 if len(names) else 1) + 50)
    x = 30 + 150 * layers.astype(float)
    y = 40 + 24 * rows.astype(float)
    body = ['<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" '
            'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#777"/></marker></defs>']
    for edge in edges:
        (x1, y1), (x2, y2) = (x[edge.caller], y[edge.caller]), (x[edge.callee], y[edge.callee])
        # calls within one layer (a loop's services share one) bow out, downward calls to the left and upward
        # ones to the right (a ⇄ b stays two arcs), further the further apart
        bend = 0.0 if x1 != x2 else (12 + 0.4 * abs(y2 - y1)) * (-1 if y2 > y1 else 1)
        body.append(f'<path class="edge {edge.kind}" d="M {x1:.1f} {y1:.1f} Q {(x1 + x2) / 2 + bend:.1f} '
                    f'{(y1 + y2) / 2:.1f} {x2:.1f} {y2:.1f}" fill="none" {SERVICE_EDGE_STYLES[edge.kind]} '
                    f'marker-end="url(#arrow)"><title>{escape(edge.note)}</title></path>')
    for i, (name, state) in enumerate(zip(names, states, strict=True)):
        body.append(f'<g class="service {state}"><circle cx="{x[i]:.1f}" cy="{y[i]:.1f}" r="5" '
                    f'fill="{SERVICE_COLOURS[state]}"/><text x="{x[i] + 8:.1f}" y="{y[i] + 4:.1f}" '
                    f'font-size="11">{escape(name)}</text></g>')
    return _frame("".join(body), title, width=width, height=height, kind="service-graph")
