"""One graph analysis cycle: the edge query over the window, then the graph stage."""

from __future__ import annotations

import asyncio
import logging
import time

from aura_exporter.cycle import Cycle, CycleFailed
from aura_exporter.graph.edges import GraphTooLarge
from aura_exporter.graph.stage import GraphStage
from aura_exporter.snapshot import GraphResult
from aura_exporter.windows import step_grid

log = logging.getLogger(__name__)


class GraphCycle(Cycle):
    """Runs the cycles of one graph analysis; keeps its baseline graph from one cycle to the next."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stage = GraphStage(self.analysis)

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
        return GraphResult(self.analysis, float(grid[-1]), time.time(), outcome)
