"""/metrics rendering: seconds to write a snapshot as text, for growing fleets. `make bench-exposition`.

A snapshot of N entities (demo analysis: 5 features, forecasts at 4 horizons, 4 agents; about 96
series per entity) is rendered three ways in the same run: AURA's text writer (what every scrape
serves), prometheus_client's generate_latest over the same collector (the previous path), and the
floor: a plain generate_latest of the same number of ready-made samples (one family, labels built
beforehand), which costs only formatting.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest

from aura_exporter.config import parse_config
from aura_exporter.council import CouncilStage
from aura_exporter.exposition.collector import text_exposition
from aura_exporter.exposition.render import _registry
from aura_exporter.forecast.stage import Forecast
from aura_exporter.snapshot import AnalysisResult, SnapshotHolder
from aura_exporter.topology import TopologyStage
from aura_exporter.windows import Windows

ANALYSIS = parse_config(open("aura_exporter/examples/demo.yml").read()).analyses[0]


def snapshot_of(entities: int):
    rng = np.random.default_rng(0)
    windows = Windows(ANALYSIS.name, ("instance",), tuple((f"host-{i:05d}:9100",) for i in range(entities)),
                      tuple(f.name for f in ANALYSIS.features), np.arange(40.0), rng.normal(size=(entities, 40, 5)))
    topology = TopologyStage(ANALYSIS, workers=2).run(windows, now=0.0)
    verdict = CouncilStage(ANALYSIS).run(windows, topology, None, now=0.0)
    forecast = Forecast((900.0, 3600.0, 7200.0, 14400.0), rng.normal(size=(entities, 5, 4, 3)) * 1e6,
                        rng.normal(size=(entities, 5)), rng.random((entities, 5)) * 14400, rng.random((entities, 5)))
    result = dataclasses.replace(AnalysisResult(ANALYSIS, 0.0, time.time(), windows, topology, verdict),
                                 forecast=forecast, model_ready=True)
    return SnapshotHolder().publish(result, ANALYSIS.name, time.time())


class Plain:
    def __init__(self, samples: int):
        self.family = GaugeMetricFamily("plain", "The same number of samples, labels built beforehand.",
                                        labels=["analysis", "instance", "feature"])
        for i in range(samples):
            self.family.add_metric(["node", f"host-{i // 96:05d}:9100", str(i % 96)], float(i))

    def collect(self):
        return [self.family]


def timed(function, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("| entities | series | AURA text writer | prometheus_client over the collector | floor: plain "
          "generate_latest | writer vs floor |")
    print("|---|---|---|---|---|---|")
    for entities in args.entities:
        snapshot = snapshot_of(entities)
        text = text_exposition(snapshot)
        series = sum(1 for line in text.splitlines() if not line.startswith(b"#"))
        plain = CollectorRegistry()
        plain.register(Plain(series))
        ours = timed(lambda s=snapshot: text_exposition(s), args.repeats)
        client = timed(lambda s=snapshot: generate_latest(_registry(s)), args.repeats)
        floor = timed(lambda r=plain: generate_latest(r), args.repeats)
        print(f"| {entities} | {series:,} | {ours:.3f} s | {client:.3f} s | {floor:.3f} s | {ours / floor:.2f}x |")


if __name__ == "__main__":
    main()
