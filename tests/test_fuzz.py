"""Hostile input, fuzzed with hypothesis: the config loader and the PromQL answer parser never raise
anything but their own errors (a ConfigError with its problems; a QueryError, which the cycle counts)."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aura_exporter.config import ConfigError, parse_config
from aura_exporter.sources.base import ERROR_REASONS, QueryError
from aura_exporter.sources.parse import _parse_fast, _parse_objects, parse_matrix

# The suite's examples are the same on every run, so a landing never hangs on a lucky draw; a hunt
# (AURA_FUZZ_EXAMPLES=5000) draws new ones, and what it finds becomes an @example.
HUNT = os.environ.get("AURA_FUZZ_EXAMPLES")
FUZZ = settings(max_examples=int(HUNT or 300), derandomize=not HUNT, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

VALID_CONFIG = yaml.safe_load(open("aura_exporter/examples/demo.yml").read())
VALID_CONFIG["analyses"][0].update(
    baseline={"refresh_interval": "6h", "min_history": 10, "save_interval": "5m"},
    topology={"homology_dimensions": [0, 1]},
    council={"quorum": 0.75, "warn": 0.4},
    kubernetes={"pod": "pod", "namespace": "namespace"},
)
VALID_CONFIG["prometheus"].update(timeout="30s", headers={"X-Scope-OrgID": "team"},
                                  basic_auth={"username": "u", "password": "p"}, tls={"insecure_skip_verify": False})

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["", "0s", "-1m", "1y", "15s", "1e309", "NaN", "up{", "sum(rate(x[5m]))", "a" * 5000,
                     "'; DROP", "\x00", "<script>", "{{", "../../etc/passwd", "0.5", "1h30m"]),
)
anything = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=10), st.integers()), inner, max_size=4)),
    max_leaves=12)


def paths(node, prefix=()):
    """Every path to a value inside a nested document."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from paths(value, (*prefix, index))


CONFIG_PATHS = [p for p in paths(VALID_CONFIG) if p]


def replaced(document, path, value):
    copy = json.loads(json.dumps(document))
    node = copy
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return copy


def check_config(text: str) -> None:
    try:
        parse_config(text)
    except ConfigError as err:
        assert err.problems and all(isinstance(p, str) and p for p in err.problems)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(CONFIG_PATHS), anything), min_size=1, max_size=3))
def test_a_valid_config_with_any_values_replaced_loads_or_says_why(changes):
    document = VALID_CONFIG
    for path, value in changes:
        try:
            document = replaced(document, path, value)
        except (KeyError, IndexError, TypeError):  # an earlier change removed this path
            continue
    check_config(yaml.safe_dump(document, allow_unicode=True))


@FUZZ
@given(anything)
def test_any_yaml_document_loads_or_says_why(document):
    check_config(yaml.safe_dump(document, allow_unicode=True))


@FUZZ
@given(st.text(max_size=300))
@example("{}: ")  # unhashable keys, found by a CI run
@example("? [a, b]\n: 1")
@example("a: {[1]: 2}")
def test_any_text_loads_or_says_why(text):
    check_config(text)


def matrix(result) -> dict:
    return {"status": "success", "data": {"resultType": "matrix", "result": result}}


samples = st.one_of(
    st.tuples(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(["1", "NaN", "+Inf", "-Inf", "x", ""])),
    st.lists(anything, max_size=3),
    anything,
)
series = st.fixed_dictionaries({"metric": st.one_of(st.dictionaries(st.text(max_size=8), st.text(max_size=8)),
                                                    anything),
                                "values": st.one_of(st.lists(samples, max_size=5), anything)})


def check_parse(body) -> None:
    try:
        parsed = parse_matrix(body)
    except QueryError as err:
        assert err.reason in ERROR_REASONS
        return
    for item in parsed:
        assert item.timestamps.dtype == item.values.dtype == float and len(item.timestamps) == len(item.values)
        assert all(math.isfinite(t) for t in item.timestamps)


@FUZZ
@given(st.lists(series, max_size=4))
def test_any_matrix_shaped_answer_parses_or_is_a_query_error(result):
    check_parse(json.dumps(matrix(result)))


@FUZZ
@given(st.lists(series, max_size=4))
def test_the_fast_path_agrees_with_the_plain_parser(result):
    body = json.dumps(matrix(result), separators=(",", ":")).encode()  # Prometheus' compact form
    outcomes = []
    for parse in (_parse_fast, _parse_objects):
        try:
            outcomes.append(parse(body))
        except QueryError as err:
            outcomes.append(err.reason)
    fast, plain = outcomes
    if fast is None:  # left to the plain parser
        return
    if isinstance(fast, str) or isinstance(plain, str):
        assert fast == plain
        return
    assert [s.labels for s in fast] == [s.labels for s in plain]
    for quick, slow in zip(fast, plain, strict=True):
        np.testing.assert_array_equal(quick.timestamps, slow.timestamps)
        np.testing.assert_array_equal(quick.values, slow.values)


@FUZZ
@given(anything)
def test_any_json_answer_parses_or_is_a_query_error(document):
    check_parse(json.dumps(document))


@FUZZ
@given(st.binary(max_size=300))
def test_any_bytes_parse_or_are_a_query_error(body):
    check_parse(body)


@FUZZ
@given(st.integers(min_value=1, max_value=400))
def test_a_truncated_real_answer_is_a_query_error(cut):
    body = open("tests/fixtures/query_range_node_cpu.json", "rb").read()
    check_parse(body[: len(body) * cut // 401])
