"""The running sidecar: one loop per analysis on its interval, publishing snapshots, plus the server."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from aura_exporter.catch_up import catch_up
from aura_exporter.clock import Clock
from aura_exporter.config import Analysis, AnyAnalysis, Config, ConfigError, GraphAnalysis, load_config
from aura_exporter.cycle import AnalysisCycle, Cycle, CycleFailed
from aura_exporter.exposition.collector import TextWriter
from aura_exporter.exposition.render import render_snapshot
from aura_exporter.exposition.server import MAX_CONNECTIONS, ServerState, build_app, start_server
from aura_exporter.exposition.status import AnalysesStatus
from aura_exporter.exposition.webconfig import WebConfigFile
from aura_exporter.forecast.manager import ModelManager
from aura_exporter.graph_cycle import GraphCycle
from aura_exporter.history import HistoryLoader
from aura_exporter.probe import TOKEN_FILE
from aura_exporter.snapshot import GraphResult, Snapshot, SnapshotHolder
from aura_exporter.sources.base import Source
from aura_exporter.sources.kubernetes import ClusterWatcher
from aura_exporter.sources.shard import WHOLE, Shard
from aura_exporter.storage import write_atomically
from aura_exporter.telemetry import SelfMetrics

log = logging.getLogger(__name__)


# Builds the PromQL source and the history loader of a configuration (run mode), so that a reload
# that changes the `prometheus` section can reconnect; None keeps the source the exporter started with.
SourceFactory = Callable[[Config], tuple[Source, HistoryLoader | None]]


@dataclass
class AnalysisRun:
    """One analysis at work: its cycle (with its state) and its forecaster's manager, and their tasks."""

    cycle: Cycle
    manager: ModelManager | None
    tasks: list[asyncio.Task] = field(default_factory=list)


