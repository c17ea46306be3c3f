"""The running sidecar: one loop per analysis on its interval, publishing snapshots, plus the server."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from aura_exporter.config import Analysis, Config
from aura_exporter.cycle import AnalysisCycle, CycleFailed
from aura_exporter.exposition.render import render_snapshot
from aura_exporter.exposition.selfmetrics import SelfMetrics
from aura_exporter.exposition.server import ServerState, bound_port, build_app, start_server
from aura_exporter.forecast.manager import HistoryLoader, ModelManager
from aura_exporter.snapshot import SnapshotHolder
from aura_exporter.sources.base import Source
from aura_exporter.sources.kubernetes import ClusterWatcher
from aura_exporter.sources.shard import WHOLE, Shard

log = logging.getLogger(__name__)


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class Exporter:
    def __init__(self, config: Config, source: Source, clock: Clock, listen_address: str,
                 telemetry_path: str = "/metrics", workers: int | None = None,
                 history: HistoryLoader | None = None, storage: Path | None = None, shard: Shard = WHOLE):
        self.config = config
        self.source = source
        self.clock = clock
        self.listen_address = listen_address
        self.telemetry_path = telemetry_path
        names = [a.name for a in config.analyses]
        self.metrics = SelfMetrics(names, shard)
        # One thread for CPU stages: it waits on giotto-tda's worker processes with the GIL released.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aura-compute")
        workers = workers or os.cpu_count() or 1
        self.cycles = [AnalysisCycle(a, source, self.metrics, self.executor, workers) for a in config.analyses]
        self.managers = [
            ModelManager(cycle.analysis, cycle.forecast, storage, history, self.metrics, clock)
            for cycle in self.cycles if cycle.analysis.forecast.enabled and history is not None
        ]
        self.state = ServerState(live=self.metrics.registry, analyses=names)
        if config.kubernetes.enabled:
            self.state.watcher = ClusterWatcher(config.kubernetes, self.metrics.kubernetes_errors.inc)
        self.holder = SnapshotHolder()
        self.port: int | None = None
        self.started = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        self.app = build_app(self.state, self.telemetry_path, self._run_blocking)
        runner = await start_server(self.app, self.listen_address)
        self.port = bound_port(runner)
        log.info("listening", extra={"address": self.listen_address, "port": self.port})
        self.started.set()
        loops = [asyncio.create_task(self._loop(cycle)) for cycle in self.cycles]
        loops += [asyncio.create_task(manager.run()) for manager in self.managers]
        if self.state.watcher is not None:
            loops.append(asyncio.create_task(self.state.watcher.run()))
        try:
            await stop.wait()
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await runner.cleanup()
            await self.source.close()
            self.executor.shutdown(wait=False, cancel_futures=True)
            log.info("stopped")

    async def _run_blocking(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(None, function, *args)

    async def _loop(self, cycle: AnalysisCycle) -> None:
        analysis = cycle.analysis
        next_run = self.clock.now()
        while True:
            await self._run_cycle(cycle, analysis)
            next_run += analysis.interval
            now = self.clock.now()
            if now > next_run:  # an overrun: skip the missed ticks rather than pile them up
                missed = int((now - next_run) // analysis.interval) + 1
                log.warning("cycle overran its interval", extra={"analysis": analysis.name, "skipped": missed})
                next_run += missed * analysis.interval
            await self.clock.sleep(next_run - now)

    async def _run_cycle(self, cycle: AnalysisCycle, analysis: Analysis) -> None:
        try:
            result = await cycle.run(self.clock.now())
        except CycleFailed as err:
            self.state.last_errors[analysis.name] = str(err)
            result = None
        snapshot = self.holder.publish(result, analysis.name, time.time())
        self.state.rendered = await self._run_blocking(render_snapshot, snapshot)
        self.state.feed.publish(snapshot)
        self.state.history.record(snapshot)
        if result is not None:  # only now do /metrics and the API show it: then call it ready
            self.state.last_errors.pop(analysis.name, None)
            self.state.succeeded.add(analysis.name)
