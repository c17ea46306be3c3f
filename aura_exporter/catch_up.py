"""Learning from history at start-up.

An analysis that starts with nothing saved would spend its first day learning: its baselines, the usual
state of each feature and the page budget's tail are all learned from cycles. Prometheus already holds
that day. So beside the live cycles (which start at once, as they would without this), a learner runs
the analysis' cycle over the last `baseline.learn_from_history` of it, one interval after another,
through stages of its own (windows, topology, the live forecaster's model once it has one, council),
publishing nothing and counting nothing in the exporter's self-metrics; then over what came since,
until it has caught up with now (history read six hours at a time, so memory stays bounded). The live
cycle then takes its stages (AnalysisCycle.adopt): what they learned is what they would have learned
had the exporter started that long ago.
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np

from aura_exporter.clock import Clock
from aura_exporter.cycle import AnalysisCycle, CycleFailed
from aura_exporter.history import HistoryLoader, HistorySource
from aura_exporter.telemetry import SelfMetrics

log = logging.getLogger(__name__)

PIECE = 6 * 3600.0  # history is read this much at a time: memory bounded whatever learn_from_history says
OVERRUN = 1.5  # a learner slower than time itself stops after this many times the cycles it set out to run


async def catch_up(cycle: AnalysisCycle, load: HistoryLoader, clock: Clock) -> AnalysisCycle | None:
    """A learner of `cycle`'s analysis that has run every cycle of the last `learn_from_history` up to an
    interval before now, for `cycle` to adopt (up to where history stopped answering, if it did); None when
    it learned nothing (the analysis then learns from its live cycles, as without this step)."""
    analysis = cycle.analysis
    learner = AnalysisCycle(analysis, cycle.source, SelfMetrics([analysis.name]), cycle.executor)
    started, learned, ran = time.perf_counter(), 0, 0
    # the cycles the exporter would have run had it started that long ago, the last an interval before now;
    # then those that came meanwhile, until it has caught up
    planned = int(analysis.baseline.learn_from_history // analysis.interval)
    next_time = clock.now() - analysis.interval * planned
    per_piece = max(1, int(PIECE // analysis.interval))
    while ran < OVERRUN * planned:
        times = np.arange(next_time, clock.now() - analysis.interval + 1e-6, analysis.interval)[:per_piece]
        if not len(times):
            break
        learner.forecast.trained = cycle.forecast.trained  # the model the manager installed, once it has one
        history = await _read(learner, load, float(times[0]), float(times[-1]))
        if history is None:  # what it learned before stands
            break
        present = np.flatnonzero(np.isfinite(history.values).any(axis=(0, 2)))
        # from the first full window with data on: a Prometheus that has scraped for an hour has an hour to give
        first_full = history.timestamps[present[0]] + analysis.window - analysis.step if len(present) else np.inf
        learner.source = HistorySource(history, analysis)
        learned += await _run(learner, times[times > first_full], ran, planned)
        ran += len(times)
        next_time = float(times[-1]) + analysis.interval
    log.info("learned from history", extra={"analysis": analysis.name, "cycles": learned,
                                            "seconds": round(time.perf_counter() - started, 1)})
    return learner if learned else None


async def _read(learner: AnalysisCycle, load: HistoryLoader, first: float, last: float):
    """The history the cycles at [first, last] look at (their windows, and the forecaster's context when it
    has a model); None, logged, when it cannot be read."""
    analysis = learner.analysis
    lookback = max(analysis.window, analysis.forecast.context if learner.forecast.trained is not None else 0.0)
    try:
        return await asyncio.get_running_loop().run_in_executor(None, load, analysis, first - lookback, last)
    except Exception as err:  # noqa: BLE001 (whatever Prometheus answers, the live cycles go on)
        log.warning("history not read: learning from live cycles", extra={"analysis": analysis.name,
                                                                            "error": str(err)})
        return None


async def _run(learner: AnalysisCycle, times: np.ndarray, before: int, planned: int) -> int:
    """Run the learner's cycle at each of `times` (after `before` of the `planned` cycles); how many succeeded."""
    succeeded = 0
    for moment in times:
        try:
            await learner.run(float(moment))
            succeeded += 1
        except CycleFailed:
            pass
    log.info("learning from history", extra={"analysis": learner.analysis.name,
                                             "cycles": f"{min(before + len(times), planned)}/{planned}"})
    return succeeded
