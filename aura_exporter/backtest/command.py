"""`aura-exporter backtest`: history in (Prometheus or files), the live cycle replayed over it, and
scores, alerts, NAB-format results and an HTML report out."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aura_exporter.backtest.files import (
    FileSeries,
    files_history,
    find_entities,
    learning_rows,
    native_step,
    parse_time,
)
from aura_exporter.backtest.labels import Incident
from aura_exporter.backtest.outputs import (
    Rows,
    Scored,
    page_scores,
    score_rows,
    warnings_of,
    write_alerts,
    write_nab_results,
    write_scores,
)
from aura_exporter.backtest.recording import Recording, RecordingError, load_recordings, recorded_rows, save_recordings
from aura_exporter.backtest.replay import Trace, alerts, replay, rerun
from aura_exporter.config import Analysis, Config
from aura_exporter.durations import parse_duration
from aura_exporter.forecast.manager import MOST_TRAINING_ENTITIES, build_trained, train_on_history
from aura_exporter.forecast.stage import TrainedModel
from aura_exporter.history import History
from aura_exporter.mixin.settings import COUNCIL_FOR
from aura_exporter.progress import Progress, progress_bar
from aura_exporter.windows import EntityKey

DETECTOR = "aura"


# No repr: asyncio.run formats its finished task, result included, when it restores the SIGINT handler, and the
# repr of every cycle's arrays took seconds at the end of each replay.
@dataclass(frozen=True, repr=False)
class Outcome:
    """One analysis' replay over a group of entities, and each entity's per-row figures."""

    trace: Trace
    scored: dict[EntityKey, Scored]
    shifts: dict[EntityKey, float]


def replaying(analysis: Analysis) -> Progress:
    return progress_bar(f"{analysis.name}: replaying", unit="cycle")


def rescaled(analysis: Analysis, factor: float) -> Analysis:
    """The same analysis counted in rows of a series sampled `factor` times more sparsely: every
    duration multiplied, so windows, intervals and horizons keep their number of steps."""
    if factor == 1.0:
        return analysis
    forecast = analysis.forecast
    return dataclasses.replace(
        analysis, step=analysis.step * factor, window=analysis.window * factor, interval=analysis.interval * factor,
        max_gap=analysis.max_gap * factor,
        topology=dataclasses.replace(analysis.topology, novelty_memory=analysis.topology.novelty_memory * factor,
                                     novelty_warm_up=analysis.topology.novelty_warm_up * factor),
        baseline=dataclasses.replace(analysis.baseline, refresh_interval=analysis.baseline.refresh_interval * factor,
                                     forget_after=analysis.baseline.forget_after * factor),
        forecast=dataclasses.replace(forecast, horizons=tuple(h * factor for h in forecast.horizons),
                                     context=forecast.context * factor, history=forecast.history * factor))


def learning_part(history: History, ends: dict[EntityKey, float]) -> History:
    """The history up to each entity's end of learning (on the timeline), the rest hidden."""
    values = history.values.copy()
    for row, key in enumerate(history.entities):
        values[row, history.timestamps >= ends[key]] = np.nan
    return History(history.entities, history.timestamps, values)


def train(analysis: Analysis, history: History) -> TrainedModel | None:
    if not analysis.forecast.enabled:
        return None
    state, report = train_on_history(analysis, history, progress=progress_bar("training", unit="epoch"))
    print(f"{analysis.name}: forecaster trained, {report.epochs} epochs, held-out loss "
          f"{report.validation_loss:.4f}", file=sys.stderr)
    return build_trained(analysis, state, {"trained_at": time.time()})


async def backtest_files(analysis: Analysis, root: Path, learn_until: float | None = None,
                         workers: int = 1, record: bool = False) -> list[Outcome]:
    """Every series file under `root`, replayed group by group of equal sampling interval; each entity
    learns (the forecaster trains) on its rows before `learn_until`, or as its files say (learning_rows)."""
    series = find_entities(root, analysis)
    groups: dict[float, dict[str, dict[str, FileSeries]]] = {}
    for name, by_feature in series.items():
        groups.setdefault(native_step(next(iter(by_feature.values()))), {})[name] = by_feature
    outcomes = []
    for step, members in sorted(groups.items()):
        grouped = rescaled(analysis, step / analysis.step)
        placed = files_history(grouped, members)
        history = placed.history
        print(f"{analysis.name}: {len(members)} series sampled every {step:g} s, {len(history.timestamps)} steps",
              file=sys.stderr)
        rows: dict[EntityKey, Rows] = {(name,): entity_rows(by_feature, analysis, placed.shifts[(name,)], learn_until)
                for name, by_feature in members.items()}
        trained = train(grouped, learning_part(history, {key: r.learning_end for key, r in rows.items()}))
        trace = await replay(grouped, history, float(history.timestamps[0]) + grouped.window,
                             float(history.timestamps[-1]), trained, replaying(analysis), workers, record)
        scored = {key: score_rows(trace, key, r) for key, r in rows.items()}
        outcomes.append(Outcome(trace, scored, placed.shifts))
    return outcomes


