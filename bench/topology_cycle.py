"""Wall time of one full topology cycle against giotto-ph's raw ripser_parallel on the same clouds.

    python bench/topology_cycle.py [--entities 1000] [--features 8] [--steps 120] [--repeat 3]

The cycle is TopologyStage.run on warm state (baselines learned, worker processes started):
robust scaling, Vietoris–Rips persistence (H0, H1), noise thresholds, Betti numbers, entropy,
Wasserstein drift with z-scores, critical features and the fleet topology. The floor is
`gph.ripser_parallel(cloud, maxdim=1)` called on every scaled cloud in one process; an ideal
split of that floor over all cores is printed too. Figures only: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
from gph import ripser_parallel

from aura_exporter.config import Analysis, Feature
from aura_exporter.sources.replay import FEATURES, ReplayFleet
from aura_exporter.topology import TopologyStage
from aura_exporter.windows import Windows


def fleet_windows(entities: int, features: int, steps: int, end: float) -> Windows:
    """Replay-fleet windows; features past the replay's five reuse them for shifted hosts."""
    fleet = ReplayFleet(hosts=entities, origin=end - 2 * 3600)
    t = end - 15.0 * np.arange(steps - 1, -1, -1)
    columns = []
    for f in range(features):
        values = fleet.values(FEATURES[f % len(FEATURES)], t)
        columns.append(np.roll(values, f // len(FEATURES) * 17, axis=0))
    names = tuple(f"f{f}" for f in range(features))
    return Windows("bench", ("instance",), tuple((f"host-{i}",) for i in range(entities)), names, t,
                   np.stack(columns, axis=2), {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entities", type=int, default=1000)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()

    analysis = Analysis(name="bench", entity_labels=("instance",), step=15, window=15.0 * args.steps, interval=60,
                        features=tuple(Feature(f"f{f}", "up", "resources") for f in range(args.features)))
    stage = TopologyStage(analysis, workers=args.workers)
    end = 1_764_000_000.0
    print(f"{args.entities} entities x {args.features} features x {args.steps} steps, "
          f"{args.workers} worker processes, {os.cpu_count()} CPUs", file=sys.stderr)
    stage.run(fleet_windows(args.entities, args.features, args.steps, end - 60), end - 60)  # warm-up
    cycle_times, scaled = [], None
    for r in range(args.repeat):
        windows = fleet_windows(args.entities, args.features, args.steps, end + 60 * r)
        started = time.perf_counter()
        topology = stage.run(windows, end + 60 * r)
        cycle_times.append(time.perf_counter() - started)
        scaled = topology.scaled
        print(f"  cycle {r + 1}/{args.repeat}: {cycle_times[-1]:.2f} s", file=sys.stderr)

    floor_times = []
    for r in range(args.repeat):
        started = time.perf_counter()
        for cloud in scaled:
            ripser_parallel(cloud, maxdim=1)
        floor_times.append(time.perf_counter() - started)
        print(f"  floor {r + 1}/{args.repeat}: {floor_times[-1]:.2f} s", file=sys.stderr)

    cycle, floor = statistics.median(cycle_times), statistics.median(floor_times)
    ideal = floor / (os.cpu_count() or 1)
    cores = os.cpu_count()
    print(f"| what | wall time (median of {args.repeat}) | vs floor, 1 core | vs floor split over {cores} cores |")
    print("|---|---|---|---|")
    print(f"| full topology cycle | {cycle:.2f} s | {cycle / floor:.2f}x | {cycle / ideal:.2f}x |")
    print(f"| raw ripser_parallel, 1 process (floor) | {floor:.2f} s | 1.00x | {floor / ideal:.2f}x |")


if __name__ == "__main__":
    main()
