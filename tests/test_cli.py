"""The command line: the demo serves gauges with no Prometheus; flags and logs behave."""

from __future__ import annotations

import json
import logging

import pytest
from conftest import sample_value, wait_for

from aura_exporter.cli import build_parser
from aura_exporter.durations import format_duration, parse_duration
from aura_exporter.logs import JSONFormatter, LogfmtFormatter


def test_demo_serves_gauges_without_prometheus(exporters):
    demo = exporters(["demo", "--replay.hosts=12", "--replay.speed=60"])
    wait_for(lambda: demo.get("/-/ready")[0] == 200, 60, what="demo ready")
    text = demo.metrics()
    for host in ("host-00", "host-07", "host-11"):
        assert sample_value(text, "aura_betti", {"analysis": "node", "instance": host}) is not None
    assert sample_value(text, "aura_entities_analysed", {"analysis": "node"}) == 12
    assert sample_value(text, "aura_exporter_build_info", {}) == 1


def test_flags_are_prometheus_style():
    args = build_parser().parse_args(["run", "--config.file=a.yml", "--web.listen-address=:9999",
                                      "--log.level=debug", "--log.format=json"])
    assert (args.config_file, args.listen_address, args.log_level, args.log_format) == ("a.yml", ":9999", "debug",
                                                                                      "json")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run"])  # --config.file is required


def record(message: str, **context) -> logging.LogRecord:
    item = logging.LogRecord("aura", logging.WARNING, __file__, 1, message, (), None)
    item.__dict__.update(context)
    return item


def test_logfmt_quotes_hostile_values_on_one_line():
    line = LogfmtFormatter().format(record("query failed", instance='a"b\nlevel=error c'))
    assert "\n" not in line
    assert 'instance="a\\"b\\nlevel=error c"' in line and "level=warn" in line


def test_json_logs_are_json():
    document = json.loads(JSONFormatter().format(record("x", analysis="node")))
    assert document["level"] == "warn" and document["analysis"] == "node" and document["msg"] == "x"


@pytest.mark.parametrize("formatter", [LogfmtFormatter(), JSONFormatter()], ids=["logfmt", "json"])
def test_no_log_line_carries_a_credential(formatter):
    import sys

    secrets = ("hunter2", "eyJhbGciOi.sig-part_x", "c2VjcmV0OnMzY3IzdA==", "t0ps3cret", "k3y-value")
    try:
        raise ConnectionError("GET https://ops:hunter2@prometheus:9090/api/v1/query failed")
    except ConnectionError:
        failure = logging.LogRecord("aura", logging.ERROR, __file__, 1, "query to %s failed", (
            "http://prometheus/api?token=t0ps3cret&x=1",), sys.exc_info())
    failure.__dict__.update(header="Authorization: Bearer eyJhbGciOi.sig-part_x",
                            sent="Basic c2VjcmV0OnMzY3IzdA==", url="https://grafana/?api_key=k3y-value")
    line = formatter.format(failure)
    assert not [secret for secret in secrets if secret in line], line
    assert "ops:<secret>@prometheus" in line and "token=<secret>" in line and "Bearer <secret>" in line
    assert "x=1" in line and "http://prometheus/api" in line  # the rest of the line is kept


@pytest.mark.parametrize("text, seconds", [("15s", 15), ("1h30m", 5400), ("500ms", 0.5), ("2w", 1209600)])
def test_durations_round_trip(text, seconds):
    assert parse_duration(text) == seconds and format_duration(seconds) == text


@pytest.mark.parametrize("text", ["", "5", "1x", "30m1h", "-1s"])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_train_then_demo_forecasts_the_leak(tmp_path, exporters):
    """`train` writes a checkpoint; the demo loads it and shows the leaking host's memory breach coming."""
    import subprocess
    import sys

    config = "tests/fixtures/replay-forecast.yml"
    trained = subprocess.run([sys.executable, "-m", "aura_exporter", "train", f"--config.file={config}",
                              "--history.source=replay", f"--storage.path={tmp_path}"],
                             capture_output=True, text=True, timeout=240)
    assert trained.returncode == 0, trained.stderr
    assert (tmp_path / "forecast-node.pt").exists()

    demo = exporters(["demo", f"--config.file={config}", f"--storage.path={tmp_path}", "--replay.speed=60",
                      "--replay.offset=100m"])
    leak = {"instance": "host-07", "feature": "memory"}

    def breach_seconds():
        return sample_value(demo.metrics(), "aura_time_to_breach_seconds", leak)

    first = wait_for(breach_seconds, 60, what="a memory time-to-breach for the leaking host")
    wait_for(lambda: sample_value(demo.metrics(), "aura_forecast_residual_zscore", leak) is not None, 30,
             what="a residual z-score once the first nowcast came due")
    # The leak goes on (15 scenario minutes take 15 s at 60x; a loaded machine's cycles lag): the breach nears.
    wait_for(lambda: (breach_seconds() or float("inf")) < 0.8 * first, 45,
             what=f"the time-to-breach to fall below 80% of its first value, {first:.0f} s")
    text = demo.metrics()
    assert sample_value(text, "aura_forecast", {**leak, "horizon": "4h"}) > 0.95
    assert sample_value(text, "aura_forecast_upper", {**leak, "horizon": "1h"}) >= sample_value(
        text, "aura_forecast_lower", {**leak, "horizon": "1h"})
    assert sample_value(text, "aura_breach_probability", leak) > 0.5
    assert sample_value(text, "aura_time_to_breach_seconds", {"instance": "host-03", "feature": "memory"}) is None
    assert "forecaster loaded" in demo.log()


def test_demo_trains_on_first_start_then_fine_tunes(tmp_path, exporters):
    from pathlib import Path

    config = tmp_path / "aura.yml"
    text = Path("tests/fixtures/replay-forecast.yml").read_text()
    config.write_text(text.replace("max_train_time: 10m", "max_train_time: 10m\n      retrain_interval: 20m"))
    storage = tmp_path / "state"
    demo = exporters(["demo", f"--config.file={config}", f"--storage.path={storage}", "--replay.hosts=12",
                      "--replay.speed=120"])

    def trainings() -> float | None:
        return sample_value(demo.metrics(), "aura_model_trainings_total", {"analysis": "node", "result": "success"})

    wait_for(lambda: trainings() == 1, 180, interval=1, what="a first training in the background")
    first = (storage / "forecast-node.pt").stat().st_mtime
    assert sample_value(demo.metrics(), "aura_checkpoint_errors_total", {"analysis": "node", "reason": "missing"}) == 1
    wait_for(lambda: sample_value(demo.metrics(), "aura_forecast",
                                  {"instance": "host-03", "feature": "cpu", "horizon": "1h"}) is not None, 30,
             what="forecasts once the model is installed")
    wait_for(lambda: trainings() == 2, 180, interval=1, what="a fine-tuning 20 scenario minutes later")
    assert (storage / "forecast-node.pt").stat().st_mtime > first
    assert "fine_tune=True" in demo.log()
    assert demo.stop() == 0
    assert not list(storage.glob("baselines-*"))  # a replay's baselines would not fit its next start
