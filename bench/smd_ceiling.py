"""How far thresholds alone could take AURA on SMD: a diagnosis with the test labels in hand, not a detector.

The page budget ranks each entity's cycles by the council's strength (council/stage.py, `council_strengths`)
and pages past a threshold it learns without labels. Over the evidence `make evaluate` recorded
(results/smd/backtest/evidence.npz), this script recomputes those strengths with the council's own agents and
thresholds them as no label-free rule could:
- one threshold for the whole fleet, the best for each budget of false alerts per entity-day (the family the
  shared budget lives in);
- one threshold per machine, the false alerts of the budget shared out among the machines at best (exact, by
  dynamic programming over each machine's curve): the ceiling of any per-entity rule on this evidence;
- one threshold per machine, each machine held to the same rate of false alerts (the family a budget learned per
  entity lives in: what perfect calibration of each machine's own thresholds would reach).
When a goal lies above the second, no threshold reaches it: the evidence has to rank incidents better. The gap
between the third and what the page budget reaches is calibration: thresholds learned from the past that do not
hold each machine to its rate in the judged days.
Prints the three; `smd_evaluation.py` writes them beside the budget's own recall to docs/evaluation-smd.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from smd_baselines import SMD, read_incidents

from aura_exporter.backtest.recording import Recording, load_recordings, recorded_rows
from aura_exporter.config import load_config
from aura_exporter.council.stage import CouncilStage, council_strengths
from aura_exporter.evaluation.events import (
    BUDGETS,
    DAY,
    EntityScores,
    EventFigures,
    Span,
    alert_runs,
    event_figures,
    scored_span,
)
from aura_exporter.windows import EntityKey

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "aura_exporter" / "examples" / "smd.yml"
# Thresholds tried per machine and for the fleet: quantiles of the judged strengths from the top 0.01% to 20%.
TAIL_SHARES = np.geomspace(1e-4, 0.2, 80)


def recorded_strengths(config: Path, evidence: Path) -> list[EntityScores]:
    """Each entity's council strength per recorded cycle (NaN while its evidence is unsettled); its learning
    rows are the cycles up to its last learning row."""
    analysis = load_config(str(config)).analyses[0]
    stage = CouncilStage(analysis)
    entities = []
    for _, arrays in load_recordings(evidence, analysis):
        times: dict[EntityKey, list[float]] = {}
        values: dict[EntityKey, list[float]] = {}
        for moment, _, keys, cycle_evidence, _ in Recording.from_arrays(analysis, arrays).cycles():
            strengths = council_strengths(stage.assess(cycle_evidence), analysis.council.sigmas, len(keys))
            strengths = np.where(cycle_evidence.settled, strengths, np.nan)
            for key, value in zip(keys, strengths.tolist(), strict=True):
                times.setdefault(key, []).append(moment)
                values.setdefault(key, []).append(value)
        for key, rows in recorded_rows(arrays).items():
            learned_until = rows["times"][rows["learning"] > 0].max(initial=-np.inf)
            cycle_times = np.array(times.get(key, []))
            entities.append(EntityScores(key, cycle_times, np.array(values.get(key, [])),
                                         cycle_times <= learned_until, cycle_times > learned_until))
    return entities


def _alerts(entity: EntityScores, threshold: float) -> list[Span]:
    return alert_runs(entity.times, entity.scored & (np.nan_to_num(entity.scores, nan=-np.inf) > threshold))


def _figures(entity: EntityScores, threshold: float, incidents: Mapping[EntityKey, Sequence[Span]]) -> EventFigures:
    return event_figures({entity.key: _alerts(entity, threshold)}, incidents, {entity.key: scored_span(entity)})


def _thresholds(scores: np.ndarray) -> np.ndarray:
    finite = scores[np.isfinite(scores)]
    return np.unique(np.quantile(finite, 1.0 - TAIL_SHARES)) if finite.size else np.array([np.inf])


def fleet_ceiling(entities: list[EntityScores], incidents: Mapping[EntityKey, Sequence[Span]]) -> dict[str, float]:
    """The best recall at each budget of one threshold shared by every entity, picked with the labels."""
    judged = np.concatenate([e.scores[e.scored] for e in entities])
    spans = {e.key: scored_span(e) for e in entities}
    points = []
    for threshold in _thresholds(judged):
        points.append(event_figures({e.key: _alerts(e, threshold) for e in entities}, incidents, spans))
    return {str(b): max((p.recall for p in points if p.false_alerts_per_entity_day <= b), default=0.0)
            for b in BUDGETS}


@dataclass(frozen=True)
class EntityCurve:
    """What one entity's thresholds can do: (false alerts, incidents caught) of each threshold tried, never
    alerting included, over its scored days."""

    options: frozenset[tuple[int, int]]
    days: float
    incidents: int


def entity_curve(entity: EntityScores, incidents: Mapping[EntityKey, Sequence[Span]]) -> EntityCurve:
    first, last = scored_span(entity)
    tried = (_figures(entity, t, incidents) for t in _thresholds(entity.scores[entity.scored]))
    options = frozenset({(0, 0)} | {(f.false_alerts, f.caught) for f in tried})
    return EntityCurve(options, (last - first) / DAY, len(incidents.get(entity.key, ())))


def entity_ceiling(curves: list[EntityCurve]) -> dict[str, float]:
    """The best recall at each budget of one threshold per entity, each picked with the labels: for every total
    of false alerts, the most incidents caught (a knapsack over the entities' curves)."""
    days = sum(c.days for c in curves)
    most_false = int(max(BUDGETS) * days)
    best = np.full(most_false + 1, -1)  # most incidents caught with exactly this many false alerts
    best[0] = 0
    for curve in curves:
        merged = np.full_like(best, -1)
        for false_alerts, caught in curve.options:
            if false_alerts <= most_false:
                shifted = np.where(best[:most_false + 1 - false_alerts] >= 0,
                                   best[:most_false + 1 - false_alerts] + caught, -1)
                merged[false_alerts:] = np.maximum(merged[false_alerts:], shifted)
        best = merged
    total = sum(c.incidents for c in curves)
    return {str(b): float(np.max(best[:int(b * days) + 1])) / total for b in BUDGETS}


def equal_rate_ceiling(curves: list[EntityCurve]) -> dict[str, float]:
    """The best recall at each budget of one threshold per entity, each picked with the labels but holding its
    entity to at most the budget's false alerts per day of its own."""
    total = sum(c.incidents for c in curves)
    return {str(b): sum(max(caught for false_alerts, caught in c.options if false_alerts <= b * c.days)
                        for c in curves) / total for b in BUDGETS}


def ceilings(evidence: Path, config: Path = CONFIG, labels: Path = SMD / "labels.json") -> dict[str, dict[str, float]]:
    entities = recorded_strengths(config, evidence)
    incidents = read_incidents(labels)
    curves = [entity_curve(e, incidents) for e in entities]  # each entity's thresholds tried once, for both
    return {"fleet": fleet_ceiling(entities, incidents), "entity": entity_ceiling(curves),
            "equal": equal_rate_ceiling(curves)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evidence.file", dest="evidence", type=Path,
                        default=REPO / "results" / "smd" / "backtest" / "evidence.npz")
    args = parser.parse_args()
    found = ceilings(args.evidence)
    print(f"SMD ({SMD}), recall with thresholds picked on the test labels, at false alerts per entity-day:")
    print(f"{'thresholds':<27}" + "".join(f" {b:>6}" for b in BUDGETS))
    for name, label in (("fleet", "one for the fleet"), ("entity", "one per machine"),
                        ("equal", "one per machine, same rate")):
        print(f"{label:<27}" + "".join(f" {found[name][str(b)]:>6.2f}" for b in BUDGETS))


if __name__ == "__main__":
    main()
