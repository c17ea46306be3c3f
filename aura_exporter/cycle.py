"""One analysis cycle: sources → windows → topology → forecast → council, timed stage by stage."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Executor

from aura_exporter.config import Analysis
from aura_exporter.council import CouncilStage
from aura_exporter.exposition.selfmetrics import SelfMetrics
from aura_exporter.forecast.stage import ForecastStage
from aura_exporter.snapshot import AnalysisResult
from aura_exporter.sources.base import QueryError, RangeResult, Source
from aura_exporter.topology import TopologyStage
from aura_exporter.windows import Context, Windows, build_context, build_windows, context_grid, step_grid

log = logging.getLogger(__name__)


class CycleFailed(Exception):
    """A cycle that produced no result; the reason has been logged and counted."""


class AnalysisCycle:
    """Runs the cycles of one analysis; keeps its state (baselines) from one cycle to the next."""

    def __init__(self, analysis: Analysis, source: Source, metrics: SelfMetrics, executor: Executor,
                 workers: int = 1):
        self.analysis = analysis
        self.source = source
        self.metrics = metrics
        self.executor = executor
        self.topology = TopologyStage(analysis, workers)
        self.forecast = ForecastStage(analysis)
        self.council = CouncilStage(analysis)
        self.first_success: float | None = None

    async def run(self, now: float) -> AnalysisResult:
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

    async def _run(self, now: float) -> AnalysisResult:
        name = self.analysis.name
        started = time.perf_counter()
        grid = step_grid(self.analysis, now)
        results = await self._timed("query", self._fetch(grid[0], grid[-1]))
        loop = asyncio.get_running_loop()
        windows = await self._timed("windows", loop.run_in_executor(
            self.executor, build_windows, self.analysis, results, grid))
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
        verdict = await self._timed("council", loop.run_in_executor(
            self.executor, self.council.run, windows, topology, forecast, data_time))
        self.metrics.duration.labels(name, "cycle").observe(time.perf_counter() - started)
        self.metrics.cycles.labels(name, "success").inc()
        self.metrics.last_success.labels(name).set(time.time())
        log.debug("cycle done", extra={"analysis": name, "entities": len(windows.entities),
                                       "seconds": round(time.perf_counter() - started, 3)})
        if self.first_success is None:
            self.first_success = data_time
        return AnalysisResult(self.analysis, data_time, time.time(), windows, topology, verdict, forecast,
                              model_ready=forecast is not None and self._warmed_up(data_time))

    def _warmed_up(self, data_time: float) -> bool:
        """Baselines need a window beyond their reference plus min_history cycles of drift."""
        warm_up = self.analysis.window + self.analysis.baseline.min_history * self.analysis.interval
        return self.first_success is not None and data_time - self.first_success >= warm_up

    async def _timed(self, stage: str, awaitable):
        started = time.perf_counter()
        try:
            return await awaitable
        finally:
            self.metrics.duration.labels(self.analysis.name, stage).observe(time.perf_counter() - started)

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
        return build_context(self.analysis, results, grid, windows)

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
