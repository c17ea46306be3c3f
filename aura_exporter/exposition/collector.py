"""A prometheus_client Collector over the latest snapshot: the metric contract of DESIGN.md.

The contract is one table (FAMILIES: each family's values as an [entities, …] array and its extra
labels), read by two writers: the collector (prometheus_client families: OpenMetrics, tests) and
`text_exposition`, the fast path of every scrape. `describe()` returns the families without
samples, so registering the collector runs nothing. Non-finite values (no breach in sight, no
residual yet) are left out rather than exported as NaN.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from aura_exporter.council import DECISIONS
from aura_exporter.durations import format_duration
from aura_exporter.exposition.graph import HELP as GRAPH_HELP
from aura_exporter.exposition.graph import graph_samples
from aura_exporter.snapshot import AnalysisResult, Snapshot

FLOATS_AT_ONCE = 32768  # values written between two chances for the event loop to run (about 15 ms)

HELP = {
    "aura_betti": "Persistent Betti number: features of the dimension that outlive the noise threshold.",
    "aura_persistence_entropy": "Persistence entropy (bits) of the window's diagram.",
    "aura_wasserstein_drift": "1-Wasserstein distance of the window's diagram from the entity's baseline.",
    "aura_drift_zscore": "Summed drift relative to the entity's own recent drift (robust z-score).",
    "aura_fleet_isolation": "Distance at which the entity joins the fleet's majority, in baseline units.",
    "aura_fleet_cluster_size": "Entities in the entity's behaviour cluster (1: it stands alone).",
    "aura_fleet_components": "Behaviour clusters in the fleet (persistent H0 of entities' recent states).",
    "aura_fleet_cluster_threshold": "Distance beyond which entities form separate clusters, in baseline units.",
    "aura_entities_analysed": "Entities analysed in the last cycle.",
    "aura_entities_skipped": "Entities skipped in the last cycle, by reason.",
    "aura_forecast": "Median forecast of the feature at the horizon, in the feature's units.",
    "aura_forecast_lower": "10% quantile of the feature's forecast at the horizon.",
    "aura_forecast_upper": "90% quantile of the feature's forecast at the horizon.",
    "aura_forecast_residual_zscore": "How surprising the newest value was against its forecast (robust z-score).",
    "aura_time_to_breach_seconds": "Forecast time until the feature reaches its limit (absent beyond the horizons).",
    "aura_breach_probability": "Probability that the feature reaches its limit within the longest horizon.",
    "aura_model_ready": "1 once the analysis has warmed-up baselines and a trained forecaster (unless forecasts "
                        "are off; a graph: a baseline).",
    "aura_agent_score": "A council agent's score for the entity, 0..1 (absent while the agent abstains).",
    "aura_agent_vote": "1 when the council agent flags the entity (its score reaches the warn threshold), else 0.",
    "aura_risk_score": "Probability-like risk of a failure within the forecast horizon, 0..1 (the council's).",
    "aura_decision": "The council's decision as a state set: the series of the current decision is 1.",
    "aura_usual_episodes_per_week": "How many times a week normal behaviour is at least as unusual as now, per "
                                    "entity (page budget, learned from the fleet or the entity alone: "
                                    "council.budget_scope; it pages at aura_page_budget_per_week; absent while "
                                    "it learns).",
    "aura_page_budget_per_week": "Pages an entity may send a week on normal behaviour, on average over the fleet "
                                 "when the budget is shared (council.false_pages_per_week).",
    **GRAPH_HELP,
}


@dataclass(frozen=True)
class Family:
    """One per-entity family: its values as [entities, *dims] and, per extra dimension, the label
    and its values (e.g. ("homology_dimension", ("0", "1")))."""

    name: str
    values: Callable[[AnalysisResult], np.ndarray | None]
    extras: Callable[[AnalysisResult], tuple[tuple[str, tuple[str, ...]], ...]] = lambda result: ()


def _dims(result: AnalysisResult) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return (("homology_dimension", tuple(str(d) for d in result.topology.dims)),)


def _agents(result: AnalysisResult) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return (("agent", result.verdict.agents),)


def _features(result: AnalysisResult) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return (("feature", result.windows.features),)


def _horizons(result: AnalysisResult) -> tuple[tuple[str, tuple[str, ...]], ...]:
    horizons = result.forecast.horizons if result.forecast is not None else ()
    return (*_features(result), ("horizon", tuple(format_duration(h) for h in horizons)))


def _quantile(q: int) -> Callable[[AnalysisResult], np.ndarray | None]:
    return lambda r: r.forecast.quantiles[..., q] if r.forecast is not None else None


def _one_hot(decision: np.ndarray) -> np.ndarray:
    return (decision[:, None] == np.arange(len(DECISIONS))[None, :]).astype(np.float64)


# The per-entity families, in exposition order.
FAMILIES = (
    Family("aura_betti", lambda r: r.topology.betti, _dims),
    Family("aura_persistence_entropy", lambda r: r.topology.entropy, _dims),
    Family("aura_wasserstein_drift", lambda r: r.topology.drift, _dims),
    Family("aura_drift_zscore", lambda r: r.topology.drift_zscore),
    Family("aura_fleet_isolation", lambda r: r.topology.fleet.isolation),
    Family("aura_fleet_cluster_size", lambda r: r.topology.fleet.cluster_size),
    Family("aura_agent_score", lambda r: r.verdict.scores, _agents),
    Family("aura_agent_vote", lambda r: r.verdict.votes, _agents),
    Family("aura_risk_score", lambda r: r.verdict.risk),
    Family("aura_decision", lambda r: _one_hot(r.verdict.decision), lambda r: (("decision", DECISIONS),)),
    Family("aura_usual_episodes_per_week", lambda r: r.verdict.usual_per_week),
    Family("aura_forecast", _quantile(1), _horizons),
    Family("aura_forecast_lower", _quantile(0), _horizons),
    Family("aura_forecast_upper", _quantile(2), _horizons),
    Family("aura_forecast_residual_zscore", lambda r: r.forecast.residual_zscore if r.forecast else None, _features),
    Family("aura_time_to_breach_seconds", lambda r: r.forecast.time_to_breach if r.forecast else None, _features),
    Family("aura_breach_probability", lambda r: r.forecast.breach_probability if r.forecast else None, _features),
)


def analysis_samples(result: AnalysisResult) -> list[tuple[str, dict[str, str], float]]:
    """The few per-analysis samples."""
    name = result.analysis.name
    samples = [("aura_entities_analysed", {"analysis": name}, float(len(result.windows.entities)))]
    samples += [("aura_entities_skipped", {"analysis": name, "reason": reason}, float(count))
                for reason, count in result.windows.skipped.items()]
    samples += [("aura_fleet_components", {"analysis": name}, float(result.topology.fleet.components)),
                ("aura_fleet_cluster_threshold", {"analysis": name}, float(result.topology.fleet.threshold)),
                ("aura_model_ready", {"analysis": name}, 1.0 if result.model_ready else 0.0)]
    if result.analysis.council.false_pages_per_week:
        samples.append(("aura_page_budget_per_week", {"analysis": name}, result.analysis.council.false_pages_per_week))
    return [s for s in samples if math.isfinite(s[2])]


def per_analysis_samples(snapshot: Snapshot) -> list[tuple[str, dict[str, str], float]]:
    """The few samples of each analysis as a whole, and every sample of its graphs, in exposition order."""
    samples = [sample for result in snapshot.results.values() for sample in analysis_samples(result)]
    samples += [sample for result in snapshot.graphs.values() for sample in graph_samples(result)]
    return [s for s in samples if math.isfinite(s[2])]


def entity_labels(result: AnalysisResult) -> list[dict[str, str]]:
    windows = result.windows
    return [{"analysis": result.analysis.name, **dict(zip(windows.label_names, key, strict=True))}
            for key in windows.entities]


def family_values(family: Family, result: AnalysisResult) -> tuple[np.ndarray, list[dict[str, str]]] | None:
    """[entities, combinations] values and the extra labels of each combination, or None when the
    result has no such values (no forecaster yet)."""
    values = family.values(result)
    if values is None:
        return None
    extras = family.extras(result)
    combinations = [dict(zip([label for label, _ in extras], chosen, strict=True))
                    for chosen in itertools.product(*(choices for _, choices in extras))]
    return np.asarray(values, dtype=np.float64).reshape(len(values), -1), combinations


class SnapshotCollector(Collector):
    def __init__(self, snapshot: Callable[[], Snapshot]):
        self._snapshot = snapshot

    def describe(self) -> Iterable[Metric]:
        return list(_families().values())

    def collect(self) -> Iterable[Metric]:
        families = _families()
        snapshot = self._snapshot()
        results = list(snapshot.results.values())
        for name, labels, value in per_analysis_samples(snapshot):
            families[name].samples.append(Sample(name, labels, value))
        for family in FAMILIES:
            for result in results:
                found = family_values(family, result)
                if found is None:
                    continue
                values, combinations = found
                for labels, row in zip(entity_labels(result), values, strict=True):
                    for extra, value in zip(combinations, row, strict=True):
                        if math.isfinite(value):
                            families[family.name].samples.append(Sample(family.name, {**labels, **extra}, value))
        return list(families.values())


def _families() -> dict[str, GaugeMetricFamily]:
    return {name: GaugeMetricFamily(name, doc) for name, doc in HELP.items()}


def text_exposition(snapshot: Snapshot) -> bytes:
    """The snapshot in the Prometheus text format (TextWriter, without its memory of earlier snapshots)."""
    return TextWriter().write(snapshot)


class TextWriter:
    """The snapshot in the Prometheus text format, byte for byte what prometheus_client's
    generate_latest makes of SnapshotCollector, several times faster: label strings are escaped
    once per entity and each family is written from its arrays.

    Each analysis' per-entity lines are kept until its result changes: a snapshot changes one analysis
    at a time, and a frequent small analysis (a service graph every 30 s) must not re-write a 10,000-host
    one's lines (seconds of Python) at each of its cycles. Safe from several threads: an entry is replaced
    whole, and at worst two renders write the same analysis' lines.

    It is OpenMetrics too, up to the closing '# EOF': for gauges the two writers of prometheus_client
    differ only in escaping '"' in HELP, which no HELP here has (tests/test_exposition.py compares both)."""

    def __init__(self) -> None:
        self._written: dict[str, tuple[AnalysisResult, dict[str, bytes]]] = {}

    def write(self, snapshot: Snapshot) -> bytes:
        per_analysis: dict[str, list[str]] = {name: [] for name in HELP}
        for name, labels, value in per_analysis_samples(snapshot):
            per_analysis[name].append(f"{name}{{{_label_text(labels)}}} {floatToGoString(value)}\n")
        entities = [self._entity_lines(result) for result in snapshot.results.values()]
        self._written = {name: kept for name, kept in self._written.items() if name in snapshot.results}
        parts = []
        for name, doc in HELP.items():
            parts.append(f"# HELP {name} {_escape_help(doc)}\n# TYPE {name} gauge\n{''.join(per_analysis[name])}"
                         .encode())
            parts += [lines[name] for lines in entities if name in lines]
        return b"".join(parts)

    def _entity_lines(self, result: AnalysisResult) -> dict[str, bytes]:
        written = self._written.get(result.analysis.name)
        if written is None or written[0] is not result:
            written = self._written[result.analysis.name] = (result, result_lines(result))
        return written[1]


def result_lines(result: AnalysisResult) -> dict[str, bytes]:
    """Each per-entity family's sample lines for one analysis' result (families without values left out)."""
    bases = [[f'{k}="{_escape(v)}"' for k, v in labels.items()] for labels in entity_labels(result)]
    written = {}
    for family in FAMILIES:
        found = family_values(family, result)
        if found is None or not bases:
            continue
        values, combinations = found
        # prometheus_client writes label names sorted: one template per family places the
        # entity's and the combination's escaped `name="value"` pieces in that order.
        names = [piece.split("=", 1)[0] for piece in bases[0]] + list(combinations[0])
        template = ",".join(f"{{{names.index(n)}}}" for n in sorted(names))
        extras = [[f'{k}="{_escape(v)}"' for k, v in extra.items()] for extra in combinations]
        rows, columns = np.nonzero(np.isfinite(values))
        written[family.name] = "".join(
            [f"{family.name}{{{template.format(*bases[row], *extras[column])}}} {text}\n"
             for row, column, text in zip(rows.tolist(), columns.tolist(), _go_floats(values[rows, columns]),
                                          strict=True)]).encode()
    return written


def _go_floats(finite: np.ndarray) -> list[str]:
    """floatToGoString of each finite value, without its per-value checks: Python's repr is Go's
    text except from 1e6 up, where Go switches to an exponent sooner (those few go the slow way). In pieces:
    one `map` over 600,000 values holds the interpreter for a third of a second, and scrapes wait on it."""
    texts: list[str] = []
    for start in range(0, len(finite), FLOATS_AT_ONCE):
        texts += map(repr, finite[start:start + FLOATS_AT_ONCE].tolist())
    for index in np.flatnonzero(finite >= 1e6).tolist():
        texts[index] = floatToGoString(finite[index])
    return texts


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _escape_help(doc: str) -> str:
    return doc.replace("\\", r"\\").replace("\n", r"\n")


def _label_text(labels: dict[str, str]) -> str:
    return ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