def entity_rows(by_feature: dict[str, FileSeries], analysis: Analysis, shift: float, learn_until: float | None) -> Rows:
    """The rows an entity is scored at: its first feature's, with their own times and their learning part."""
    first = by_feature.get(analysis.features[0].name, next(iter(by_feature.values())))
    return Rows(first.timestamps, first.timeline + shift, first.values,
                learning_rows(first, learn_until))


async def backtest_prometheus(config: Config, analysis: Analysis, start: float, end: float,
                              workers: int = 1, record: bool = False) -> list[Outcome]:
    from aura_exporter.history import prometheus_history

    history = prometheus_history(config.prometheus, analysis, start - analysis.warm_up, end,
                                 progress_bar("fetching history", unit="chunk"))
    trained = None
    if analysis.forecast.enabled:
        before = prometheus_history(config.prometheus, analysis, start - analysis.forecast.history, start,
                                    progress_bar("fetching training history", unit="chunk"), MOST_TRAINING_ENTITIES)
        trained = train(analysis, before)
    trace = await replay(analysis, history, start, end, trained, replaying(analysis), workers, record)
    scored = {}
    for row, key in enumerate(history.entities):
        entity = trace.entities.get(key)
        times = np.array(entity.times if entity else [], dtype=np.float64)
        at = np.searchsorted(history.timestamps, times)
        values = history.values[row, np.clip(at, 0, len(history.timestamps) - 1), 0] if times.size else times
        scored[key] = score_rows(trace, key, Rows(times, times, values, np.zeros(len(times), dtype=bool)))
    return [Outcome(trace, scored, {})]


def rerun_outcomes(analysis: Analysis, path: Path) -> list[Outcome]:
    """The decision layer of `analysis` over the evidence recorded in `path` (backtest/recording.py), group
    by group, scored at the rows the recorded replay scored."""
    outcomes = []
    for factor, arrays in load_recordings(path, analysis):
        grouped = rescaled(analysis, factor)
        try:
            recording = Recording.from_arrays(grouped, arrays)
            rows = recorded_rows(arrays)
        except (KeyError, ValueError, TypeError) as err:
            raise RecordingError("corrupt", f"{path} has a malformed recording: {err}") from err
        trace = rerun(recording, progress_bar(f"{analysis.name}: deciding again", unit="cycle"))
        scored = {key: score_rows(trace, key, Rows(r["times"], r["timeline"], r["values"], r["learning"] > 0))
                  for key, r in rows.items()}
        outcomes.append(Outcome(trace, scored, {key: float(r["shift"][0]) if len(r["shift"]) else 0.0
                                                for key, r in rows.items()}))
    return outcomes


def save_evidence(path: Path, analysis: Analysis, outcomes: list[Outcome]) -> None:
    groups = []
    for outcome in outcomes:
        assert outcome.trace.recording is not None
        rows = {key: {"times": s.rows.times, "timeline": s.rows.timeline, "values": s.rows.values,
                      "learning": s.rows.learning.astype(np.float64),
                      "shift": np.full(len(s.rows.times), outcome.shifts.get(key, 0.0))}
                for key, s in outcome.scored.items()}
        groups.append((outcome.trace.analysis.step / analysis.step, outcome.trace.recording, rows))
    save_recordings(path, analysis, groups)


def label_rows(scored: Scored, labels: dict[str, str], incidents: list[Incident]) -> np.ndarray:
    inside = np.zeros(len(scored.rows.times), dtype=int)
    for incident in incidents:
        if incident.matches(labels):
            inside |= (scored.rows.times >= incident.start) & (scored.rows.times <= incident.end)
    return inside


