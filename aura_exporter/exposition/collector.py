"""A prometheus_client Collector over the latest snapshot: the metric contract of DESIGN.md.

`describe()` returns the families without samples, so registering the collector runs nothing;
`collect()` builds them from the snapshot it is given, without any computation of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from aura_exporter.snapshot import AnalysisResult, Snapshot

FAMILIES = {
    "aura_betti": ("Persistent Betti number: features of the dimension that outlive the noise threshold.", True),
    "aura_persistence_entropy": ("Persistence entropy (bits) of the window's diagram.", True),
    "aura_wasserstein_drift": ("1-Wasserstein distance of the window's diagram from the entity's baseline.", True),
    "aura_drift_zscore": ("Summed drift relative to the entity's own recent drift (robust z-score).", False),
    "aura_fleet_isolation": ("Distance at which the entity joins the fleet's majority, in baseline units.", False),
}


class SnapshotCollector(Collector):
    def __init__(self, snapshot: Callable[[], Snapshot]):
        self._snapshot = snapshot

    def describe(self) -> Iterable[Metric]:
        return list(self._families().values())

    def collect(self) -> Iterable[Metric]:
        families = self._families()
        for result in self._snapshot().results.values():
            _add_result(families, result)
        return list(families.values())

    @staticmethod
    def _families() -> dict[str, GaugeMetricFamily]:
        families = {name: GaugeMetricFamily(name, doc) for name, (doc, _) in FAMILIES.items()}
        families["aura_fleet_components"] = GaugeMetricFamily(
            "aura_fleet_components", "Behaviour clusters in the fleet (persistent H0 of entities' recent states).")
        families["aura_entities_analysed"] = GaugeMetricFamily(
            "aura_entities_analysed", "Entities analysed in the last cycle.")
        families["aura_entities_skipped"] = GaugeMetricFamily(
            "aura_entities_skipped", "Entities skipped in the last cycle, by reason.")
        return families


def _add_result(families: dict[str, GaugeMetricFamily], result: AnalysisResult) -> None:
    name = result.analysis.name
    topology = result.topology
    names = ("analysis", *result.windows.label_names)
    for index, key in enumerate(result.windows.entities):
        values = (name, *key)
        per_dim = (("aura_betti", topology.betti), ("aura_persistence_entropy", topology.entropy),
                   ("aura_wasserstein_drift", topology.drift))
        for metric, array in per_dim:
            for column, dim in enumerate(topology.dims):
                families[metric].samples.append(_sample(metric, names + ("homology_dimension",),
                                                        values + (str(dim),), array[index, column]))
        families["aura_drift_zscore"].samples.append(
            _sample("aura_drift_zscore", names, values, topology.drift_zscore[index]))
        families["aura_fleet_isolation"].samples.append(
            _sample("aura_fleet_isolation", names, values, topology.fleet.isolation[index]))
    families["aura_fleet_components"].samples.append(
        _sample("aura_fleet_components", ("analysis",), (name,), topology.fleet.components))
    families["aura_entities_analysed"].samples.append(
        _sample("aura_entities_analysed", ("analysis",), (name,), len(result.windows.entities)))
    for reason, count in result.windows.skipped.items():
        families["aura_entities_skipped"].samples.append(
            _sample("aura_entities_skipped", ("analysis", "reason"), (name, reason), count))


def _sample(metric: str, names: tuple[str, ...], values: tuple[str, ...], value: float) -> Sample:
    return Sample(metric, dict(zip(names, values, strict=True)), float(np.float64(value)))
