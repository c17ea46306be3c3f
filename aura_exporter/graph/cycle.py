"""One graph analysis cycle: the edge query over the window, then the graph stage."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Executor
from pathlib import Path

from aura_exporter.config import Analysis
from aura_exporter.cycle import Cycle, CycleFailed
from aura_exporter.exposition.selfmetrics import SelfMetrics
from aura_exporter.graph.baseline_file import graph_baseline_path, load_graph_baseline, save_graph_baseline
from aura_exporter.graph.edges import GraphTooLarge
from aura_exporter.graph.stage import GraphStage
from aura_exporter.snapshot import GraphResult
from aura_exporter.sources.base import Source
from aura_exporter.topology.baseline_file import BaselineFileError
from aura_exporter.windows import step_grid

log = logging.getLogger(__name__)


class GraphCycle(Cycle):
    """Runs the cycles of one graph analysis; keeps its baseline graph from one cycle to the next and,
    given a state directory, across restarts (saved whenever it is learned, and on shutdown)."""

    def __init__(self, analysis: Analysis, source: Source, metrics: SelfMetrics, executor: Executor,
                 storage: Path | None = None):
        super().__init__(analysis, source, metrics, executor)
        self.stage = GraphStage(analysis)
        self.state_path = graph_baseline_path(storage, analysis) if storage is not None else None
        self.saved: float | None = None  # learned_at of the baseline last written
        self.restored = False  # until then, saving would overwrite the file not yet read

    def restore(self, now: float) -> None:
        self.restored = True
        if self.state_path is None or not self.state_path.exists():
            return
        try:
            load_graph_baseline(self.state_path, self.analysis, self.stage)
            assert self.stage.baseline is not None
            if self.stage.baseline.learned_at > now + self.analysis.interval:
                self.stage.baseline = self.stage.unusual_since = None
                raise BaselineFileError("foreign", f"{self.state_path} was saved at a later time than now "
                                                   "(a replay, or a clock set back)")
        except BaselineFileError as err:
            self.metrics.baseline_errors.labels(self.analysis.name, err.reason).inc()
            log.warning("graph baseline not loaded: learning afresh", extra={
                "analysis": self.analysis.name, "reason": err.reason, "error": str(err)})
            return
        self.saved = self.stage.baseline.learned_at
        log.info("graph baseline loaded", extra={"analysis": self.analysis.name, "path": str(self.state_path)})

    def save(self) -> None:
        if self.state_path is None or not self.restored or self.stage.baseline is None:
            return
        try:
            save_graph_baseline(self.state_path, self.analysis, self.stage)
        except OSError as err:
            self.metrics.baseline_errors.labels(self.analysis.name, "write").inc()
            log.error("graph baseline not saved", extra={"analysis": self.analysis.name, "error": str(err)})
            return
        self.saved = self.stage.baseline.learned_at

    async def _run(self, now: float) -> GraphResult:
        name = self.analysis.name
        started = time.perf_counter()
        grid = step_grid(self.analysis, now)
        results = await self._timed("query", self._fetch(grid[0], grid[-1]))
        try:
            outcome = await self._timed("topology", asyncio.get_running_loop().run_in_executor(
                self.executor, self.stage.run, results, float(grid[-1])))
        except GraphTooLarge as err:
            self.metrics.limit_hits.labels(name, "services").inc()
            log.warning("graph too large", extra={"analysis": name, "error": str(err)})
            raise CycleFailed(str(err)) from err
        if not outcome.graph.services:  # an empty graph must not pass for a healthy mesh
            skipped = ", ".join(f"{count} {reason}" for reason, count in outcome.graph.skipped.items() if count)
            log.warning("no edge to analyse", extra={"analysis": name, "skipped": skipped or "none returned"})
            raise CycleFailed(f"no edge to analyse (skipped: {skipped or 'none returned'})")
        self._succeeded(started, len(outcome.graph.services))
        learned = self.stage.baseline.learned_at if self.stage.baseline is not None else None
        if self.state_path is not None and self.saved != learned:  # a baseline (re)learned this cycle
            await asyncio.get_running_loop().run_in_executor(self.executor, self.save)
        return GraphResult(self.analysis, float(grid[-1]), time.time(), outcome)
