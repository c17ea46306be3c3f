"""The supported backends, for real: the same six hours of a fleet stored in the Debian `prometheus` (blocks
written by promtool) and in the Debian `victoria-metrics` (its import API), then read by a live cycle,
by training and by a backtest through each."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import free_port, http_get, stop_process, wait_for

from aura_exporter.cli import main
from aura_exporter.config import parse_config
from aura_exporter.cycle import AnalysisCycle
from aura_exporter.forecast.manager import train_on_history
from aura_exporter.history import prometheus_history
from aura_exporter.sources.promql import PromQLSource
from aura_exporter.sources.replay import ReplayFleet, host_name
from aura_exporter.telemetry import SelfMetrics

pytestmark = pytest.mark.prometheus
HOSTS, STEP, HOURS = 6, 60.0, 6
END = float(int(time.time() // 3600 * 3600 - 3600))  # an hour ago: written blocks, not the head
START = END - HOURS * 3600
FEATURES = ("cpu", "memory")
CONFIG = """
prometheus: {{url: "{url}", retries: 1}}
analyses:
  - name: node
    entity_labels: [instance]
    step: 1m
    window: 30m
    interval: 5m
    features:
      cpu: {{query: 'cpu', role: resources}}
      memory: {{query: 'memory', role: resources, limit: 0.95}}
    forecast: {{horizons: [15m, 30m], history: 4h, context: 30m, input_steps: 10, max_epochs: 1, units: 8,
               max_samples: 256}}
"""


def fleet_samples() -> list[str]:
    """The fleet's lines in the text format (one name, one `instance`, a timestamp in seconds)."""
    fleet = ReplayFleet(hosts=HOSTS, origin=START)
    times = np.arange(START, END + 1, STEP)
    return [f'{feature}{{instance="{host_name(h)}"}} {value:.6g} {t:.0f}'
            for feature in FEATURES for h, row in enumerate(fleet.values(feature, times))
            for t, value in zip(times, row, strict=True)]


class Backend:
    def __init__(self, name: str, tmp: Path):
        self.name, self.tmp, self.port = name, tmp, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> Backend:
        lines = fleet_samples()
        log = open(self.tmp / f"{self.name}.log", "wb")
        if self.name == "prometheus":
            openmetrics = self.tmp / "fleet.om"
            openmetrics.write_text("".join(f"# TYPE {f} gauge\n" + "".join(f"{line}\n" for line in lines
                                                                          if line.startswith(f + "{"))
                                           for f in FEATURES) + "# EOF\n")
            subprocess.run([shutil.which("promtool") or "promtool", "tsdb", "create-blocks-from", "openmetrics",
                            str(openmetrics), str(self.tmp / "tsdb")], check=True, capture_output=True, timeout=120)
            config = self.tmp / "prometheus.yml"
            config.write_text("global: {scrape_interval: 1m}\n")
            self.process = subprocess.Popen(
                ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={self.tmp / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"], stdout=log, stderr=subprocess.STDOUT)
            wait_for(lambda: http_get(f"{self.url}/-/ready")[0] == 200, 30, what="prometheus ready")
        else:
            self.process = subprocess.Popen(
                ["victoria-metrics", f"-storageDataPath={self.tmp / 'vm'}", f"-httpListenAddr=127.0.0.1:{self.port}",
                 "-retentionPeriod=1", "-search.disableCache"], stdout=log, stderr=subprocess.STDOUT)
            wait_for(lambda: http_get(f"{self.url}/health")[0] == 200, 30, what="victoria-metrics ready")
            body = "".join(f"{line[:line.rfind(' ')]} {line[line.rfind(' ') + 1:]}000\n" for line in lines).encode()
            urllib.request.urlopen(urllib.request.Request(f"{self.url}/api/v1/import/prometheus", data=body),
                                   timeout=30).read()
            http_get(f"{self.url}/internal/force_flush")
        wait_for(lambda: self._holds_all(), 30, what=f"{self.name} serving the imported fleet")
        return self

    def _holds_all(self) -> bool:
        status, _, body = http_get(f"{self.url}/api/v1/query?query=count(count_over_time(memory[7h]))&time={END}")
        return status == 200 and f'"{HOSTS}"' in body.decode()

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


@pytest.fixture(scope="module", params=["prometheus", "victoria-metrics"])
def backend(request, tmp_path_factory):
    if shutil.which(request.param) is None:
        pytest.fail(f"the {request.param} binary is missing: `make test` installs the Debian package")
    served = Backend(request.param, tmp_path_factory.mktemp(request.param)).start()
    yield served
    served.stop()


def analysis_for(backend: Backend, tmp_path: Path):
    config = tmp_path / "aura.yml"
    config.write_text(CONFIG.format(url=backend.url))
    return config, parse_config(config.read_text()).analyses[0]


def test_a_live_cycle_reads_the_backend(backend, tmp_path):
    _, analysis = analysis_for(backend, tmp_path)

    async def run():
        source = PromQLSource(parse_config(CONFIG.format(url=backend.url)).prometheus)
        try:
            cycle = AnalysisCycle(analysis, source, SelfMetrics([analysis.name]), ThreadPoolExecutor(1))
            return await cycle.run(END)
        finally:
            await source.close()

    result = asyncio.run(run())
    fleet = ReplayFleet(hosts=HOSTS, origin=START)
    assert result.windows.entities == tuple((host_name(h),) for h in range(HOSTS))
    np.testing.assert_allclose(result.windows.values[:, -1, 1], fleet.values("memory", np.array([END]))[:, 0],
                               rtol=1e-5)


def test_training_reads_the_backend_history(backend, tmp_path):
    _, analysis = analysis_for(backend, tmp_path)
    history = prometheus_history(parse_config(CONFIG.format(url=backend.url)).prometheus, analysis, START, END)
    assert history.values.shape == (HOSTS, HOURS * 60 + 1, 2)
    assert np.isfinite(history.values).mean() > 0.99
    _, report = train_on_history(analysis, history)
    assert report.epochs == 1 and report.samples > 0 and np.isfinite(report.validation_loss)


def test_a_backtest_replays_the_backend_history(backend, tmp_path, capsys):
    config, _ = analysis_for(backend, tmp_path)
    out = tmp_path / "out"
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(END - 2 * 3600))
    assert main(["backtest", f"--config.file={config}", f"--history.from={iso}",
                 f"--history.to={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(END))}", f"--output.dir={out}",
                 "--log.level=error"]) == 0, capsys.readouterr().err
    scores = (out / "scores.csv").read_text().splitlines()
    assert {line.split(",")[1] for line in scores[1:]} >= {host_name(h) for h in range(HOSTS)}
