"""`make evaluate`: the NAB corpus through AURA's backtest and two baselines, scored by NAB's rules.

AURA runs as a user would run it (`aura-exporter backtest --data.path … --labels.file …` with
aura_exporter/examples/nab.yml, then the same scoring as `aura-exporter evaluate`); the null
detector and the PromQL-style adaptive band are scored by the same rules on the same rows. Writes
docs/evaluation.md, docs/evaluation.json and plots under docs/img/, and leaves the backtest's
outputs (scores, alerts, report, NAB-format results) under results/nab/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from aura_exporter.backtest.files import read_series
from aura_exporter.backtest.labels import load_labels
from aura_exporter.cli import main as cli
from aura_exporter.evaluation.baselines import DETECTORS
from aura_exporter.evaluation.command import kpi_document, read_backtest
from aura_exporter.evaluation.nab import probation_rows
from aura_exporter.evaluation.scoring import ScoredEntity, kpis, nab_scores

REPO = Path(__file__).resolve().parent.parent
NAB = REPO.parent / "shared" / "data" / "nab"
CONFIG = REPO / "aura_exporter" / "examples" / "nab.yml"
SERVER_CATEGORIES = ("realAWSCloudwatch", "realKnownCause")
LEAD = 4 * 3600.0
# NAB's scoreboard (README of numenta/NAB at ea702d7, "As of NAB v1.0"; v1.1 scores the same corpus).
PUBLISHED = {"ARTime": (74.9, 65.1, 80.4), "Numenta HTM": (70.5, 62.6, 75.2), "CAD OSE": (69.9, 67.0, 73.2),
             "KNN CAD": (58.0, 43.4, 64.8), "Relative Entropy": (54.6, 47.6, 58.8),
             "Random Cut Forest": (51.7, 38.4, 59.7), "Twitter ADVec": (47.1, 33.6, 53.5),
             "Windowed Gaussian": (39.6, 20.9, 47.4), "Etsy Skyline": (35.7, 27.1, 44.5),
             "Random": (11.0, 1.2, 19.5), "Null": (0.0, 0.0, 0.0)}
PROFILE_NAMES = ("standard", "reward_low_fp", "reward_low_fn")


def category(entity: ScoredEntity) -> str:
    return entity.labels["series"].split("/")[0]


def baseline_entities(detector) -> list[ScoredEntity]:
    entities = []
    for path in sorted((NAB / "data").rglob("*.csv")):
        series = read_series(path)
        name = str(path.relative_to(NAB / "data").with_suffix(""))
        entities.append(ScoredEntity({"series": name}, series.timestamps, detector(series.timestamps, series.values)))
    return entities


def evaluate(entities: list[ScoredEntity], incidents) -> dict:
    profiles = nab_scores(entities, incidents)
    thresholds = {name: score.threshold for name, score in profiles.items()}
    server = [e for e in entities if category(e) in SERVER_CATEGORIES]
    found = kpis(server, incidents, thresholds["standard"], LEAD, anomaly_at_middle=True)
    judged = kpis([after_probation(e) for e in server], incidents, thresholds["standard"], LEAD, anomaly_at_middle=True)
    categories = sorted({category(e) for e in entities})
    per_category = {c: round(nab_scores([e for e in entities if category(e) == c], incidents,
                                        thresholds)["standard"].normalized, 2) for c in categories}
    inside, outside = split_by_windows(entities, incidents)
    return {"nab": {name: round(score.normalized, 2) for name, score in profiles.items()},
            "thresholds": thresholds,
            "pages": {"inside_windows": _pages(inside), "outside_windows": _pages(outside)},
            "windows_detected": profiles["standard"].detected_windows, "windows": profiles["standard"].windows,
            "server_metrics": {"recall": _round(found.recall), "false_alert_share": _round(found.false_alert_share),
                               "median_lead_hours": _round(found.median_lead_hours),
                               "details": kpi_document(found), "after_probation": kpi_document(judged)},
            "categories_standard": per_category}


def after_probation(entity: ScoredEntity) -> ScoredEntity:
    """The entity's pages from the end of NAB's probation on (the rows NAB scores; before, a detector that
    starts with no history learns what the series' values are, as `baseline.learn_from_history` does from
    Prometheus before a live exporter's first cycle), over those rows only."""
    first = probation_rows(len(entity.scores))
    return ScoredEntity(entity.labels, entity.times[first:], entity.scores[first:])


def split_by_windows(entities: list[ScoredEntity], incidents) -> tuple[np.ndarray, np.ndarray]:
    """Every scored row after probation, inside labeled windows and outside them."""
    from aura_exporter.evaluation.scoring import windows_of

    inside, outside = [], []
    for entity in entities:
        mask = np.zeros(len(entity.scores), dtype=bool)
        for first, last in windows_of(entity, incidents):
            mask[first:last + 1] = True
        scorable = np.arange(len(entity.scores)) >= probation_rows(len(entity.scores))
        inside.append(entity.scores[mask & scorable])
        outside.append(entity.scores[~mask & scorable])
    return np.concatenate(inside), np.concatenate(outside)


def _pages(scores: np.ndarray) -> dict[str, float | int | None]:
    """How many rows carry a page (a score above 0) and their median score."""
    paged = scores[scores > 0]
    return {"count": int(paged.size), "median_score": round(float(np.median(paged)), 4) if paged.size else None}


def _score(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _round(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 4)


def markdown(results: dict, seconds: float, command: str) -> str:
    lines = ["# Evaluation on the Numenta Anomaly Benchmark", "",
             f"`{command}` ({seconds / 60:.1f} minutes on this project's 2-core VM). The NAB corpus "
             "(58 real and artificial series, 116 labeled anomaly windows; `../shared/data/nab`, NAB v1.1 "
             "data) is replayed through the detector behind `aura_risk_score`, and two baselines are "
             "scored by the same rules on the same rows: the null detector and the PromQL-style "
             "adaptive band `abs(x - avg_over_time(x[1d])) / stddev_over_time(x[1d])`.", "",
             "Scores follow NAB's rules (aura_exporter/evaluation/nab.py, checked by tests/test_nab_scorer.py): "
             "probation of the first 15% of each file, scaled-sigmoid weights inside windows, one threshold "
             "per profile for the whole corpus, normalised so that the null detector scores 0 and the "
             "perfect one 100.", "",
             "The analysis AURA runs (aura_exporter/examples/nab.yml): every file is an entity of one "
             "analysis, replayed row by row by the live cycle. **What is scored is the pages**: a row's "
             "score is `aura_risk_score` at the row where a warning would have started firing (the shipped "
             "rules' `for:` held), 0 elsewhere, since NAB counts every row over its threshold as one more "
             "detection and an on-call team counts pages. The band is scored the same way: its pages at "
             "`> 3 * stddev_over_time` with the same `for:` (README, 'Backtest and evaluate').", "",
             "```yaml", CONFIG.read_text().strip(), "```", "",
             "The detector: each step's Takens point (the value and its two predecessors) is compared with "
             "the series' last 1000 points; the distance to the nearest, the H0 bar the point would open "
             "joining that cloud, becomes a tail probability of its own past (Numenta's anomaly "
             "likelihood: the mean of the last 5 against a month of such means, each moving those statistics "
             "by at most 20 spreads, so that one huge spike does not deafen a series for weeks, and a spread "
             "of at least 0.1% of the series' range), in sigmas, which the "
             "performance agent weighs (`topology.novelty_history`, README 'Council'). A second scale "
             "does the same with points of three half-hour means (`novelty_scales: [1, 6]`), for changes "
             "of shape whose single steps look familiar; the larger of the two counts. Points that were "
             "3σ newer than usual are remembered past the last 1000, so a kind of burst pages once. A "
             "value more than 5% of its span past the lowest or highest the series has had is a record "
             "(`record` evidence, Numenta's rule), worth a warning alone. Before novelty (until "
             "2026-11-28) the council weighed a series' level against a 4-hour baseline and the drift of "
             "its window's diagram, and scored 0.0: its risks were as high outside the windows as inside.", "",
             "## NAB score", "", "| detector | standard | reward low FP | reward low FN | source |",
             "|---|---:|---:|---:|---|"]
    for name, result in results.items():
        nab = result["nab"]
        lines.append(f"| **{name}** (this run) | {nab['standard']:.1f} | {nab['reward_low_fp']:.1f} | "
                     f"{nab['reward_low_fn']:.1f} | measured |")
    for name, (standard, low_fp, low_fn) in PUBLISHED.items():
        lines.append(f"| {name} | {standard:.1f} | {low_fp:.1f} | {low_fn:.1f} | NAB scoreboard (v1.0) |")
    lines += ["", "Published figures: the scoreboard in NAB's README (numenta/NAB, commit ea702d7); "
              "Ahmad, Lavin, Purdy & Agha (2017), *Unsupervised real-time anomaly detection for streaming "
              "data*, Neurocomputing, doi:10.1016/j.neucom.2017.04.070.", "",
              "## Server metrics (realAWSCloudwatch and realKnownCause)", "",
              "Alerts are the pages at or above the detector's standard-profile threshold; an incident is "
              "caught when an alert starts between 4 hours before its window and its end; lead time is the "
              "window's middle (NAB centres windows on the labeled anomaly) minus the first such alert.", "",
              "| detector | incident recall | false alerts (share) | false alerts per day | median lead |",
              "|---|---:|---:|---:|---:|"]
    for name, result in results.items():
        s, d = result["server_metrics"], result["server_metrics"]["details"]
        lines.append(f"| {name} | {_pct(s['recall'])} ({d['caught']}/{d['incidents']}) | "
                     f"{_pct(s['false_alert_share'])} ({d['false_alerts']}/{d['alerts']}) | "
                     f"{d['false_alerts_per_day']} | {_hours(s['median_lead_hours'])} |")
    lines += ["", "The same from the end of each file's probation on (the rows NAB scores; during its first 15% "
              "a detector replayed without history learns the series, where a live exporter learns from the "
              "history Prometheus already holds, `baseline.learn_from_history`):", "",
              "| detector | incident recall | false alerts (share) | false alerts per day | median lead |",
              "|---|---:|---:|---:|---:|"]
    for name, result in results.items():
        d = result["server_metrics"]["after_probation"]
        lines.append(f"| {name} | {_pct(d['recall'])} ({d['caught']}/{d['incidents']}) | "
                     f"{_pct(d['false_alert_share'])} ({d['false_alerts']}/{d['alerts']}) | "
                     f"{d['false_alerts_per_day']} | {_hours(d['median_lead_hours'])} |")
    lines += ["", "Goals from the product plan: recall ≥ 85% with under 10% of alerts false and a median "
              "lead of 2 hours or more.", "", "## Per category (standard profile, at the corpus threshold)", "",
              "| category | " + " | ".join(results) + " |", "|---|" + "---:|" * len(results)]
    for c in next(iter(results.values()))["categories_standard"]:
        lines.append(f"| {c} | " + " | ".join(f"{r['categories_standard'][c]:.1f}" for r in results.values()) + " |")
    aura = results["aura"]["nab"]["standard"]
    lines += ["", "## Where AURA stands", "",
              f"Goal (issue 5): NAB standard score above 70. This run: {aura:.2f}, "
              + ("met." if aura > 70 else "not met."), "",
              "A detector scores when it pages inside the labeled windows rather than outside them. Every page "
              "after probation (before the profile's threshold drops the weaker ones), and its median score:", "",
              "| detector | pages inside windows | median score | pages outside windows | median score |",
              "|---|---:|---:|---:|---:|"]
    for name, result in results.items():
        inside, outside = result["pages"]["inside_windows"], result["pages"]["outside_windows"]
        lines.append(f"| {name} | {inside['count']} | {_score(inside['median_score'])} | {outside['count']} | "
                     f"{_score(outside['median_score'])} |")
    lines += ["", "![NAB scores](img/evaluation-scores.png)", "",
              "The backtest's own report (every series, its risk, the alerts and the labeled windows) is "
              "written to results/nab/backtest/report.html; NAB-format per-file results, which NAB's own "
              "scorer reads, to results/nab/backtest/results/aura/.", "",
              "The second corpus of `make evaluate`, a fleet of real servers judged event-wise (pages per "
              "entity-day, recall at a page budget): [evaluation-smd.md](evaluation-smd.md).", ""]
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _hours(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} h"


def plot(results: dict, target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results) + list(PUBLISHED)
    standard = [results[n]["nab"]["standard"] for n in results] + [v[0] for v in PUBLISHED.values()]
    colours = ["#ff7f0e"] * len(results) + ["#999"] * len(PUBLISHED)
    figure, axis = plt.subplots(figsize=(8, 4))
    axis.barh(names[::-1], standard[::-1], color=colours[::-1])
    axis.set_xlabel("NAB score, standard profile (orange: this run; grey: published)")
    axis.axvline(70, color="#d62728", linestyle="--", linewidth=1)
    figure.tight_layout()
    figure.savefig(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO / "results" / "nab")
    parser.add_argument("--reuse-backtest", action="store_true",
                        help="score the backtest already under --output again (after changing the scoring)")
    args = parser.parse_args()
    started = time.monotonic()
    labels = NAB / "labels" / "combined_windows.json"
    backtest = args.output / "backtest"
    timing = args.output / "backtest-seconds.json"
    command = "make evaluate"
    if args.reuse_backtest:
        if timing.exists():
            started -= json.loads(timing.read_text())["seconds"]
        else:
            command = "make evaluate ARGS=--reuse-backtest"
    else:
        if cli(["backtest", f"--config.file={CONFIG}", f"--data.path={NAB / 'data'}", f"--labels.file={labels}",
                f"--output.dir={backtest}"]) != 0:
            sys.exit("the backtest failed")
        timing.write_text(json.dumps({"seconds": time.monotonic() - started}))
    incidents = load_labels(labels, "series")
    results = {"aura": evaluate(read_backtest(backtest), incidents)}
    for name, detector in DETECTORS.items():
        print(f"scoring the {name} baseline…", file=sys.stderr)
        results[name] = evaluate(baseline_entities(detector), incidents)
    seconds = time.monotonic() - started
    (REPO / "docs" / "evaluation.json").write_text(json.dumps({"detectors": results}, indent=1) + "\n")
    (REPO / "docs" / "evaluation.md").write_text(markdown(results, seconds, command))
    plot(results, REPO / "docs" / "img" / "evaluation-scores.png")
    for name, result in results.items():
        print(f"{name}: NAB {result['nab']}, server metrics {result['server_metrics']['details']}")


if __name__ == "__main__":
    main()
