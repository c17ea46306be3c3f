"""`aura-exporter evaluate`: a backtest's scores against labeled incidents; prints and writes
evaluation.json (NAB's three profiles, recall, false alerts, lead time)."""

from __future__ import annotations

import csv
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aura_exporter.backtest.files import parse_time
from aura_exporter.backtest.labels import Incident, LabelError, load_labels
from aura_exporter.evaluation.events import (
    BUDGETS,
    EARLY,
    EntityScores,
    EventFigures,
    Span,
    event_figures,
    quantile_curve,
    recall_at_budget,
)
from aura_exporter.evaluation.scoring import Kpis, ScoredEntity, kpis, nab_scores
from aura_exporter.jsonvalues import finite
from aura_exporter.windows import EntityKey


class BacktestMissing(Exception):
    pass


def entity_label_names(folder: Path) -> list[str]:
    try:
        return list(json.loads((folder / "run.json").read_text())["entity_labels"])
    except (OSError, ValueError, KeyError) as err:
        raise BacktestMissing(f"{folder}: not a backtest's output ({err})") from err


def read_backtest(folder: Path) -> list[ScoredEntity]:
    """Each entity's page scores (the risk where an alert would have started) from the backtest's scores.csv."""
    return [ScoredEntity(e.labels, e.times, e.pages) for e in read_rows(folder)]


@dataclass(frozen=True)
class BacktestRows:
    labels: dict[str, str]
    times: np.ndarray
    risk: np.ndarray
    pages: np.ndarray  # alert_score
    learning: np.ndarray  # bool
    usual: np.ndarray  # usual_per_week: NaN while the page budget learns, or without one

    def threshold_rows(self) -> np.ndarray:
        """The learning rows thresholds may come from: with a page budget, those where it had learned (its
        first day's risks come from the fixed thresholds, another scale)."""
        calibrated = np.isfinite(self.usual)
        return self.learning & calibrated if calibrated.any() else self.learning


