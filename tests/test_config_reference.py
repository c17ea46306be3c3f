"""The README's configuration reference is the settings' declarations, rendered (config/reference.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aura_exporter.config import (
    Analysis,
    BaselineConfig,
    ConfigError,
    CouncilConfig,
    ForecastConfig,
    KubernetesConfig,
    PrometheusConfig,
    TopologyConfig,
    parse_config,
)
from aura_exporter.config.reference import BEGIN, END, reference, replaced
from aura_exporter.config.setting import KINDS, allowed_keys, declared

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_holds_the_reference_the_declarations_render():
    text = README.read_text(encoding="utf-8")
    assert reference() in text, "README.md's configuration reference is stale: run `make readme`"
    assert replaced(text) == text


def test_the_reference_is_a_configuration_whose_shown_values_are_the_defaults():
    block = reference().removeprefix("```yaml\n").removesuffix("```")
    config = parse_config(block)
    analysis = config.analyses[0]
    assert config.prometheus == PrometheusConfig(url="http://prometheus:9090")
    assert config.kubernetes == KubernetesConfig()
    assert (analysis.topology, analysis.baseline, analysis.forecast, analysis.council) == (
        TopologyConfig(), BaselineConfig(), ForecastConfig(), CouncilConfig())
    assert (analysis.max_gap, analysis.max_series, analysis.max_missing_ratio) == (
        Analysis.max_gap, Analysis.max_series, Analysis.max_missing_ratio)
    assert [f.name for f in analysis.features] == ["cpu", "memory", "net_rx", "conns", "p99"]


@pytest.mark.parametrize("section", [PrometheusConfig, Analysis, TopologyConfig, BaselineConfig, ForecastConfig,
                                     CouncilConfig, KubernetesConfig])
def test_every_setting_is_declared_with_a_kind_and_help(section):
    for spec_field, spec in declared(section):
        assert spec.kind in KINDS
        assert spec.help or spec_field.name in ("tls", "topology"), f"{section.__name__}.{spec_field.name}"


def test_unknown_keys_are_refused_naming_every_declared_one():
    with pytest.raises(ConfigError) as raised:
        parse_config("prometheus: {url: http://p:9090}\nanalyses: [{name: a, entity_labels: [i], step: 15s, "
                     "window: 30m, features: {x: {query: up, role: network}}, council: {quorum_: 1}}]")
    [problem] = raised.value.problems
    assert problem.startswith("analyses[0].council.quorum_: unknown key (allowed: ")
    listed = set(problem.split("(allowed: ")[1].rstrip(")").split(", "))
    assert listed == allowed_keys(CouncilConfig) | {"graph"}
    assert {"false_pages_per_week", "evidence", "quorum"} <= listed


def test_a_bare_zero_is_a_duration_of_zero_where_zero_means_off():
    config = parse_config("prometheus: {url: http://p:9090}\nanalyses: [{name: a, entity_labels: [i], step: 15s, "
                          "window: 30m, features: {x: {query: up, role: network}}, "
                          "baseline: {learn_from_history: 0}, forecast: {retrain_interval: '0'}}]")
    assert config.analyses[0].baseline.learn_from_history == 0.0
    assert config.analyses[0].forecast.retrain_interval == 0.0
    with pytest.raises(ConfigError, match="timeout: must be longer than 0s"):
        parse_config("prometheus: {url: http://p:9090, timeout: 0}\nanalyses: [{name: a, entity_labels: [i], "
                     "step: 15s, window: 30m, features: {x: {query: up, role: network}}}]")


def test_markers_are_required_to_write_the_reference():
    with pytest.raises(ValueError, match="markers"):
        replaced("# a README without them\n")
    assert replaced(f"a\n{BEGIN}\nold\n{END}\nb\n") == f"a\n{BEGIN}\n{reference()}\n{END}\nb\n"
