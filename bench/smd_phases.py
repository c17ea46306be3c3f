"""How much of the SMD figures is the cycles' phase: the same evaluation with every timestamp 0 to 4 minutes later.

AURA judges each entity every `interval` (5 minutes in aura_exporter/examples/smd.yml, on the clock's 5-minute
grid) on the mean of the steps new since its last cycle, so which five 1-minute rows share a cycle is an accident
of the minute SMD's providers started their files at. An incident of a few minutes is one cycle's mean or is split
between two: the same evidence, thresholds and labels then catch different incidents. This script replays the
corpus once per shift (every row's timestamp and every labeled incident `shift` minutes later) as `make evaluate`
does, and prints for each the figures of docs/evaluation-smd.md: the pages at the shipped defaults, the recall at false
alerts per entity-day over a curve of page budgets (coarser than `make evaluate`'s: BUDGETS_PER_WEEK), and the
three ceilings of bench/smd_ceiling.py; then their mean, lowest and highest. A change to the evidence that moves
the figures by less than this spread has not been shown to move them at all.

Writes docs/evaluation-smd-phases.md; the backtests stay under results/smd-phases/. About 8 minutes a shift.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import yaml
from smd_baselines import SMD
from smd_ceiling import ceilings
from smd_evaluation import CONFIG, paged_at

from aura_exporter.backtest.labels import load_labels
from aura_exporter.cli import main as cli
from aura_exporter.evaluation.command import event_document
from aura_exporter.evaluation.events import BUDGETS, EARLY

REPO = Path(__file__).resolve().parent.parent
# False pages per entity-week re-decided at: ISO 3's R5 preferred numbers, half as fine as make evaluate's curve.
BUDGETS_PER_WEEK = (0.25, 0.4, 0.63, 1, 1.6, 2.5, 4, 6.3, 10, 16)
COLUMNS = (("pages", "recall at the defaults"), ("pages_false", "false alerts per entity-day at the defaults"),
           *((f"budget {b}", f"recall at {b} (page budgets)") for b in BUDGETS),
           *((f"{name} {b}", f"{label} at {b}") for name, label in
             (("fleet", "ceiling, one threshold"), ("entity", "ceiling, per machine"),
              ("equal", "ceiling, per machine at one rate")) for b in BUDGETS))


def shifted_corpus(shift: int, target: Path) -> Path:
    """SMD's files and labels in `target`, every time `shift` minutes later."""
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(SMD.glob("*.csv.gz")):
        with gzip.open(path, "rt") as file:
            header, *rows = file.read().splitlines()
        times = later([row.split(",", 1)[0] for row in rows], shift)
        with gzip.open(target / path.name, "wt") as file:
            file.write("\n".join([header, *(f"{time},{row.split(',', 1)[1]}" for time, row in zip(times, rows,
                                                                                                strict=True))]) + "\n")
    labels = json.loads((SMD / "labels.json").read_text())
    (target / "labels.json").write_text(json.dumps({machine: [later(span, shift) for span in spans]
                                                    for machine, spans in labels.items()}))
    return target


def later(times: list[str], minutes: int) -> list[str]:
    """ISO 8601 UTC times (SMD's `...Z`) `minutes` later, written the same way."""
    moved = np.char.rstrip(np.array(times), "Z").astype("datetime64[s]") + np.timedelta64(minutes, "m")
    return [f"{time}Z" for time in moved.astype(str)]


def figures_at_shift(shift: int, output: Path) -> dict[str, float]:
    backtest = output / f"shift-{shift}"
    with tempfile.TemporaryDirectory() as scratch:
        corpus = shifted_corpus(shift, Path(scratch) / "smd")
        if cli(["backtest", f"--config.file={CONFIG}", f"--data.path={corpus}", "--record.evidence",
                f"--labels.file={corpus / 'labels.json'}", f"--output.dir={backtest}", "--log.level=error"]) != 0:
            sys.exit(f"the backtest shifted by {shift} minutes failed")
        incidents = load_labels(corpus / "labels.json", "machine")
        pages = event_document(backtest, incidents, EARLY)["pages"]
        base = yaml.safe_load(CONFIG.read_text())
        with tempfile.TemporaryDirectory() as decided, ProcessPoolExecutor(2) as pool:
            curve = list(pool.map(partial(paged_at, base, backtest / "evidence.npz", Path(decided), incidents),
                                  BUDGETS_PER_WEEK))
        found = {"pages": pages["recall"], "pages_false": pages["false_alerts_per_entity_day"]}
        for budget in BUDGETS:
            found[f"budget {budget}"] = max((p["recall"] for p in curve if p["false_alerts_per_entity_day"] <= budget),
                                            default=0.0)
        for name, by_budget in ceilings(backtest / "evidence.npz", CONFIG, corpus / "labels.json").items():
            found.update({f"{name} {b}": by_budget[str(b)] for b in BUDGETS})
    return found


def markdown(rows: dict[int, dict[str, float]], seconds: float) -> str:
    shifts = sorted(rows)
    lines = ["# SMD: how much of the figures is the cycles' phase", "",
             f"Produced by `make evaluate-phases` ({seconds / 60:.0f} minutes on this 2-core machine; "
             "bench/smd_phases.py). The evaluation of [evaluation-smd.md](evaluation-smd.md), repeated with every "
             "timestamp (and labeled incident) 0 to 4 minutes later, so that other 1-minute rows share each "
             "5-minute cycle of the clock's grid; the "
             "evidence, thresholds and labels are otherwise the same. Recall at a budget of false alerts per "
             "entity-day is read off page budgets of " + ", ".join(map(str, BUDGETS_PER_WEEK)) + " per week "
             "(half as many as make evaluate's, so a little lower).", "",
             "| figure | " + " | ".join(f"shift {s} min" for s in shifts) + " | mean | lowest | highest |",
             "|---|" + "---:|" * (len(shifts) + 3)]
    for key, label in COLUMNS:
        values = np.array([rows[s][key] for s in shifts], dtype=float)
        lines.append(f"| {label} | " + " | ".join(_number(key, v) for v in values)
                     + f" | {_number(key, values.mean())} | {_number(key, values.min())} | "
                       f"{_number(key, values.max())} |")
    lines += ["", "A change to the evidence that moves these figures by less than the spread of its row has not "
                  "been shown to move them.", ""]
    return "\n".join(lines)


def _number(key: str, value: float) -> str:
    return f"{value:.3f}" if key == "pages_false" else f"{100 * value:.0f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shifts", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="rows left out, each a run")
    parser.add_argument("--output", type=Path, default=REPO / "results" / "smd-phases")
    args = parser.parse_args()
    started = time.monotonic()
    rows = {}
    for shift in args.shifts:
        print(f"shift {shift}: replaying…", file=sys.stderr)
        rows[shift] = figures_at_shift(shift, args.output)
        print(f"shift {shift}: " + ", ".join(f"{k} {v:.3f}" for k, v in rows[shift].items()), flush=True)
    document = markdown(rows, time.monotonic() - started)
    (REPO / "docs" / "evaluation-smd-phases.md").write_text(document)
    print(document)


if __name__ == "__main__":
    main()
