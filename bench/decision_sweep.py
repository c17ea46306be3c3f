"""Sweep the decision layer's settings over a recorded backtest, in seconds per setting.

    python bench/decision_sweep.py --config.file aura_exporter/examples/smd.yml \\
        --evidence.file results/smd/backtest/evidence.npz --labels.file ../shared/data/smd/labels.json \\
        --set council.false_pages_per_week=0.5,1,2,4 --set council.confirm_cycles=1,2

Each combination of the `--set` values (YAML values; a list is written [a, b]) replaces those keys of
the analysis in the configuration, which is validated as usual; the council alone is run again over
the recording (`aura-exporter backtest --evidence.file`), and the event-wise figures of `aura-exporter
evaluate` are printed for the rows after learning. Only the decision layer can be swept this way: a
setting the evidence depends on (features, windows, topology, peers, forecasts) needs a new recording.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

import yaml

from aura_exporter.backtest.labels import load_labels
from aura_exporter.cli import main as cli
from aura_exporter.evaluation.command import entity_label_names, event_document
from aura_exporter.evaluation.events import EARLY


def settings(assignments: list[str]) -> list[dict[str, object]]:
    """Every combination of `key.path=v1,v2` (values split on top-level commas, read as YAML)."""
    axes = []
    for assignment in assignments:
        key, _, values = assignment.partition("=")
        parsed = yaml.safe_load(f"[{values}]")
        axes.append([(key, value) for value in parsed])
    return [dict(combination) for combination in itertools.product(*axes)]


def configured(base: dict, analysis: str | None, overrides: dict[str, object]) -> dict:
    document = yaml.safe_load(yaml.safe_dump(base))
    target = next(a for a in document["analyses"] if analysis in (None, a["name"]))
    for path, value in overrides.items():
        node = target
        *parents, last = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return document


def redecide(document: dict, evidence: Path, out: Path, analysis: str | None = None) -> Path:
    """The backtest folder `out` of the council alone re-run over `evidence` with the configuration `document`."""
    config = out.parent / f"{out.name}.yml"  # not with_suffix: the folders 0.25 and 0.5 would share 0.yml
    config.write_text(yaml.safe_dump(document))
    if cli(["backtest", f"--config.file={config}", f"--evidence.file={evidence}", f"--output.dir={out}",
            "--log.level=error"] + ([f"--analysis.name={analysis}"] if analysis else [])) != 0:
        sys.exit(f"the re-run with {config} failed")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config.file", dest="config", type=Path, required=True)
    parser.add_argument("--analysis.name", dest="analysis", default=None)
    parser.add_argument("--evidence.file", dest="evidence", type=Path, required=True)
    parser.add_argument("--labels.file", dest="labels", type=Path, required=True)
    parser.add_argument("--set", dest="assignments", action="append", default=[])
    args = parser.parse_args()
    base = yaml.safe_load(args.config.read_text())
    print(f"{'setting':<60} {'recall':>14} {'false/entity-day':>17} {'delay':>9} {'risk recall at budgets':>24}")
    with tempfile.TemporaryDirectory() as scratch:
        for number, overrides in enumerate(settings(args.assignments) or [{}]):
            started = time.monotonic()
            out = redecide(configured(base, args.analysis, overrides), args.evidence, Path(scratch) / str(number),
                           args.analysis)
            incidents = load_labels(args.labels, entity_label_names(out)[0])
            document = event_document(out, incidents, EARLY)
            pages = document["pages"]
            budgets = " ".join(f"{r if r is not None else 'n/a'}" for r in document["recall_at_budget"].values())
            label = ", ".join(f"{k}={v}" for k, v in overrides.items()) or "(as configured)"
            print(f"{label:<60} {pages['recall']!s:>6} ({pages['caught']:>3}/{pages['incidents']})"
                  f" {pages['false_alerts_per_entity_day']!s:>17} {pages['median_delay_minutes']!s:>9}"
                  f" {budgets:>24}   [{time.monotonic() - started:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
