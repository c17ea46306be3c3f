"""One graph analysis cycle: the edge query over the window, then the graph stage."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Executor
from pathlib import Path

from aura_exporter.config import GraphAnalysis
from aura_exporter.cycle import Cycle, CycleFailed
from aura_exporter.graph.baseline_file import graph_baseline_path, load_graph_baseline, save_graph_baseline
from aura_exporter.graph.edges import GraphTooLarge
from aura_exporter.graph.stage import GraphStage
from aura_exporter.snapshot import GraphResult
from aura_exporter.sources.base import Source
from aura_exporter.telemetry import SelfMetrics
from aura_exporter.windows import step_grid

log = logging.getLogger(__name__)


class GraphCycle(Cycle[GraphAnalysis]):
    """Runs the cycles of one graph analysis; keeps its baseline graph from one cycle to the next and,
    given a state directory, across restarts (saved whenever it is learned, and on shutdown)."""

    def __init__(self, analysis: GraphAnalysis, source: Source, metrics: SelfMetrics, executor: Executor,
                 storage: Path | None = None):
        super().__init__(analysis, source, metrics, executor,
                         graph_baseline_path(storage, analysis) if storage is not None else None)
        self.stage = GraphStage(analysis)
        self.saved: float | None = None  # learned_at of the baseline last written

    def _load(self) -> float:
        assert self.state_path is not None
        load_graph_baseline(self.state_path, self.analysis, self.stage)
        assert self.stage.baseline is not None
        self.saved = self.stage.baseline.learned_at
        return self.saved

    def _forget(self) -> None:
        self.stage.baseline = self.stage.unusual_since = None
        self.saved = None

    def _write(self) -> None:
        if self.stage.baseline is None:  # nothing learned yet
            return
        assert self.state_path is not None
        save_graph_baseline(self.state_path, self.analysis, self.stage)
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
            self._nothing_to_analyse("edge", outcome.graph.skipped)
        self._succeeded(started, len(outcome.graph.services))
        learned = self.stage.baseline.learned_at if self.stage.baseline is not None else None
        if self.state_path is not None and self.saved != learned:  # a baseline (re)learned this cycle
            await asyncio.get_running_loop().run_in_executor(self.executor, self.save)
        return GraphResult(self.analysis, float(grid[-1]), time.time(), outcome)
