"""The query_range answer parser, on plain strings and a Prometheus-shaped answer in fixtures/."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import FIXTURES

from aura_exporter.sources.base import QueryError
from aura_exporter.sources.parse import _parse_fast, _parse_objects, parse_matrix


def test_prometheus_shaped_answer():
    series = parse_matrix((FIXTURES / "query_range_node_cpu.json").read_bytes())
    assert len(series) == 2
    assert series[0].labels["instance"] == "host-a:9100"
    assert series[0].timestamps.dtype == np.float64 and np.all(np.diff(series[0].timestamps) == 15)
    assert np.isnan(series[1].values[1]) and series[1].values[2] == np.inf


@pytest.mark.parametrize("body, reason, message", [
    (b"<html>502 Bad Gateway</html>", "invalid_response", "not JSON"),
    (b'{"status":"error","errorType":"bad_data","error":"parse error"}', "bad_request", "parse error"),
    (b'{"status":"success","data":{"resultType":"vector","result":[]}}', "invalid_response", "not a matrix"),
    (b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":1},"values":[]}]}}',
     "invalid_response", "labels"),
    (b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"x"]]}]}}',
     "invalid_response", "malformed sample"),
    (b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[2,"1"],[1,"1"]]}]}}',
     "invalid_response", "ascending"),
    (b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"histograms":[]}]}}',
     "invalid_response", "no values"),
    (b'[1, 2]', "invalid_response", "not a JSON object"),
])
def test_strange_answers_are_query_errors(body, reason, message):
    with pytest.raises(QueryError, match=message) as caught:
        parse_matrix(body)
    assert caught.value.reason == reason


def test_empty_result_is_fine():
    assert parse_matrix(b'{"status":"success","data":{"resultType":"matrix","result":[]}}') == []


def compact(result) -> bytes:
    return json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}},
                      separators=(",", ":")).encode()


def test_the_fast_path_reads_what_the_plain_parser_reads():
    rng = np.random.default_rng(5)
    texts = ["NaN", "+Inf", "-Inf", "0", "1e-300", "-2.5e+17", "123456789012", "0.1"]
    result = [{"metric": {"instance": f'h"{i}]],[', "job": "node"},
               "values": [[1.7e9 + 15 * k + rng.choice([0, 0.25]),
                           str(rng.choice(texts)) if k % 3 else repr(rng.normal(0, 1e6))] for k in range(i)]}
              for i in range(40)]
    body = compact(result)
    fast = _parse_fast(body)
    assert fast is not None  # Prometheus' compact form takes the fast path
    for quick, plain in zip(fast, _parse_objects(body), strict=True):
        assert quick.labels == plain.labels
        np.testing.assert_array_equal(quick.timestamps, plain.timestamps)
        np.testing.assert_array_equal(quick.values, plain.values)


@pytest.mark.parametrize("body", [
    json.dumps({"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {}, "values": [[1, "2"]]}]}}).encode(),  # spaces after the colons
    compact([{"metric": {}, "values": [[1, "2", "3"], [4]]}]),  # the numbers add up, the pairs do not
    compact([{"metric": {}, "values": [[1, 2]]}]),  # a number where a string belongs
    compact([{"metric": {}, "values": [[1, "1]]"]]}]),  # a bracket inside a value
    compact([{"metric": {}, "values": [[1, "x"]]}]),
    compact([{"metric": {}, "value": [1, "2"]}]),
])
def test_anything_unexpected_leaves_the_fast_path(body):
    assert _parse_fast(body) is None
