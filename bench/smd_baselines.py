"""The two reference baselines of data/smd/README.md, measured event-wise, to compare with its tables.

Each machine's scores are thresholded at quantiles of its own train-row scores; only the test rows
are judged (aura_exporter.evaluation.events). Prints recall, false alerts per entity-day and median
delay at the README's quantiles, then recall at page budgets over the default quantile curve.
"""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import numpy as np

from aura_exporter.evaluation.baselines import SERVER_DETECTORS
from aura_exporter.evaluation.events import BUDGETS, EntityScores, quantile_curve, recall_at_budget

SMD = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "smd"
# data/smd/README.md's reference figures: (detector, quantile) -> (recall, false alerts per entity-day)
README_FIGURES = {("max_z", 0.999): (0.70, 2.91), ("max_z", 0.9999): (0.33, 0.23), ("max_z", 0.99999): (0.26, 0.12),
                  ("band", 0.999): (0.64, 2.01), ("band", 0.9999): (0.20, 0.21), ("band", 0.99999): (0.09, 0.11)}
README_QUANTILES = (0.999, 0.9999, 0.99999)


def epoch_seconds(iso_utc: np.ndarray) -> np.ndarray:
    return np.char.rstrip(iso_utc.astype(str), "Z").astype("datetime64[s]").astype(np.float64)


def read_smd_machine(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(times [T], values [T, F], split_is_train [T], label [T]) of one machine's file."""
    with gzip.open(path, "rt") as file:
        lines = file.read().splitlines()
    header = lines[0].split(",")
    metrics = [index for index, name in enumerate(header) if name.startswith("m")]
    text_columns = (header.index("timestamp"), header.index("split"), header.index("label"))
    values = np.loadtxt(lines[1:], delimiter=",", usecols=metrics, ndmin=2)
    timestamps, split, label = np.loadtxt(lines[1:], delimiter=",", usecols=text_columns, dtype=str, unpack=True)
    return epoch_seconds(timestamps), values, split == "train", label.astype(np.int8)


def read_incidents(path: Path = SMD / "labels.json") -> dict[tuple[str, ...], list[tuple[float, float]]]:
    labels = json.loads(path.read_text())
    return {(machine,): [tuple(epoch_seconds(np.array(span)).tolist()) for span in spans]
            for machine, spans in labels.items()}


def main() -> None:
    started = time.perf_counter()
    machines = {(path.name.removesuffix(".csv.gz"),): read_smd_machine(path) for path in sorted(SMD.glob("*.csv.gz"))}
    incidents = read_incidents()
    print(f"{len(machines)} machines, {sum(map(len, incidents.values()))} incidents, "
          f"read in {time.perf_counter() - started:.1f} s\n")
    print(f"{'detector':<8} {'quantile':>9} {'recall':>14} {'false/entity-day':>17} {'median delay':>13}"
          f" {'README recall':>14} {'README false':>13}")
    curves = {}
    for name, detector in SERVER_DETECTORS.items():
        started = time.perf_counter()
        entities = [EntityScores(key, times, detector(times, values, train), train, ~train)
                    for key, (times, values, train, _) in machines.items()]
        scored = time.perf_counter()
        for point in quantile_curve(entities, incidents, README_QUANTILES):
            figures = point.figures
            readme_recall, readme_false = README_FIGURES[name, point.quantile]
            print(f"{name:<8} {point.quantile:>9.3%} {figures.recall:>6.2f} ({figures.caught:>3}/{figures.incidents})"
                  f" {figures.false_alerts_per_entity_day:>17.2f} {figures.median_delay_minutes:>9.0f} min"
                  f" {readme_recall:>14.2f} {readme_false:>13.2f}")
        curve_started = time.perf_counter()
        curves[name] = quantile_curve(entities, incidents)
        print(f"{'':<8} scores {scored - started:.1f} s, curve of {len(curves[name])} thresholds "
              f"{time.perf_counter() - curve_started:.2f} s")
    print("\nrecall at a budget of false alerts per entity-day (default quantile curve)")
    print(f"{'detector':<8}" + "".join(f" {budget:>6}" for budget in BUDGETS))
    for name, curve in curves.items():
        print(f"{name:<8}" + "".join(f" {recall_at_budget(curve, budget):>6.2f}" for budget in BUDGETS))


if __name__ == "__main__":
    main()