class Exporter:
    def __init__(self, config: Config, source: Source, clock: Clock, listen_address: str,
                 telemetry_path: str = "/metrics", workers: int | None = None,
                 history: HistoryLoader | None = None, storage: Path | None = None, shard: Shard = WHOLE,
                 config_path: str | None = None, sources: SourceFactory | None = None,
                 web_config: WebConfigFile | None = None, keep_baselines: bool = True, learn_from_history: bool = True,
                 lifecycle: bool = False, max_connections: int = MAX_CONNECTIONS):
        self.config = config
        self.source = source
        self.history = history
        self.storage = storage
        # A replay restarts its story on every start: baselines saved by an earlier one would not fit.
        self.baseline_storage = storage if keep_baselines else None
        # ...and its past holds the same story: what a page budget learned from it would call normal.
        self.learn_from_history = learn_from_history
        self.clock = clock
        self.listen_address = listen_address
        self.telemetry_path = telemetry_path
        self.max_connections = max_connections
        self.config_path = config_path
        self.sources = sources
        self.web_config = web_config
        self.shard = shard
        names = [a.name for a in self._here(config)]
        self.metrics = SelfMetrics(names, shard)
        # One thread for CPU stages: it waits on giotto-tda's worker processes with the GIL released.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aura-compute")
        self.workers = workers or os.cpu_count() or 1
        self.runs: dict[str, AnalysisRun] = {a.name: self._prepare(a) for a in self._here(config)}
        self.state = ServerState(live=self.metrics.registry, status=AnalysesStatus().running(names),
                                 reload=self.reload if lifecycle else None)
        self.watcher_task: asyncio.Task | None = None
        if config.kubernetes.enabled:
            self.state.watcher = ClusterWatcher(config.kubernetes, self.metrics.kubernetes_errors.inc)
        self.holder = SnapshotHolder()
        self.writer = TextWriter()  # remembers each analysis' lines between renders
        self.port: int | None = None
        self.started = asyncio.Event()
        self._reloading = asyncio.Lock()

    def _here(self, config: Config) -> list[AnyAnalysis]:
        """The analyses this replica runs: all of them, but a graph (a whole, not shardable) on shard 0 only."""
        return [a for a in config.analyses if isinstance(a, Analysis) or self.shard.index == 0]

    def _prepare(self, analysis: AnyAnalysis) -> AnalysisRun:
        if isinstance(analysis, GraphAnalysis):
            return AnalysisRun(GraphCycle(analysis, self.source, self.metrics, self.executor, self.baseline_storage),
                               None)
        cycle = AnalysisCycle(analysis, self.source, self.metrics, self.executor, self.workers,
                              self.baseline_storage, self._graph_of(analysis))
        manager = None
        if analysis.forecast.enabled and self.history is not None:
            manager = ModelManager(analysis, cycle.forecast, self.storage, self.history, self.metrics, self.clock)
        return AnalysisRun(cycle, manager)

    def _start(self, run: AnalysisRun) -> None:
        run.tasks = [asyncio.create_task(self._loop(run.cycle))]
        if run.manager is not None:
            run.tasks.append(asyncio.create_task(run.manager.run()))

    async def _stop(self, run: AnalysisRun) -> None:
        for task in run.tasks:
            task.cancel()
        await asyncio.gather(*run.tasks, return_exceptions=True)
        # In the compute thread, so after any stage still running there: the baselines are whole.
        await asyncio.get_running_loop().run_in_executor(self.executor, run.cycle.save)

    async def run(self, stop: asyncio.Event) -> None:
        self.app = build_app(self.state, self.telemetry_path, self.web_config, self._probe_token())
        listener = await start_server(self.app, self.listen_address,
                                      self.web_config.server_context() if self.web_config else None,
                                      self.max_connections)
        self.port = listener.port
        log.info("listening", extra={"address": self.listen_address, "port": self.port})
        self.started.set()
        for run in self.runs.values():
            self._start(run)
        self._start_watcher()
        try:
            await stop.wait()
        finally:
            for run in self.runs.values():
                await self._stop(run)
            if self.watcher_task is not None:
                self.watcher_task.cancel()
            await listener.close()
            await self.source.close()
            self.executor.shutdown(wait=False, cancel_futures=True)
            log.info("stopped")

    def _probe_token(self) -> str | None:
        """A fresh token for the container's own probes (aura_exporter/probe.py), in the state directory."""
        if self.storage is None:
            return None
        token = secrets.token_urlsafe(32)

        def write(stream: BinaryIO) -> None:
            stream.write(token.encode())

        write_atomically(self.storage / TOKEN_FILE, write)  # mode 0600, as mkstemp makes it
        return token

    def _start_watcher(self) -> None:
        if self.state.watcher is not None:
            self.watcher_task = asyncio.create_task(self.state.watcher.run())

    async def reload(self) -> list[str]:
        """Read the configuration file again. [] when it took effect (changed analyses restart with fresh
        state at once, the others keep theirs); else its problems, and the old configuration runs on."""
        async with self._reloading:
            if self.config_path is None:
                problems = ["no configuration file to reload: the exporter runs on the embedded default"]
            else:
                try:
                    config = await self._run_blocking(load_config, self.config_path)
                except ConfigError as err:
                    problems = err.problems
                else:
                    await self._apply(config)
                    self.metrics.config_reloaded(True)
                    log.info("configuration reloaded", extra={"config": self.config_path,
                                                              "analyses": len(config.analyses)})
                    return []
            self.metrics.config_reloaded(False)
            for problem in problems:
                log.error("configuration reload refused", extra={"config": self.config_path, "problem": problem})
            return problems

    async def _apply(self, config: Config) -> None:
        reconnect = self.sources is not None and config.prometheus != self.config.prometheus
        if reconnect and self.sources is not None:
            old_source = self.source
            self.source, self.history = self.sources(config)
        kept = {a.name: a for a in self._here(self.config)}
        wanted = {a.name: a for a in self._here(config)}
        dropped = [name for name in self.runs if name not in wanted]
        for name in [n for n in self.runs if n not in wanted or wanted[n] != kept[n] or reconnect]:
            await self._stop(self.runs.pop(name))
            if name not in wanted:
                self.holder.drop(name)
        for analysis in self._here(config):
            if analysis.name not in self.runs:
                self.metrics.prepare(analysis.name)
                self.runs[analysis.name] = self._prepare(analysis)
                self._start(self.runs[analysis.name])
        self.state.status = self.state.status.running(list(wanted))
        if config.kubernetes != self.config.kubernetes:
            if self.watcher_task is not None:
                self.watcher_task.cancel()
            self.state.watcher = (ClusterWatcher(config.kubernetes, self.metrics.kubernetes_errors.inc)
                                  if config.kubernetes.enabled else None)
            self._start_watcher()
        self.config = config
        if reconnect:
            await old_source.close()
        if dropped:  # their series leave /metrics at once; otherwise the next cycle renders as usual
            await self._render(self.holder.latest)

    async def _render(self, snapshot: Snapshot) -> bool:
        """Serve `snapshot` once rendered, unless a newer one was meanwhile (False): renders run on a thread pool,
        and two analyses' cycles that end together must not leave the older snapshot served (an analysis' result,
        called ready, would vanish from /metrics and the API until its next cycle)."""
        try:
            rendered = await self._run_blocking(render_snapshot, snapshot, self.writer)
        except OSError as err:  # no file (descriptors or memory) for its bytes: the last snapshot stays served
            log.error("snapshot not rendered: the previous one is still served", extra={"error": str(err)})
            return False
        if rendered.snapshot.version < self.state.rendered.snapshot.version:
            return False
        self.state.rendered = rendered
        return True

    async def _run_blocking(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(None, function, *args)

    def _graph_of(self, analysis: Analysis) -> Callable[[], GraphResult | None] | None:
        """The latest result of the graph analysis whose findings this analysis' council weighs."""
        link = analysis.graph_link
        if link is None:
            return None
        return lambda: self.holder.latest.graphs.get(link.analysis)

    async def _loop(self, cycle: Cycle) -> None:
        analysis = cycle.analysis
        await asyncio.get_running_loop().run_in_executor(self.executor, cycle.restore, self.clock.now())
        learning = None
        if isinstance(cycle, AnalysisCycle) and self.history is not None and self._learns_from_history(cycle):
            learning = asyncio.create_task(catch_up(cycle, self.history, self.clock))
        try:
            await self._cycles(cycle, analysis, learning)
        finally:
            if learning is not None:
                learning.cancel()

    async def _cycles(self, cycle: Cycle, analysis: Analysis, learning: asyncio.Task | None) -> None:
        next_run = self.clock.now()
        while True:
            await self._run_cycle(cycle, analysis)
            next_run += analysis.interval
            now = self.clock.now()
            if now > next_run:  # an overrun: skip the missed ticks rather than pile them up
                missed = int((now - next_run) // analysis.interval) + 1
                log.warning("cycle overran its interval", extra={"analysis": analysis.name, "skipped": missed})
                next_run += missed * analysis.interval
            learning = await self._pause(cycle, next_run - now, learning)

    async def _pause(self, cycle: Cycle, seconds: float, learning: asyncio.Task | None) -> asyncio.Task | None:
        """Sleep until the next cycle, taking what the learner learned from history as soon as it is done
        (between two cycles); the learning still under way, if any."""
        if learning is None or not isinstance(cycle, AnalysisCycle):
            await self.clock.sleep(seconds)
            return learning
        sleep = asyncio.ensure_future(self.clock.sleep(seconds))
        try:
            done, _ = await asyncio.wait({sleep, learning}, return_when=asyncio.FIRST_COMPLETED)
            if learning in done:
                self._adopt(cycle, learning)
                learning = None
            await sleep
        finally:
            sleep.cancel()
        return learning

    @staticmethod
    def _adopt(cycle: AnalysisCycle, learning: asyncio.Task) -> None:
        """Take what the learner learned from history, if it learned anything."""
        try:
            learner = learning.result()
        except Exception:  # a bug in learning must not stop the live cycles
            log.exception("learning from history crashed", extra={"analysis": cycle.analysis.name})
            return
        if learner is not None:
            cycle.adopt(learner)

    def _learns_from_history(self, cycle: AnalysisCycle) -> bool:
        """An analysis that starts with nothing learned (no state saved, or a fresh one after a reload)."""
        return self.learn_from_history and not cycle.learned and cycle.analysis.baseline.learn_from_history > 0

    async def _run_cycle(self, cycle: Cycle, analysis: Analysis) -> None:
        try:
            result = await cycle.run(self.clock.now())
        except CycleFailed as err:
            self.state.status = self.state.status.failed(analysis.name, str(err))
            result = None
        snapshot = self.holder.publish(result, analysis.name, time.time())
        if await self._render(snapshot):  # else a newer snapshot, holding this result too, was served and fed
            self.state.feed.publish(snapshot)
            self.state.history.record(snapshot)
        if result is not None:  # only now do /metrics and the API show it: then call it ready
            self.state.status = self.state.status.served(analysis.name)
