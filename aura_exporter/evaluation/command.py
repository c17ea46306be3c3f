"""`aura-exporter evaluate`: a backtest's scores against labeled incidents; prints and writes
evaluation.json (NAB's three profiles, recall, false alerts, lead time)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np

from aura_exporter.backtest.files import parse_time
from aura_exporter.evaluation.labels import Incident, LabelError, load_labels
from aura_exporter.evaluation.scoring import Kpis, ScoredEntity, kpis, nab_scores


class BacktestMissing(Exception):
    pass


def entity_label_names(folder: Path) -> list[str]:
    try:
        return list(json.loads((folder / "run.json").read_text())["entity_labels"])
    except (OSError, ValueError, KeyError) as err:
        raise BacktestMissing(f"{folder}: not a backtest's output ({err})") from err


def read_backtest(folder: Path) -> list[ScoredEntity]:
    """Each entity's page scores (the risk where an alert would have started) from the backtest's scores.csv."""
    names = entity_label_names(folder)
    try:
        rows: dict[tuple, tuple[list[float], list[float]]] = {}
        with open(folder / "scores.csv", newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                key = tuple(row[n] for n in names)
                times, scores = rows.setdefault(key, ([], []))
                times.append(parse_time(row["time"]))
                scores.append(float(row["alert_score"]))
    except (OSError, ValueError, KeyError) as err:
        raise BacktestMissing(f"{folder}: not a backtest's output ({err})") from err
    return [ScoredEntity(dict(zip(names, key, strict=True)), np.array(t), np.array(s)) for key, (t, s) in rows.items()]


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
    return None if not np.isfinite(value) else round(float(value), 4)


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
    except (BacktestMissing, LabelError) as err:
        print(err, file=sys.stderr)
        return 1
    result = evaluate(entities, incidents, args.lead, nab_windows=args.labels.endswith(".json"))
    (Path(args.backtest) / "evaluation.json").write_text(json.dumps(result, indent=1) + "\n")
    print(summary(result))
    return 0

