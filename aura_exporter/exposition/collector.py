"""A prometheus_client Collector over the latest snapshot: the metric contract of DESIGN.md.

`describe()` returns the families without samples, so registering the collector runs nothing;
`collect()` builds them from the snapshot it is given, without any computation of its own.
Non-finite values (no breach in sight, no residual yet) are left out rather than exported as NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from aura_exporter.council import DECISIONS, Verdict
from aura_exporter.durations import format_duration
from aura_exporter.forecast.stage import Forecast
from aura_exporter.snapshot import AnalysisResult, Snapshot

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
    "aura_model_ready": "1 once the analysis has warmed-up baselines and a trained forecaster.",
    "aura_agent_score": "A council agent's score for the entity, 0..1 (absent while the agent abstains).",
    "aura_agent_vote": "1 when the council agent flags the entity (its score reaches the warn threshold), else 0.",
    "aura_risk_score": "Probability-like risk of a failure within the forecast horizon, 0..1 (the council's).",
    "aura_decision": "The council's decision as a state set: the series of the current decision is 1.",
}


class SnapshotCollector(Collector):
    def __init__(self, snapshot: Callable[[], Snapshot]):
        self._snapshot = snapshot

    def describe(self) -> Iterable[Metric]:
        return list(_families().values())

    def collect(self) -> Iterable[Metric]:
        families = _families()
        for result in self._snapshot().results.values():
            _Writer(families, result).write()
        return list(families.values())


def _families() -> dict[str, GaugeMetricFamily]:
    return {name: GaugeMetricFamily(name, doc) for name, doc in HELP.items()}


class _Writer:
    """Appends one analysis result's samples to the families."""

    def __init__(self, families: dict[str, GaugeMetricFamily], result: AnalysisResult):
        self.families = families
        self.result = result
        self.name = result.analysis.name

    def add(self, metric: str, labels: dict[str, str], value: float) -> None:
        value = float(value)
        if math.isfinite(value):
            self.families[metric].samples.append(Sample(metric, labels, value))

    def write(self) -> None:
        windows = self.result.windows
        self.add("aura_entities_analysed", {"analysis": self.name}, len(windows.entities))
        for reason, count in windows.skipped.items():
            self.add("aura_entities_skipped", {"analysis": self.name, "reason": reason}, count)
        self.add("aura_fleet_components", {"analysis": self.name}, self.result.topology.fleet.components)
        self.add("aura_fleet_cluster_threshold", {"analysis": self.name}, self.result.topology.fleet.threshold)
        self.add("aura_model_ready", {"analysis": self.name}, 1.0 if self.result.model_ready else 0.0)
        for index, key in enumerate(windows.entities):
            labels = {"analysis": self.name, **dict(zip(windows.label_names, key, strict=True))}
            self._topology(index, labels)
            self._council(self.result.verdict, index, labels)
            if self.result.forecast is not None:
                self._forecast(self.result.forecast, index, labels)

    def _topology(self, index: int, labels: dict[str, str]) -> None:
        topology = self.result.topology
        for column, dim in enumerate(topology.dims):
            with_dim = {**labels, "homology_dimension": str(dim)}
            self.add("aura_betti", with_dim, topology.betti[index, column])
            self.add("aura_persistence_entropy", with_dim, topology.entropy[index, column])
            self.add("aura_wasserstein_drift", with_dim, topology.drift[index, column])
        self.add("aura_drift_zscore", labels, topology.drift_zscore[index])
        self.add("aura_fleet_isolation", labels, topology.fleet.isolation[index])
        self.add("aura_fleet_cluster_size", labels, topology.fleet.cluster_size[index])

    def _council(self, verdict: Verdict, index: int, labels: dict[str, str]) -> None:
        for column, agent in enumerate(verdict.agents):
            with_agent = {**labels, "agent": agent}
            self.add("aura_agent_score", with_agent, verdict.scores[index, column])
            self.add("aura_agent_vote", with_agent, verdict.votes[index, column])
        self.add("aura_risk_score", labels, verdict.risk[index])
        decided = int(verdict.decision[index])
        for level, decision in enumerate(DECISIONS):
            self.add("aura_decision", {**labels, "decision": decision}, 1.0 if level == decided else 0.0)

    def _forecast(self, forecast: Forecast, index: int, labels: dict[str, str]) -> None:
        for column, feature in enumerate(self.result.windows.features):
            with_feature = {**labels, "feature": feature}
            for h, horizon in enumerate(forecast.horizons):
                with_horizon = {**with_feature, "horizon": format_duration(horizon)}
                lower, median, upper = forecast.quantiles[index, column, h]
                self.add("aura_forecast", with_horizon, median)
                self.add("aura_forecast_lower", with_horizon, lower)
                self.add("aura_forecast_upper", with_horizon, upper)
            self.add("aura_forecast_residual_zscore", with_feature, forecast.residual_zscore[index, column])
            self.add("aura_time_to_breach_seconds", with_feature, forecast.time_to_breach[index, column])
            self.add("aura_breach_probability", with_feature, forecast.breach_probability[index, column])
