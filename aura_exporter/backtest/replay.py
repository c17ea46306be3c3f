"""Run an analysis' real cycle over history, interval after interval, and keep what it said.

The cycle is the live one (windows, topology with its baselines, forecast, council with its
decisions), fed by a HistorySource; only the clock differs. Each cycle's per-entity risk, agent
scores, drift and residual z-scores are recorded, and the alerts the shipped rules would have
fired are derived from the decisions (a decision held for the rule's `for:` duration).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from aura_exporter.backtest.recording import Recording
from aura_exporter.config import Analysis
from aura_exporter.council import CouncilStage, Verdict
from aura_exporter.council.explanation import explain
from aura_exporter.cycle import AnalysisCycle, CycleFailed
from aura_exporter.forecast.manager import TrainedModel
from aura_exporter.history import History, HistorySource
from aura_exporter.progress import Progress
from aura_exporter.snapshot import AnalysisResult
from aura_exporter.telemetry import SelfMetrics
from aura_exporter.windows import EntityKey


@dataclass
class EntityTrace:
    """One entity's per-cycle record, in time order."""

    times: list[float] = field(default_factory=list)
    risk: list[float] = field(default_factory=list)
    decision: list[int] = field(default_factory=list)
    agent_scores: list[np.ndarray] = field(default_factory=list)
    drift_zscore: list[float] = field(default_factory=list)
    residual_zscore: list[float] = field(default_factory=list)  # the largest |z| over features, NaN before forecasts
    ready: list[bool] = field(default_factory=list)
    usual_per_week: list[float] = field(default_factory=list)  # the page budget's λ; NaN while it learns, or off
    summaries: dict[float, str] = field(default_factory=dict)  # time → explanation, where the decision rose


@dataclass
class Trace:
    analysis: Analysis
    agents: tuple[str, ...] = ()
    entities: dict[EntityKey, EntityTrace] = field(default_factory=dict)
    cycles: int = 0
    failed_cycles: int = 0
    recording: Recording | None = None  # the evidence of every cycle, when asked for (backtest/recording.py)


@dataclass(frozen=True)
class Alert:
    entity: dict[str, str]
    severity: str  # "warning" (warn or worse) or "critical"
    start: float  # when it would have fired: the decision's start plus the rule's `for:`
    end: float | None  # when the decision fell back; None while still active at the end
    decided_at: float
    explanation: str


def cycle_times(analysis: Analysis, start: float, end: float) -> np.ndarray:
    first = np.ceil(start / analysis.interval) * analysis.interval
    return np.arange(first, end + 1e-6, analysis.interval)


async def replay(analysis: Analysis, history: History, start: float, end: float,
                 trained: TrainedModel | None = None, progress: Progress | None = None, workers: int = 1,
                 record_evidence: bool = False) -> Trace:
    """Cycles at every interval in [start, end] over `history` (which should begin a window and
    the baselines' warm-up before `start`); with `record_evidence`, what the agents saw is kept too."""
    source = HistorySource(history, analysis)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aura-backtest")
    cycle = AnalysisCycle(analysis, source, SelfMetrics([analysis.name]), executor, workers)
    if trained is not None:
        cycle.forecast.install(trained)
    trace = Trace(analysis, recording=Recording(analysis) if record_evidence else None)
    times = cycle_times(analysis, start, end)
    try:
        for number, now in enumerate(times, 1):
            try:
                record(trace, await cycle.run(float(now)))
            except CycleFailed:
                trace.failed_cycles += 1
            if progress is not None:
                progress(number, len(times))
    finally:
        executor.shutdown(wait=False)
    return trace


def record(trace: Trace, result: AnalysisResult) -> None:
    residual = (np.fmax.reduce(np.abs(result.forecast.residual_zscore), axis=1)  # NaN where all are NaN, quietly
                if result.forecast is not None else np.full(len(result.verdict.risk), np.nan))
    record_verdict(trace, result.windows.entities, result.data_time, result.verdict, result.topology.drift_zscore,
                   residual, result.model_ready, lambda i: result.explanation(i).summary)
    if trace.recording is not None:
        trace.recording.add(result, residual)


def record_verdict(trace: Trace, keys: tuple[EntityKey, ...], data_time: float, verdict: Verdict,
                   drift_zscore: np.ndarray, residual: np.ndarray, ready: bool, summary: Callable[[int], str]) -> None:
    """One cycle's verdict on each entity into its trace; `summary(i)` explains entity i where its decision rose."""
    trace.cycles += 1
    trace.agents = verdict.agents
    for i, key in enumerate(keys):
        entity = trace.entities.setdefault(key, EntityTrace())
        decision = int(verdict.decision[i])
        if decision > 0 and (not entity.decision or entity.decision[-1] < decision):
            entity.summaries[data_time] = summary(i)
        entity.times.append(data_time)
        entity.risk.append(float(verdict.risk[i]))
        entity.decision.append(decision)
        entity.agent_scores.append(verdict.scores[i].copy())
        entity.drift_zscore.append(float(drift_zscore[i]))
        entity.residual_zscore.append(float(residual[i]))
        entity.ready.append(ready)
        entity.usual_per_week.append(float(verdict.usual_per_week[i]))


def rerun(recording: Recording, progress: Progress | None = None) -> Trace:
    """The decision layer alone (the council of the recording's analysis) over recorded evidence: the trace
    a full replay with these council settings would have left."""
    analysis = recording.analysis
    council = CouncilStage(analysis)
    trace = Trace(analysis)
    limits = {f.name: f.limit for f in analysis.features if f.limit is not None}
    horizon = max(analysis.forecast.horizons, default=0.0)
    no_critical = np.empty((0, 3))
    for number, (moment, ready, keys, evidence, residual) in enumerate(recording.cycles(), 1):
        verdict = council.weigh(evidence, keys, moment)

        def summary(i: int, verdict: Verdict = verdict) -> str:
            return explain(verdict, no_critical, limits, horizon, i).summary

        record_verdict(trace, keys, moment, verdict, evidence.drift, residual, ready, summary)
        if progress is not None:
            progress(number, len(recording.times))
    return trace


def alerts(trace: Trace, hold: float, require_ready: bool = True) -> list[Alert]:
    """The alerts the council rules would have fired: for each severity, every run of cycles at
    that decision or worse shown for longer than `hold` seconds (the rules' `for:`). A cycle's decision is
    shown until the next cycle replaces it, so a run of one 5-minute cycle is shown for 5 minutes."""
    found = []
    for key, entity in trace.entities.items():
        labels = dict(zip(trace.analysis.entity_labels, key, strict=True))
        times, decisions = np.array(entity.times), np.array(entity.decision)
        eligible = np.array(entity.ready) if require_ready else np.ones(len(times), dtype=bool)
        for level, severity in ((1, "warning"), (2, "critical")):
            for first, last in runs((decisions >= level) & eligible):
                fires = times[first] + hold
                end = float(times[last + 1]) if last + 1 < len(times) else None
                if (end if end is not None else times[last] + trace.analysis.interval) <= fires:
                    continue
                explanation = next((text for t, text in sorted(entity.summaries.items()) if t >= times[first]), "")
                found.append(Alert(labels, severity, float(fires), end, float(times[first]), explanation))
    return sorted(found, key=lambda a: (a.start, a.severity))


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive [first, last] index pairs of the True runs."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1, strict=True))


def run(analysis: Analysis, history: History, start: float, end: float, **kwargs) -> Trace:
    return asyncio.run(replay(analysis, history, start, end, **kwargs))

