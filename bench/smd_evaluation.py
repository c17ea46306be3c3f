"""`make evaluate`, second corpus: the SMD fleet (8 real servers × 38 metrics, labeled incidents) through
AURA's backtest as a user would run it, and the two reference baselines of data/smd/README.md in the
same run, all judged event-wise (aura_exporter/evaluation/events.py) on the test rows only.

AURA: `aura-exporter backtest --data.path ../shared/data/smd --record.evidence` with aura_exporter/examples/smd.yml
(learning on the `split` column's train rows), then the same figures as `aura-exporter evaluate`: the pages
the shipped rules would have sent, and its risk's curve of recall against false alerts per entity-day. Its
curve at a budget is that of its pages at page budgets (`council.false_pages_per_week`, BUDGET_CURVE), the
council re-run over the recorded evidence for each (bench/decision_sweep.py): the knob its users turn. Then
how far any threshold on the same evidence could go, picked with the labels (bench/smd_ceiling.py).
Writes docs/evaluation-smd.md, docs/evaluation-smd.json and docs/img/smd-recall-budget.png; the
backtest's outputs stay under results/smd/.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import yaml
from decision_sweep import configured, redecide
from smd_baselines import SMD, read_incidents, read_smd_machine
from smd_ceiling import ceilings

from aura_exporter.backtest.labels import Incident, load_labels
from aura_exporter.cli import main as cli
from aura_exporter.evaluation.baselines import SERVER_DETECTORS
from aura_exporter.evaluation.command import event_document, figures_document
from aura_exporter.evaluation.events import BUDGETS, EARLY, EntityScores, quantile_curve, recall_at_budget

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "aura_exporter" / "examples" / "smd.yml"
REFERENCE_QUANTILE = 0.999  # the README's reference threshold for the baselines
# False pages per entity-week AURA's curve is drawn at: ISO 3's R10 preferred numbers from 0.25 to 16, ten a
# decade, as the baselines' curves have ten quantiles a decade (DEFAULT_QUANTILES): each curve as finely drawn.
BUDGET_CURVE = (0.25, 0.315, 0.4, 0.5, 0.63, 0.8, 1, 1.25, 1.6, 2, 2.5, 3.15, 4, 5, 6.3, 8, 10, 12.5, 16)


def budget_document(backtest: Path, incidents: list[Incident]) -> dict:
    """AURA's pages at each page budget of BUDGET_CURVE (the council re-run over the recording), and the best
    recall among them within each false-alert budget per entity-day."""
    base = yaml.safe_load(CONFIG.read_text())
    with tempfile.TemporaryDirectory() as scratch, ProcessPoolExecutor(2) as pool:
        runs = pool.map(partial(paged_at, base, backtest / "evidence.npz", Path(scratch), incidents), BUDGET_CURVE)
        curve = [{"budget_per_week": budget, **pages} for budget, pages in zip(BUDGET_CURVE, runs, strict=True)]
    return {"recall_at_budget": {str(b): max((p["recall"] for p in curve if p["false_alerts_per_entity_day"] <= b),
                                             default=0.0) for b in BUDGETS},
            "curve": curve}


def paged_at(base: dict, evidence: Path, scratch: Path, incidents: list[Incident], budget: float) -> dict:
    out = redecide(configured(base, None, {"council.false_pages_per_week": budget}), evidence, scratch / str(budget))
    return event_document(out, incidents, EARLY)["pages"]


def baseline_document(name: str) -> dict:
    machines = {(path.name.removesuffix(".csv.gz"),): read_smd_machine(path) for path in sorted(SMD.glob("*.csv.gz"))}
    incidents = read_incidents()
    detector = SERVER_DETECTORS[name]
    entities = [EntityScores(key, times, detector(times, values, train), train, ~train)
                for key, (times, values, train, _) in machines.items()]
    curve = quantile_curve(entities, incidents)
    reference = quantile_curve(entities, incidents, (REFERENCE_QUANTILE,))[0]
    return {"pages": figures_document(reference.figures),
            "recall_at_budget": {str(b): round(recall_at_budget(curve, b), 4) for b in BUDGETS},
            "curve": [{"quantile": point.quantile, **figures_document(point.figures)} for point in curve]}


def markdown(results: dict, ceiling: dict, seconds: float, command: str) -> str:
    lines = [
        "# Evaluation on SMD: a fleet of real servers", "",
        f"Produced by `{command}` ({seconds / 60:.1f} minutes on this 2-core machine). Eight machines of the",
        "Server Machine Dataset, 38 metrics each at 1-minute rows, 122 incidents labeled by their operators;",
        "about 16.5 days to learn from, then 16.5 days judged (../shared/data/smd/README.md). AURA runs as a user",
        "would run it (`aura-exporter backtest --data.path` with aura_exporter/examples/smd.yml: every metric a",
        "feature with a role, peers off, the default page budget of one a week per machine shared by the fleet,",
        "a cycle every minute with decisions confirmed over two, no forecaster, defaults otherwise).",
        "Event-wise: an alert is a run of alerting rows; an incident is caught by an alert overlapping",
        "[first − 1 h, last]; an alert overlapping none is false.", "",
        "**Operating point**: AURA's alerts are those the shipped rules would have fired (its defaults,",
        "thresholds learned on the train rows); the baselines' is the README's reference threshold, the 99.9%",
        "quantile of each machine's own train scores. **At a budget**: the best recall with at most that many",
        "false alerts per entity-day, for the baselines over a curve of thresholds, each machine's a quantile of its",
        "own train-row scores; for AURA over its pages at page budgets (`council.false_pages_per_week` of",
        f"{', '.join(map(str, BUDGET_CURVE))}, the council re-run over the recorded evidence for each): the knob",
        "its users turn.", "",
        "| detector | recall | false alerts per entity-day | median delay | recall at 0.1 | at 0.25 | at 1 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, result in results.items():
        pages, budgets = result["pages"], result["recall_at_budget"]
        lines.append(f"| {name} | {_pct(pages['recall'])} ({pages['caught']}/{pages['incidents']}) | "
                     f"{pages['false_alerts_per_entity_day']} | {_minutes(pages['median_delay_minutes'])} | "
                     + " | ".join(_pct(budgets[str(b)]) for b in BUDGETS) + " |")
    pager = results["aura"]["pager"]
    lines += ["", "AURA's alerts are its warnings (AuraCouncilWarning, to chat in the example routing) and the",
              "critical ones inside them (AuraCouncilCritical, to the pager). The critical alerts alone caught",
              f"{pager['caught']} of {pager['incidents']} incidents ({_pct(pager['recall'])}) at "
              f"{pager['false_alerts_per_entity_day']} false alerts per entity-day, median delay "
              f"{_minutes(pager['median_delay_minutes'])}.",
              "", "AURA's pages at each page budget (the default is 1):", "",
              "| `false_pages_per_week` | false pages per entity-week, measured | caught (of "
              f"{pager['incidents']}) | median delay |", "|---:|---:|---:|---:|"]
    lines += [f"| {point['budget_per_week']} | {7 * point['false_alerts_per_entity_day']:.2f} | {point['caught']} | "
              f"{_minutes(point['median_delay_minutes'])} |" for point in results["aura"]["curve"]]
    risk = results["aura"]["risk"]["recall_at_budget"]
    lines += ["", "Its risk thresholded like the baselines' scores instead (each machine's at quantiles of its",
              "train-row risk; dashed in the plot) reaches "
              + ", ".join(f"{_pct(risk[str(b)])} at {b}" for b in BUDGETS) + ":",
              "the page budget's thresholds move with the fleet's last two weeks, so one fixed quantile of",
              "each machine's train rows' risk is not what pages.",
              "", "![recall against false alerts per entity-day](img/smd-recall-budget.png)", "",
              "How far thresholds alone could go on the same evidence (`bench/smd_ceiling.py`: the council's",
              "strengths, which the page budget ranks, thresholded *with the test labels in hand*, as no detector",
              "can): one threshold for the whole fleet reaches "
              + ", ".join(f"{_pct(ceiling['fleet'][str(b)])} at {b}" for b in BUDGETS) + "; one per machine, the",
              "false alerts shared out among the machines at best, "
              + ", ".join(f"{_pct(ceiling['entity'][str(b)])} at {b}" for b in BUDGETS) + ". A goal above the",
              "second is out of reach of any page budget or threshold: the evidence itself has to rank incidents",
              "above normal behaviour better. One per machine, each machine held to the same false alerts per day",
              "(what a budget learned per machine would reach if each machine's past told its thresholds exactly",
              "how often the judged days rise past them): "
              + ", ".join(f"{_pct(ceiling['equal'][str(b)])} at {b}" for b in BUDGETS) + "; the gap between that",
              "and the page budget's own recall is calibration, not evidence.", "",
              "Goals (issue 23): recall ≥ 70% at ≤ 0.25 false alerts per entity-day and ≥ 50% at ≤ 0.1, ahead of",
              "both baselines at every budget, median delay ≤ 0. The band baseline (|x − 1 h mean| / 1 h stddev, the",
              "current sample included as PromQL includes it) cannot exceed √59 on 60 rows, which a metric flat for",
              "an hour reaches whenever it moves; its strict quantiles all sit on that ceiling, so it scores lower",
              "here than in the README's table.", ""]
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def _minutes(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.0f} min"


def plot(results: dict, target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for name, result in results.items():
        curve = result["curve"]
        label = f"{name} at page budgets N" if "risk" in result else name
        line, = axis.plot([p["false_alerts_per_entity_day"] for p in curve], [p["recall"] or 0 for p in curve],
                          marker=".", label=label)
        if "risk" in result:
            risk = result["risk"]["curve"]
            axis.plot([p["false_alerts_per_entity_day"] for p in risk], [p["recall"] or 0 for p in risk],
                      linestyle="--", color=line.get_color(), label=f"{name} risk at quantiles")
            for point in curve[::3]:  # every third budget, each twice the one before: 0.25, 0.5, 1 … 16
                where = (point["false_alerts_per_entity_day"], point["recall"] or 0)
                axis.annotate(f"N={point['budget_per_week']}", where, textcoords="offset points", xytext=(4, -10),
                              fontsize=7, color=line.get_color())
        pages = result["pages"]
        axis.plot([pages["false_alerts_per_entity_day"]], [pages["recall"] or 0], marker="*", markersize=14,
                  color=line.get_color(), linestyle="none")
    for budget in BUDGETS:
        axis.axvline(budget, color="#bbb", linewidth=1, linestyle="--")
    axis.set_xscale("symlog", linthresh=0.05)
    axis.set_xlim(left=0)
    axis.set_xlabel("false alerts per entity-day (stars: operating points)")
    axis.set_ylabel("incident recall")
    axis.set_ylim(0, 1)
    axis.legend()
    figure.tight_layout()
    figure.savefig(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO / "results" / "smd")
    parser.add_argument("--reuse-backtest", action="store_true", help="score the backtest already under --output")
    args = parser.parse_args()
    started = time.monotonic()
    backtest = args.output / "backtest"
    if not args.reuse_backtest and cli(["backtest", f"--config.file={CONFIG}", f"--data.path={SMD}",
                                        "--record.evidence", f"--labels.file={SMD / 'labels.json'}",
                                        f"--output.dir={backtest}"]) != 0:
        sys.exit("the backtest failed")
    incidents = load_labels(SMD / "labels.json", "machine")
    aura = event_document(backtest, incidents, EARLY)
    print("re-deciding at page budgets…", file=sys.stderr)
    results = {"aura": {**aura, **budget_document(backtest, incidents),
                        "risk": {"recall_at_budget": aura["recall_at_budget"], "curve": aura["curve"]}}}
    for name in SERVER_DETECTORS:
        print(f"scoring the {name} baseline…", file=sys.stderr)
        results[name] = baseline_document(name)
    print("thresholding AURA's strengths with the labels (the ceiling)…", file=sys.stderr)
    ceiling = ceilings(backtest / "evidence.npz", CONFIG)
    seconds = time.monotonic() - started
    command = "make evaluate" + (" ARGS=--reuse-backtest" if args.reuse_backtest else "")
    (REPO / "docs" / "evaluation-smd.json").write_text(json.dumps({"detectors": results, "ceiling": ceiling},
                                                                  indent=1) + "\n")
    (REPO / "docs" / "evaluation-smd.md").write_text(markdown(results, ceiling, seconds, command))
    plot(results, REPO / "docs" / "img" / "smd-recall-budget.png")
    for name, result in results.items():
        print(f"{name}: pages {result['pages']}, recall at budget {result['recall_at_budget']}")


if __name__ == "__main__":
    main()