def write_outputs(output: Path, analysis: Analysis, outcomes: list[Outcome], incidents: list[Incident],
                  nab_layout: bool, meta: dict) -> list:
    from aura_exporter.backtest.report import write_report

    output.mkdir(parents=True, exist_ok=True)
    merged = Trace(analysis, outcomes[0].trace.agents if outcomes else ())
    scored: dict[EntityKey, Scored] = {}
    shifts: dict[EntityKey, float] = {}
    found = []
    hold = parse_duration(COUNCIL_FOR)
    for outcome in outcomes:
        merged.entities.update(outcome.trace.entities)
        merged.cycles += outcome.trace.cycles
        merged.failed_cycles += outcome.trace.failed_cycles
        scored.update(outcome.scored)
        shifts.update(outcome.shifts)
        found += alerts(outcome.trace, hold * outcome.trace.analysis.step / analysis.step)
    names = analysis.entity_labels
    warnings = warnings_of(found, names)
    pages = {key: page_scores(s, warnings.get(key, [])) for key, s in scored.items()}
    write_scores(output / "scores.csv", merged, scored, pages)
    write_alerts(output / "alerts.json", found, shifts, names)
    labelled = {key: label_rows(s, dict(zip(names, key, strict=True)), incidents) for key, s in scored.items()}
    if nab_layout:
        write_nab_results(output / "results", DETECTOR, scored, labelled, pages)
    write_report(output / "report.html", analysis, scored, found, incidents, shifts)
    if outcomes and all(o.trace.recording is not None for o in outcomes):
        save_evidence(output / "evidence.npz", analysis, outcomes)
    (output / "run.json").write_text(json.dumps({
        **meta, "analysis": analysis.name, "entity_labels": list(names), "entities": len(scored),
        "cycles": merged.cycles, "failed_cycles": merged.failed_cycles, "alerts": len(found),
        "agents": list(merged.agents)}, indent=1) + "\n")
    return found


def quiet_cycles() -> None:
    """A replay runs thousands of cycles: their per-cycle warnings would drown the progress bar."""
    for name in ("aura_exporter.cycle", "aura_exporter.forecast"):
        logging.getLogger(name).setLevel(logging.ERROR)



def main(args) -> int:
    """The `backtest` command."""
    import asyncio

    from aura_exporter.backtest.files import InputError
    from aura_exporter.backtest.labels import LabelError, load_labels
    from aura_exporter.config import ConfigError, load_config

    try:
        config = load_config(args.config_file)
        analysis = next((a for a in config.analyses if args.analysis in (None, a.name) and isinstance(a, Analysis)),
                        None)
        if analysis is None:
            raise InputError(f"no analysis named {args.analysis!r} in {args.config_file} "
                             "(graph analyses are not backtested)")
        incidents = load_labels(Path(args.labels), analysis.entity_labels[0]) if args.labels else []
        if args.data is None and args.start is None and args.evidence is None:
            raise InputError("--history.from is needed to backtest on Prometheus history (or --data.path for files, or "
                             "--evidence.file for a recording)")
        if args.data is not None and len(analysis.entity_labels) != 1:
            raise InputError(f"analysis {analysis.name!r}: backtests on files need exactly one entity label")
        quiet_cycles()
        if args.learn_until is not None and args.data is None:
            raise InputError("--learn.until is for --data.path (on Prometheus, learning ends at --history.from)")
        if args.evidence is not None:
            outcomes = rerun_outcomes(analysis, Path(args.evidence))
        elif args.data is not None:
            until = parse_time(args.learn_until) if args.learn_until is not None else None
            outcomes = asyncio.run(backtest_files(analysis, Path(args.data), until, record=args.record_evidence))
        else:
            end = parse_time(args.end) if args.end else time.time()
            outcomes = asyncio.run(backtest_prometheus(config, analysis, parse_time(args.start), end,
                                                       record=args.record_evidence))
    except ConfigError as err:
        for problem in err.problems:
            print(f"{err.source}: {problem}", file=sys.stderr)
        return 1
    except (InputError, LabelError, RecordingError, ValueError) as err:
        print(err, file=sys.stderr)
        return 1
    meta = {"config": args.config_file, "data": args.data, "from": args.start, "to": args.end,
            "learn_until": args.learn_until, "evidence": args.evidence}
    found = write_outputs(Path(args.output), analysis, outcomes, incidents,
                          args.data is not None or args.evidence is not None, meta)
    print(f"wrote {args.output}/scores.csv, alerts.json ({len(found)} alerts), report.html"
          + (", results/ (NAB format)" if args.data is not None else ""), file=sys.stderr)
    return 0