def read_rows(folder: Path) -> list[BacktestRows]:
    names = entity_label_names(folder)
    try:
        rows: dict[tuple, list[list[float]]] = {}
        with open(folder / "scores.csv", newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                columns = rows.setdefault(tuple(row[n] for n in names), [[], [], [], [], []])
                for column, value in zip(columns, (parse_time(row["time"]), float(row["risk"]),
                                                   float(row["alert_score"]), row.get("learning") == "1",
                                                   float(row.get("usual_per_week") or "nan")), strict=True):
                    column.append(value)
    except (OSError, ValueError, KeyError) as err:
        raise BacktestMissing(f"{folder}: not a backtest's output ({err})") from err
    return [BacktestRows(dict(zip(names, key, strict=True)), np.array(t), np.array(r), np.array(p), np.array(lr, bool),
                         np.array(u))
            for key, (t, r, p, lr, u) in rows.items()]


def read_alerts(folder: Path, names: list[str], severity: str = "warning") -> dict[EntityKey, list[Span]]:
    """The alerts of a severity as (start, end) in the entities' own times: the warnings (a critical alert is
    inside one), or the critical ones alone (those the example Alertmanager routing sends to the pager)."""
    try:
        documents = json.loads((folder / "alerts.json").read_text(encoding="utf-8"))["alerts"]
        found: dict[EntityKey, list[Span]] = {}
        for alert in (a for a in documents if a["severity"] == severity):
            start = parse_time(alert["start"])
            end = parse_time(alert["end"]) if alert["end"] is not None else math.inf
            found.setdefault(tuple(alert["entity"][n] for n in names), []).append((start, end))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise BacktestMissing(f"{folder}: not a backtest's output ({err})") from err
    return found


def event_document(folder: Path, incidents: list[Incident], early: float) -> dict:
    """The event-wise measure (evaluation/events.py) of the rows after learning: the pages the shipped
    rules would have sent, and the risk's curve of recall against false alerts per entity-day."""
    names = entity_label_names(folder)
    rows = [r for r in read_rows(folder) if (~r.learning).any()]
    spans = {tuple(r.labels.values()): (float(r.times[~r.learning][0]), float(r.times[~r.learning][-1]))
             for r in rows}
    by_entity: dict[EntityKey, list[Span]] = {}
    for incident in incidents:
        for r in rows:
            if incident.matches(r.labels):
                by_entity.setdefault(tuple(r.labels.values()), []).append((incident.start, incident.end))
    pages = event_figures(read_alerts(folder, names), by_entity, spans, early)
    curve = quantile_curve([EntityScores(tuple(r.labels.values()), r.times, r.risk, r.threshold_rows(), ~r.learning)
                            for r in rows], by_entity, early=early)
    pager = event_figures(read_alerts(folder, names, "critical"), by_entity, spans, early)
    return {"pages": figures_document(pages), "pager": figures_document(pager),
            "recall_at_budget": {str(b): _round(recall_at_budget(curve, b)) for b in BUDGETS},
            "curve": [{"quantile": point.quantile, **figures_document(point.figures)} for point in curve]}


def figures_document(figures: EventFigures) -> dict:
    return {"incidents": figures.incidents, "caught": figures.caught, "recall": _round(figures.recall),
            "alerts": figures.alerts, "false_alerts": figures.false_alerts,
            "false_alerts_per_entity_day": _round(figures.false_alerts_per_entity_day),
            "median_delay_minutes": _round(figures.median_delay_minutes)}


def evaluate(entities: list[ScoredEntity], incidents: list[Incident], lead: float, nab_windows: bool) -> dict:
    profiles = nab_scores(entities, incidents)
    standard = profiles["standard"]
    found = kpis(entities, incidents, standard.threshold, lead, anomaly_at_middle=nab_windows)
    return {"nab": {name: round(score.normalized, 2) for name, score in profiles.items()},
            "thresholds": {name: score.threshold for name, score in profiles.items()},
            "windows": {"total": standard.windows, "detected": standard.detected_windows,
                        "false_positive_rows": standard.false_positives},
            "kpis": kpi_document(found)}


def kpi_document(found: Kpis) -> dict:
    return {"incidents": found.incidents, "caught": found.caught, "recall": _round(found.recall),
            "alerts": found.alerts, "false_alerts": found.false_alerts,
            "false_alert_share": _round(found.false_alert_share),
            "false_alerts_per_day": _round(found.false_alerts_per_day),
            "median_lead_hours": _round(found.median_lead_hours),
            "lead_hours_quartiles": [_round(q) for q in np.percentile(found.leads_hours, [25, 50, 75])]
            if found.leads_hours else []}


def _round(value: float) -> float | None:
    number = finite(value)
    return None if number is None else round(number, 4)


def summary(result: dict) -> str:
    k = result["kpis"]
    return "\n".join([
        "NAB score (0 = never alerts, 100 = perfect): " + ", ".join(f"{p} {v}" for p, v in result["nab"].items()),
        f"threshold (standard): {result['thresholds']['standard']:.4f}; windows detected "
        f"{result['windows']['detected']}/{result['windows']['total']}",
        f"incident recall: {k['caught']}/{k['incidents']} ({_percent(k['recall'])})",
        f"alerts: {k['alerts']}, false: {k['false_alerts']} ({_percent(k['false_alert_share'])} of alerts, "
        f"{k['false_alerts_per_day']} per day of data)",
        f"lead time: median {k['median_lead_hours']} h, quartiles {k['lead_hours_quartiles']} h",
    ])


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"




def main(args) -> int:
    try:
        entities = read_backtest(Path(args.backtest))
        incidents = load_labels(Path(args.labels), entity_label_names(Path(args.backtest))[0])
        result = evaluate(entities, incidents, args.lead, nab_windows=args.labels.endswith(".json"))
        result["events"] = event_document(Path(args.backtest), incidents, EARLY)
    except (BacktestMissing, LabelError) as err:
        print(err, file=sys.stderr)
        return 1
    (Path(args.backtest) / "evaluation.json").write_text(json.dumps(result, indent=1) + "\n")
    print(summary(result))
    print(event_summary(result["events"]))
    return 0


def event_summary(events: dict) -> str:
    pages, pager = events["pages"], events["pager"]
    budgets = ", ".join(f"{_percent(r)} at {b}" for b, r in events["recall_at_budget"].items())
    return "\n".join([
        f"event-wise, after learning (an alert up to 1 h before an incident catches it): pages caught "
        f"{pages['caught']}/{pages['incidents']} ({_percent(pages['recall'])}), false alerts "
        f"{pages['false_alerts_per_entity_day']} per entity-day, median delay {pages['median_delay_minutes']} min",
        f"critical alerts alone (the pager): caught {pager['caught']}/{pager['incidents']} "
        f"({_percent(pager['recall'])}), false {pager['false_alerts_per_entity_day']} per entity-day, "
        f"median delay {pager['median_delay_minutes']} min",
        f"risk thresholded at quantiles of each entity's learning rows: recall {budgets} false alerts per entity-day",
    ])

