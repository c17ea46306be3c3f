"""The query_range answer parser, on plain strings and a Prometheus-shaped answer in fixtures/."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FIXTURES

from aura_exporter.sources.base import QueryError
from aura_exporter.sources.parse import parse_matrix


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
