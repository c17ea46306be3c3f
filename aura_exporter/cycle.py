"""One analysis cycle: sources → windows → topology → forecast → council, timed stage by stage."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from pathlib import Path
from typing import Generic, NoReturn, TypeVar

import numpy as np

from aura_exporter.config import Analysis, GraphAnalysis
from aura_exporter.council import CouncilStage
from aura_exporter.forecast.stage import Forecast, ForecastStage
from aura_exporter.snapshot import AnalysisResult, GraphResult
from aura_exporter.sources.base import QueryError, RangeResult, Source
from aura_exporter.telemetry import SelfMetrics
from aura_exporter.topology import TopologyStage
from aura_exporter.topology.baseline_file import BaselineFileError, baselines_path, load_baselines, save_baselines
from aura_exporter.window_cache import WindowCache
from aura_exporter.windows import Context, Windows, build_context, build_lagged, context_grid, lagged_grid, step_grid

log = logging.getLogger(__name__)


class CycleFailed(Exception):
    """A cycle that produced no result; the reason has been logged and counted."""


Analysed = TypeVar("Analysed", Analysis, GraphAnalysis)


class Cycle(Generic[Analysed]):
    """What every kind of analysis cycle shares: queries, timing, failure accounting, and its state
    file. A subclass computes its result in `_run`; one with state to keep across restarts sets
    `state_path` and says how to `_load`, `_forget` and `_write` it."""

    def __init__(self, analysis: Analysed, source: Source, metrics: SelfMetrics, executor: Executor,
                 state_path: Path | None = None):
        self.analysis: Analysed = analysis
        self.source = source
        self.metrics = metrics
        self.executor = executor
        self.state_path = state_path
        self.restored = False  # until then, saving would overwrite the file not yet read

    def restore(self, now: float) -> None:
        """Load the state saved by an earlier run, if any (blocking: call it in the executor). A file that
        cannot be used, or was saved later than now (a replay, a clock set back), is counted and logged,
        and the state is learned afresh."""
        self.restored = True
        if self.state_path is None or not self.state_path.exists():
            return
        try:
            if self._load() > now + self.analysis.interval:
                self._forget()
                raise BaselineFileError("foreign", f"{self.state_path} was saved at a later time than now "
                                                   "(a replay, or a clock set back)")
        except BaselineFileError as err:
            self.metrics.baseline_errors.labels(self.analysis.name, err.reason).inc()
            log.warning("state not loaded: learning afresh", extra={"analysis": self.analysis.name,
                                                                     "reason": err.reason, "error": str(err)})
            return
        log.info("state loaded", extra={"analysis": self.analysis.name, "path": str(self.state_path)})

    def save(self) -> None:
        """Write the state (blocking, and in the thread that changes it: call it in the executor); a
        failed write is counted and logged, and the next one tries again."""
        if self.state_path is None or not self.restored:
            return
        try:
            self._write()
        except OSError as err:
            self.metrics.baseline_errors.labels(self.analysis.name, "write").inc()
            log.error("state not saved", extra={"analysis": self.analysis.name, "error": str(err)})

    def _load(self) -> float:
        """Read the state file (BaselineFileError when unusable); the latest time it knows of."""
        raise NotImplementedError

    def _forget(self) -> None:
        """Drop what `_load` read."""
        raise NotImplementedError

    def _write(self) -> None:
        """Write the state file (OSError when the disk says no)."""
        raise NotImplementedError

    async def run(self, now: float):
        """A result for the window ending at `now`, or CycleFailed (logged and counted)."""
        try:
            return await self._run(now)
        except CycleFailed:
            self.metrics.cycles.labels(self.analysis.name, "failure").inc()
            raise
        except Exception as err:  # never let one analysis take the exporter down
            log.exception("cycle crashed", extra={"analysis": self.analysis.name})
            self.metrics.cycles.labels(self.analysis.name, "failure").inc()
            raise CycleFailed(str(err)) from err

    async def _run(self, now: float):
        raise NotImplementedError

    def _nothing_to_analyse(self, what: str, skipped: Mapping[str, int]) -> NoReturn:
        """Fail the cycle whose answers left nothing to analyse, saying what was left out and why."""
        reasons = ", ".join(f"{count} {reason}" for reason, count in skipped.items() if count) or "none returned"
        log.warning(f"no {what} to analyse", extra={"analysis": self.analysis.name, "skipped": reasons})
        raise CycleFailed(f"no {what} to analyse (skipped: {reasons})")

    def _succeeded(self, started: float, entities: int) -> None:
        name = self.analysis.name
        self.metrics.duration.labels(name, "cycle").observe(time.perf_counter() - started)
        self.metrics.cycles.labels(name, "success").inc()
        self.metrics.last_success.labels(name).set(time.time())
        log.debug("cycle done", extra={"analysis": name, "entities": entities,
                                       "seconds": round(time.perf_counter() - started, 3)})

    async def _timed(self, stage: str, awaitable):
        started = time.perf_counter()
        try:
            return await awaitable
        finally:
            self.metrics.duration.labels(self.analysis.name, stage).observe(time.perf_counter() - started)

    async def _fetch(self, start: float, end: float, step: float | None = None) -> list[RangeResult]:
        answers = await asyncio.gather(
            *(self.source.query_range(self.analysis, f, start, end, step) for f in self.analysis.features),
            return_exceptions=True,
        )
        failures = [a for a in answers if isinstance(a, BaseException)]
        for failure in failures:
            if isinstance(failure, QueryError):
                self.metrics.query_errors.labels(self.analysis.name, failure.reason).inc()
                if failure.reason == "too_many_series":
                    self.metrics.limit_hits.labels(self.analysis.name, "series").inc()
                log.warning("query failed", extra={"analysis": self.analysis.name, "reason": failure.reason,
                                                   "error": str(failure)})
            else:
                log.error("query crashed", exc_info=failure, extra={"analysis": self.analysis.name})
        if failures:
            raise CycleFailed(f"{len(failures)} of {len(answers)} feature queries failed")
        return [a for a in answers if isinstance(a, RangeResult)]


class AnalysisCycle(Cycle[Analysis]):
    """Runs the cycles of one metrics analysis; keeps its state (baselines) from one cycle to the next
    and, given a state directory, across restarts."""

    def __init__(self, analysis: Analysis, source: Source, metrics: SelfMetrics, executor: Executor,
                 workers: int = 1, storage: Path | None = None,
                 graph: Callable[[], GraphResult | None] | None = None):
        super().__init__(analysis, source, metrics, executor,
                         baselines_path(storage, analysis) if storage is not None else None)
        self.graph = graph  # the latest result of the graph analysis linked by council.graph
        self.topology = TopologyStage(analysis, workers)
        self.forecast = ForecastStage(analysis)
        self.council = CouncilStage(analysis)
        self.cache = WindowCache(analysis)
        self.first_success: float | None = None
        self.saved_at: float | None = None

    @property
    def learned(self) -> bool:
        """Whether the stages hold anything learned (restored from the state file, or from cycles)."""
        return bool(self.topology.baselines.entities)

    def adopt(self, learner: AnalysisCycle) -> None:
        """Take the stages a learner taught from history (aura_exporter/catch_up.py) in place of what the live
        cycles learned meanwhile: between two cycles, so no stage is half-way through one."""
        self.topology, self.council = learner.topology, learner.council
        # the stage itself is where the manager installs models
        self.forecast.residuals, self.forecast.tailoring = learner.forecast.residuals, learner.forecast.tailoring
        starts = [t for t in (self.first_success, learner.first_success) if t is not None]
        self.first_success = min(starts) if starts else None

    def _load(self) -> float:
        assert self.state_path is not None
        baselines = self.topology.baselines
        extra: dict[str, np.ndarray] = {}
        self.first_success = load_baselines(self.state_path, self.analysis, baselines, extra)
        if self.council.budget is not None and not self.council.restore_budget(extra):
            log.info("page budget not in the state file: learning it afresh", extra={"analysis": self.analysis.name})
        if not self.topology.state.restore(extra, len(self.analysis.features)):
            log.info("usual states not in the state file: learning them afresh", extra={"analysis": self.analysis.name})
        if not self.forecast.tailoring.restore(extra, len(self.analysis.features)):
            log.info("forecast combination or bands not in the state file: learning them afresh",
                     extra={"analysis": self.analysis.name})
        return max((e.last_seen for e in baselines.entities.values()), default=-math.inf)

    def _forget(self) -> None:
        self.topology.baselines.entities.clear()
        self.topology.state.entities.clear()
        self.forecast.tailoring.forget()
        if self.council.budget is not None:
            self.council.budget.forget()
        self.first_success = None

    def _write(self) -> None:
        assert self.state_path is not None
        save_baselines(self.state_path, self.analysis, self.topology.baselines, self.first_success,
                       self.council.budget_state() | self.topology.state.state() | self.forecast.tailoring.state())
        self.saved_at = time.monotonic()

    async def _run(self, now: float) -> AnalysisResult:
        name = self.analysis.name
        started = time.perf_counter()
        grid = step_grid(self.analysis, now)
        start = self.cache.fetch_start(grid)
        results = await self._timed("query", self._fetch(start, grid[-1]))
        loop = asyncio.get_running_loop()
        windows = await self._timed("windows", loop.run_in_executor(
            self.executor, self.cache.windows, results, grid, start))
        if not windows.entities:  # an empty answer must not pass for a healthy fleet
            self._nothing_to_analyse("entity", windows.skipped)
        if windows.skipped.get("over_max_entities"):
            self.metrics.limit_hits.labels(name, "entities").inc()
            log.warning("max_entities reached: entities left out", extra={
                "analysis": name, "left_out": windows.skipped["over_max_entities"]})
        topology = await self._timed("topology", loop.run_in_executor(
            self.executor, self.topology.run, windows, float(grid[-1])))
        context = await self._context(float(grid[-1]), windows)
        forecast = await self._timed("forecast", loop.run_in_executor(
            self.executor, self.forecast.run, windows, context))
        data_time = float(grid[-1])
        graph = self.graph() if self.graph is not None else None
        verdict = await self._timed("council", loop.run_in_executor(
            self.executor, self.council.run, windows, topology, forecast, data_time,
            graph.outcome if graph is not None else None))
        self._succeeded(started, len(windows.entities))
        if self.first_success is None:
            self.first_success = data_time
        if self.state_path is not None and (self.saved_at is None or
                                            time.monotonic() - self.saved_at >= self.analysis.baseline.save_interval):
            await loop.run_in_executor(self.executor, self.save)
        return AnalysisResult(self.analysis, data_time, time.time(), windows, topology, verdict, forecast,
                              model_ready=self._forecasting(forecast) and self._warmed_up(data_time))

    def _forecasting(self, forecast: Forecast | None) -> bool:
        """A trained forecaster has answered, or the analysis runs without one (forecast.enabled: false)."""
        return forecast is not None or not self.analysis.forecast.enabled

    def _warmed_up(self, data_time: float) -> bool:
        """Baselines need a window beyond their reference plus min_history cycles of drift."""
        return self.first_success is not None and data_time - self.first_success >= self.analysis.warm_up

    async def _context(self, end: float, windows: Windows) -> Context | None:
        """The forecaster's context, once it has a model; a failed fetch costs this cycle's forecast
        (counted and logged like any query error), not its topology."""
        if self.forecast.trained is None:
            return None
        grid = context_grid(self.analysis, end)
        try:
            results = await self._timed("query", self._fetch(grid[0], grid[-1], self.analysis.forecast.context_step))
        except CycleFailed:
            return None
        context = build_context(self.analysis, results, grid, windows)
        return Context(context.timestamps, context.values, await self._lagged(grid, windows))

    async def _lagged(self, grid: np.ndarray, windows: Windows) -> np.ndarray:
        """[E, S, n + H, F] each season's values one season before the context and the horizons' targets,
        fetched only for seasons the model has learned; NaN (the season absent) where a fetch fails."""
        trained = self.forecast.trained
        assert trained is not None
        seasons = self.analysis.forecast.seasons
        times = np.concatenate([grid, grid[-1] + np.array(self.forecast.horizons)])
        lagged = np.full((len(windows.entities), len(seasons), len(times), len(windows.features)), np.nan)
        for k, (season, learned) in enumerate(zip(seasons, trained.seasons_learned, strict=True)):
            if not learned:
                continue
            fetched = lagged_grid(self.analysis, times - season)
            try:
                results = await self._timed("query", self._fetch(fetched[0], fetched[-1],
                                                                 self.analysis.forecast.context_step))
            except CycleFailed:
                continue
            lagged[:, k] = build_lagged(self.analysis, results, fetched, times - season, windows)
        return lagged
