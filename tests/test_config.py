"""Configuration: every class of bad input is refused with its key path, and check-config exits 1."""

from __future__ import annotations

import textwrap

import pytest

from aura_exporter.cli import main
from aura_exporter.config import ConfigError, load_config, parse_config

GOOD = """
prometheus:
  url: http://prometheus:9090/prometheus
  headers: {X-Scope-OrgID: team-a}
analyses:
  - name: node
    entity_labels: [instance]
    step: 15s
    window: 30m
    interval: 1m
    features:
      cpu: {query: '1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[2m]))', role: resources, limit: 0.95}
      conns: {query: 'node_netstat_Tcp_CurrEstab', role: security}
"""


def check(tmp_path, capsys, text: str) -> tuple[int, str]:
    path = tmp_path / "aura.yml"
    path.write_text(textwrap.dedent(text))
    code = main(["check-config", f"--config.file={path}"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_good_config_loads_into_typed_objects(tmp_path, capsys):
    code, out = check(tmp_path, capsys, GOOD)
    assert code == 0, out
    config = parse_config(GOOD)
    analysis = config.analyses[0]
    assert analysis.step == 15 and analysis.window == 1800 and analysis.steps == 120
    assert analysis.features[0].limit == 0.95 and analysis.features[1].role == "security"
    assert config.prometheus.url == "http://prometheus:9090/prometheus"
    assert config.prometheus.headers == (("X-Scope-OrgID", "team-a"),)


@pytest.mark.parametrize("change, path, message", [
    (("interval: 1m", "interval: 1m\n    colour: blue"), "analyses[0].colour", "unknown key"),
    (("step: 15s", "step: 15 seconds"), "analyses[0].step", "not a duration"),
    (("window: 30m", "window: 1m"), "analyses[0].window", "at least 8 are needed"),
    (("role: security}", "role: security}\n      cpu: {query: up, role: network}"), "duplicate key 'cpu'", "line"),
    (("rate(node_cpu_seconds_total{mode=\"idle\"}[2m])", "rate(node_cpu_seconds_total{mode=\"idle\"}[2m]"),
     "analyses[0].features.cpu.query", "PromQL does not parse"),
    (("query: 'node_netstat_Tcp_CurrEstab'", "query: 'node_netstat_Tcp_CurrEstab[5m]'"),
     "analyses[0].features.conns.query", "not a range vector"),
    (("role: security", "role: billing"), "analyses[0].features.conns.role", "not one of"),
    (("entity_labels: [instance]", "entity_labels: [analysis]"), "analyses[0].entity_labels[0]",
     "label the exporter sets itself"),
    (("url: http://prometheus:9090/prometheus", "url: prometheus:9090"), "prometheus.url", "http:// or https://"),
    (("interval: 1m", "interval: 1m\n    forecast: {seasons: [1d, 2h]}"), "analyses[0].forecast.seasons",
     "not longer than the longest horizon"),
    (("interval: 1m", "interval: 1m\n    forecast: {seasons: [86401s]}"), "analyses[0].forecast.seasons",
     "not a whole number of steps"),
    (("interval: 1m", "interval: 1m\n    forecast: {seasons: 1d}"), "analyses[0].forecast.seasons",
     "expected a list of durations"),
])
def test_each_bad_input_names_its_key_path(tmp_path, capsys, change, path, message):
    old, new = change
    assert old in GOOD
    code, out = check(tmp_path, capsys, GOOD.replace(old, new, 1))
    assert code == 1
    assert path in out and message in out, out



@pytest.mark.parametrize("forecast, seasons", [
    ("{}", (86400.0, 604800.0)),  # the default: yesterday and last week
    ("{horizons: [1h, 1d], history: 10d}", (604800.0,)),  # a day is not past a 1-day horizon: the week alone
    ("{seasons: []}", ()),
])
def test_unset_seasons_keep_those_of_the_default_that_fit(forecast, seasons):
    text = GOOD.replace("interval: 1m", f"interval: 1m\n    forecast: {forecast}", 1)
    assert parse_config(text).analyses[0].forecast.seasons == seasons

def test_duplicate_analysis_names(tmp_path, capsys):
    analyses = GOOD.split("analyses:\n")[1]
    code, out = check(tmp_path, capsys, GOOD + analyses)
    assert code == 1
    assert "analyses[1].name: duplicate analysis name 'node'" in out


def test_unreadable_token_file(tmp_path, capsys):
    missing = tmp_path / "no-such-token"
    text = GOOD.replace("  headers:", f"  bearer_token_file: {missing}\n  headers:")
    code, out = check(tmp_path, capsys, text)
    assert code == 1
    assert "prometheus.bearer_token_file: cannot read file" in out and str(missing) in out


def test_every_problem_is_reported_at_once(tmp_path, capsys):
    text = GOOD.replace("step: 15s", "step: soon").replace("role: security", "role: billing")
    code, out = check(tmp_path, capsys, text)
    assert code == 1
    assert "analyses[0].step" in out and "analyses[0].features.conns.role" in out
    assert "2 problem(s) found" in out


def test_invalid_yaml_and_missing_file(tmp_path, capsys):
    code, out = check(tmp_path, capsys, "prometheus: [unclosed\n")
    assert code == 1 and "invalid YAML" in out
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(str(tmp_path / "absent.yml"))


def test_run_refuses_a_bad_config_at_start_up(tmp_path, capsys):
    path = tmp_path / "aura.yml"
    path.write_text(GOOD.replace("step: 15s", "step: -1s"))
    assert main(["run", f"--config.file={path}"]) == 1
    assert "analyses[0].step" in capsys.readouterr().err
