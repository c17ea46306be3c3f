"""One full cycle, stage by stage, next to each stage's floor. `make bench-cycle`.

    python bench/full_cycle.py [--entities 1000 10000] [--features 8] [--steps 120] [--repeat 2]

A fleet built in memory (the replay fleet's shapes, 8 features, 120 steps) goes through what a
cycle does after the PromQL round trip: parsing the query_range answers (one JSON document per
feature, values as strings, as Prometheus sends them; after the first cycle only the steps the window
cache lacks, an interval and two re-fetched steps, as the live cycle asks; `--whole-windows` fetches
every window whole, as before the cache), windows, topology (its persistence, and apart from it the
summaries: scaling, noise thresholds, Betti, entropy, drift, fleet, novelty), forecast (a CfC of the
default size with untrained weights: the same arithmetic), council, and rendering the snapshot for
/metrics. Floors, measured in the same run: json.loads of the same answers; giotto-ph's raw
ripser_parallel on the same clouds (one process, and split ideally over the cores); one batched
forward pass of the forecaster; prometheus_client's plain generate_latest of as many ready-made
samples. Then the memory the analysis keeps per entity (baselines, decisions, residuals, risk
history), measured with tracemalloc after warm cycles. Figures only: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
import tracemalloc

import torch
from exposition_speed import Plain
from forecast_speed import synchronise
from gph import ripser_parallel
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from topology_cycle import fleet_windows

from aura_exporter.config import Analysis, Feature, TopologyConfig
from aura_exporter.council import CouncilStage
from aura_exporter.exposition.render import render_snapshot
from aura_exporter.exposition.ui import RiskHistory
from aura_exporter.forecast.manager import build_trained, model_shape
from aura_exporter.forecast.model import Forecaster, pick_device
from aura_exporter.forecast.stage import ForecastStage, model_inputs, no_seasons
from aura_exporter.forecast.train import autocast
from aura_exporter.snapshot import AnalysisResult, SnapshotHolder
from aura_exporter.sources.base import RangeResult
from aura_exporter.sources.parse import parse_matrix
from aura_exporter.topology import TopologyStage
from aura_exporter.topology.stage import coarsen, delay_embed
from aura_exporter.window_cache import WindowCache
from aura_exporter.windows import Context, step_grid

END = 1_764_000_000.0


def analysis_of(features: int, steps: int, max_points: int = 0) -> Analysis:
    return Analysis(name="bench", entity_labels=("instance",), step=15, window=15.0 * steps, interval=60,
                    features=tuple(Feature(f"f{f}", "up", "resources") for f in range(features)),
                    topology=TopologyConfig(max_points=max_points))


def answers(analysis: Analysis, end: float, entities: int, start: float | None = None) -> list[bytes]:
    """The query_range answers Prometheus would send for the window ending at `end`, from `start` on."""
    grid = step_grid(analysis, end)
    windows = fleet_windows(entities, len(analysis.features), analysis.steps, float(grid[-1]))
    asked = grid >= (grid[0] if start is None else start)
    documents = []
    for f in range(len(analysis.features)):
        result = [{"metric": {"__name__": f"f{f}", "instance": key[0], "job": "node"},
                   "values": [[float(t), repr(float(v))] for t, v in zip(grid[asked], windows.values[i, asked, f],
                                                                        strict=True)]}
                  for i, key in enumerate(windows.entities)]
        documents.append(json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}},
                                    separators=(",", ":")).encode())  # compact, as Prometheus writes it
    return documents


class Cycle:
    def __init__(self, analysis: Analysis, workers: int):
        self.analysis = analysis
        self.topology = TopologyStage(analysis, workers)
        self.forecast = ForecastStage(analysis)
        self.forecast.install(build_trained(analysis, Forecaster(model_shape(analysis)).state_dict(), {}))
        self.council = CouncilStage(analysis)
        self.holder = SnapshotHolder()
        self.history = RiskHistory()
        self.cache = WindowCache(analysis)

    def fetch_start(self, end: float) -> float:
        return self.cache.fetch_start(step_grid(self.analysis, end))

    def run(self, documents: list[bytes], end: float, start: float) -> dict[str, float]:
        times: dict[str, float] = {}

        def timed(stage, function, *args):
            started = time.perf_counter()
            value = function(*args)
            times[stage] = times.get(stage, 0.0) + time.perf_counter() - started
            return value

        grid = step_grid(self.analysis, end)
        results = [RangeResult(f.name, tuple(timed("parse", parse_matrix, d)))
                   for f, d in zip(self.analysis.features, documents, strict=True)]
        windows = timed("windows", self.cache.windows, results, grid, start)
        engine = self.topology.engine
        engine.compute = lambda clouds: timed("persistence", type(engine).compute, engine, clouds)
        topology = timed("summaries", self.topology.run, windows, float(grid[-1]))
        del engine.compute  # back to the class's method
        times["summaries"] -= times["persistence"]  # the stage's work besides persistence
        recent = self.analysis.forecast.input_steps  # the context's shape; its spacing does not change the work
        context = Context(grid[-recent:], windows.values[:, -recent:])
        forecast = timed("forecast", self.forecast.run, windows, context)
        verdict = timed("council", self.council.run, windows, topology, forecast, float(grid[-1]))
        result = AnalysisResult(self.analysis, float(grid[-1]), time.time(), windows, topology, verdict, forecast, True)
        snapshot = self.holder.publish(result, self.analysis.name, time.time())
        timed("render", render_snapshot, snapshot)
        timed("history", self.history.record, snapshot)
        self.last = (documents, topology, context, snapshot)
        return times


def floors(cycle: Cycle, cores: int) -> dict[str, float]:
    documents, topology, context, snapshot = cycle.last
    found = {}
    started = time.perf_counter()
    for document in documents:
        json.loads(document)
    found["parse"] = time.perf_counter() - started
    settings = cycle.analysis.topology
    clouds = coarsen(delay_embed(topology.scaled, settings.embedding_dimension, settings.embedding_delay),
                     settings.max_points)  # the clouds the stage hands to persistence
    started = time.perf_counter()
    for cloud in clouds:
        ripser_parallel(cloud, maxdim=1)
    found["persistence"] = (time.perf_counter() - started) / cores
    trained = cycle.forecast.trained
    prepared = model_inputs(context.values, context.timestamps, no_seasons(trained.model.shape, context.values))
    inputs, anchors = (torch.from_numpy(array).to(trained.device) for array in (prepared.inputs, prepared.anchors))
    with torch.inference_mode(), autocast(trained.device):
        trained.model(inputs, anchors)
        synchronise(trained.device)
        started = time.perf_counter()
        trained.model(inputs, anchors)
        synchronise(trained.device)
    found["forecast"] = time.perf_counter() - started
    series = sum(1 for line in render_snapshot(snapshot).text.splitlines() if not line.startswith(b"#"))
    registry = CollectorRegistry()
    registry.register(Plain(series))
    started = time.perf_counter()
    generate_latest(registry)
    found["render"] = time.perf_counter() - started
    return found


def memory_per_entity(analysis: Analysis, entities: int, workers: int) -> float:
    cycle = Cycle(analysis, workers)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for r in range(4):
        start = cycle.fetch_start(END + 60 * r)
        cycle.run(answers(analysis, END + 60 * r, entities, start), END + 60 * r, start)
    cycle.last = None
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return kept / entities


def describe_device(analysis: Analysis) -> str:
    device = pick_device(analysis.forecast.device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entities", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--max-points", type=int, default=0,
                        help="topology.max_points: average each cloud down to this many points (default: all)")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--whole-windows", action="store_true", help="fetch every window whole (no window cache)")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    analysis = analysis_of(args.features, args.steps, args.max_points)
    stages = ("parse", "windows", "persistence", "summaries", "forecast", "council", "render", "history")
    print(f"{args.features} features x {args.steps} steps (clouds of at most {args.max_points or args.steps} "
          f"points), {args.workers} worker processes, {cores} CPUs, "
          f"torch {torch.__version__}, forecaster on {describe_device(analysis)}", file=sys.stderr)
    for entities in args.entities:
        cycle = Cycle(analysis, args.workers)
        runs = []
        for r in range(args.repeat + 1):  # the first builds the baselines and starts the workers
            start = (step_grid(analysis, END + 60 * r)[0] if args.whole_windows
                     else cycle.fetch_start(END + 60 * r))  # after the first cycle, only the steps it lacks
            documents = answers(analysis, END + 60 * r, entities, start)
            times = cycle.run(documents, END + 60 * r, start)
            print(f"  {entities} entities, cycle {r}: {sum(times.values()):.2f} s", file=sys.stderr)
            if r:
                runs.append(times)
        floor = floors(cycle, cores)
        median = {s: statistics.median(run[s] for run in runs) for s in stages}
        print(f"\n{entities} entities (median of {args.repeat} warm cycles)\n")
        print("| stage | time | floor | vs floor |\n|---|---|---|---|")
        for stage in stages:
            low = floor.get(stage)
            print(f"| {stage} | {median[stage]:.3f} s | " + (f"{low:.3f} s | {median[stage] / low:.2f}x |"
                                                             if low else "– | – |"))
        print(f"| **full cycle** | **{sum(median.values()):.2f} s** | | |")
    print(f"\nstate kept per entity (1000 entities, 4 cycles): "
          f"{memory_per_entity(analysis, 1000, args.workers) / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
