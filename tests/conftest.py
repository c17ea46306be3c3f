"""Real parts for the tests: a Prometheus server, a metrics target and the exporter as a process."""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# The demo fleet with a small forecaster, replayed 60x faster than the wall clock in end-to-end tests.
REPLAY_CONFIG = "tests/fixtures/replay-forecast.yml"
SPEED = 60.0
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout: float, interval: float = 0.25, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = condition()
            if last:
                return last
        except (OSError, ValueError) as err:  # not up yet
            last = err
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def http_get(url: str, headers: dict | None = None, timeout: float = 5.0) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def stop_process(process: subprocess.Popen, grace: float = 10) -> int:
    """SIGTERM, then SIGKILL if it has not exited within `grace` seconds; its exit status."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


class ScrapeTarget:
    """A loopback HTTP scrape target serving what `exposition()` returns at each scrape."""

    def __init__(self):
        self.port = free_port()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                body = target.exposition().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def exposition(self) -> str:
        raise NotImplementedError

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class MetricsTarget(ScrapeTarget):
    """A scrape target serving noisy gauges for a few hosts; `values` can be steered by tests."""

    def __init__(self, hosts: list[str], features: list[str]):
        self.hosts = hosts
        self.features = features
        self.rng = random.Random(7)
        self.faults: dict[str, str] = {}
        super().__init__()

    # What a feature can be made to do (`faults[feature] = ...`), as real exporters sometimes do:
    # "non_finite": NaN, +Inf and -Inf in turn across hosts; "absent": not exposed at all;
    # "wide": exposed for WIDE_HOSTS instances instead of the usual hosts.
    WIDE_HOSTS = 1000

    def exposition(self) -> str:
        lines = []
        now = time.time()
        for feature_index, feature in enumerate(self.features):
            fault = self.faults.get(feature)
            if fault == "absent":
                continue
            lines.append(f"# TYPE test_{feature} gauge")
            hosts = [f"wide-{i}" for i in range(self.WIDE_HOSTS)] if fault == "wide" else self.hosts
            for host_index, host in enumerate(hosts):
                value = 10 * (feature_index + 1) + host_index + math.sin(now / 5 + host_index) + self.rng.gauss(0, 0.3)
                shown = ("NaN", "+Inf", "-Inf")[host_index % 3] if fault == "non_finite" else value
                lines.append(f'test_{feature}{{instance="{host}"}} {shown}')
        return "\n".join(lines) + "\n"


class PrometheusServer:
    """The Debian `prometheus` binary on a loopback port with temporary storage."""

    def __init__(self, tmp: Path, scrape_targets: dict[str, str], port: int | None = None,
                 route_prefix: str = "/", scrape_interval: str = "1s", rule_files: list[Path] | None = None,
                 alertmanager: str | None = None):
        self.tmp = tmp
        self.port = port or free_port()
        self.route_prefix = route_prefix
        jobs = [
            {"job_name": job, "honor_labels": True, "scrape_interval": scrape_interval,
             "static_configs": [{"targets": [address]}]}
            for job, address in scrape_targets.items()
        ]
        config: dict = {"global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
                        "scrape_configs": jobs, "rule_files": [str(f) for f in rule_files or []]}
        if alertmanager:
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
        self.config_path = tmp / f"prometheus-{self.port}.yml"
        self.config_path.write_text(json.dumps(config))  # JSON is YAML
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.route_prefix.rstrip('/')}"

    def start(self) -> PrometheusServer:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("the prometheus binary is missing: `make test` installs the Debian package")
        self.log = open(self.tmp / f"prometheus-{self.port}.log", "wb")
        self.process = subprocess.Popen(
            [binary, f"--config.file={self.config_path}", f"--storage.tsdb.path={self.tmp / f'tsdb-{self.port}'}",
             f"--web.listen-address=127.0.0.1:{self.port}", f"--web.route-prefix={self.route_prefix}",
             f"--web.external-url=http://127.0.0.1:{self.port}{self.route_prefix}"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        wait_for(lambda: http_get(f"{self.url}/-/ready")[0] == 200, 30, what="prometheus ready")
        return self

    def stop(self) -> None:
        if self.process:
            stop_process(self.process)
        self.process = None

    def query(self, promql: str) -> list[dict]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        status, _, body = http_get(url)
        document = json.loads(body)
        assert status == 200 and document["status"] == "success", body
        return document["data"]["result"]


class WebhookReceiver:
    """An HTTP server recording what Alertmanager posts to it, by path (one path per receiver)."""

    def __init__(self):
        self.port = free_port()
        self.received: list[tuple[str, float, dict]] = []  # (path, arrival time, payload)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append((self.path, time.time(), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def alerts(self, path: str) -> list[tuple[float, dict]]:
        """Every alert delivered to `path`, with the time its notification arrived."""
        return [(arrived, alert) for p, arrived, payload in list(self.received) if p == path
                for alert in payload["alerts"]]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class AlertmanagerServer:
    """The Debian `prometheus-alertmanager` binary on a loopback port, clustering off, temporary storage."""

    def __init__(self, tmp: Path, config: dict):
        self.port = free_port()
        self.config_path = tmp / f"alertmanager-{self.port}.yml"
        self.config_path.write_text(json.dumps(config))
        binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        if binary is None:
            pytest.fail("the alertmanager binary is missing: `make test` installs prometheus-alertmanager")
        self.log = open(tmp / f"alertmanager-{self.port}.log", "wb")
        self.process = subprocess.Popen(
            [binary, f"--config.file={self.config_path}", f"--storage.path={tmp / f'am-{self.port}'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        wait_for(lambda: http_get(f"{self.url}/-/ready")[0] == 200, 30, what="alertmanager ready")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def stop(self) -> None:
        stop_process(self.process)


class ExporterProcess:
    """`python -m aura_exporter ...` as a subprocess, on a port it chooses itself (port 0)."""

    def __init__(self, tmp: Path, args: list[str]):
        self.stderr_path = tmp / f"exporter-{time.monotonic_ns()}.log"
        self.stderr = open(self.stderr_path, "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aura_exporter", *args, "--web.listen-address=127.0.0.1:0", "--log.level=debug"],
            stdout=subprocess.DEVNULL, stderr=self.stderr, env=env, cwd=REPO,
        )
        self.port = wait_for(self._port, 60, what="exporter listening")

    def _port(self) -> int | None:
        if self.process.poll() is not None:
            raise AssertionError(f"exporter exited with {self.process.returncode}:\n{self.log()}")
        match = re.search(r"msg=listening .*port=(\d+)", self.log())
        return int(match.group(1)) if match else None

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
        return http_get(self.url + path, headers)

    def metrics(self) -> str:
        return self.get("/metrics")[2].decode()

    def stop(self) -> int:
        return stop_process(self.process, grace=15)


def sample_value(exposition: str, name: str, labels: dict[str, str]) -> float | None:
    """The value of the sample `name` whose labels include `labels`, from text exposition."""
    for line in exposition.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def serve_in_process(scenario, source, analyses, timeout: float = 60) -> None:
    """Run an Exporter on a loopback port in this process and `await scenario(exporter, session)`."""
    import asyncio

    import aiohttp

    from aura_exporter.clock import WallClock
    from aura_exporter.config import Config, PrometheusConfig
    from aura_exporter.exporter import Exporter

    async def main():
        config = Config(PrometheusConfig(url="http://unused"), tuple(analyses))
        exporter = Exporter(config, source, WallClock(), "127.0.0.1:0", workers=1)
        stop = asyncio.Event()
        running = asyncio.create_task(exporter.run(stop))
        await exporter.started.wait()
        try:
            async with aiohttp.ClientSession(f"http://127.0.0.1:{exporter.port}") as session:
                await asyncio.wait_for(scenario(exporter, session), timeout=timeout)
        finally:
            stop.set()
            await running

    asyncio.run(main())


def rules_for_test(exporter_url: str, target: Path) -> Path:
    """The shipped rules with `for:` scaled to the replay's speed and links to the test's exporter."""
    import yaml

    from aura_exporter.durations import parse_duration
    from aura_exporter.mixin import settings

    document = yaml.safe_load((REPO / "rules" / "aura-alerts.yml").read_text())
    for group in document["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = f"{max(1, round(parse_duration(rule['for']) / SPEED))}s"
            for name, text in rule.get("annotations", {}).items():
                rule["annotations"][name] = text.replace(settings.AURA_URL, exporter_url)
    target.write_text(yaml.safe_dump(document))
    return target


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Path:
    """A checkpoint trained beforehand: both exporters load it, so training does not race the scenario."""
    storage = tmp_path_factory.mktemp("trained")
    done = subprocess.run([sys.executable, "-m", "aura_exporter", "train", f"--config.file={REPLAY_CONFIG}",
                           "--history.source=replay", f"--storage.path={storage}"],
                          capture_output=True, text=True, timeout=240, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return storage / "forecast-node.pt"


def storage_with(checkpoint: Path, directory: Path) -> Path:
    directory.mkdir()
    shutil.copy(checkpoint, directory / checkpoint.name)
    return directory


@pytest.fixture
def target():
    served = MetricsTarget(hosts=[f"host-{c}" for c in "abcdef"], features=["cpu", "mem", "net"])
    yield served
    served.close()


@pytest.fixture
def exporters(tmp_path):
    started: list[ExporterProcess] = []

    def start(args: list[str]) -> ExporterProcess:
        started.append(ExporterProcess(tmp_path, args))
        return started[-1]

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def prometheus_servers(tmp_path):
    started: list[PrometheusServer] = []

    def start(**kwargs) -> PrometheusServer:
        server = PrometheusServer(tmp_path, **kwargs)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
