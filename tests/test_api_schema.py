"""The JSON API against its own OpenAPI document, fuzzed with schemathesis: whatever the request,
no 5xx, and every answer (status, content type, headers, body) matches the document."""

from __future__ import annotations

import pytest
import schemathesis
from conftest import ExporterProcess, stop_process, wait_for

from aura_exporter import __version__
from aura_exporter.exposition.openapi import openapi_document

# The WebSocket feed is no request/response operation; tests/test_api.py covers it.
schema = schemathesis.openapi.from_dict(openapi_document(__version__)).exclude(operation_id="decisionFeed")


@pytest.fixture(scope="module")
def exporter(tmp_path_factory):
    """The demo fleet without a forecaster (no training): entities with explanations and diagrams."""
    tmp = tmp_path_factory.mktemp("schema")
    config = tmp / "aura.yml"
    config.write_text(open("tests/fixtures/replay-forecast.yml").read().replace(
        "    forecast:\n", "    forecast:\n      enabled: false\n"))
    process = ExporterProcess(tmp, ["demo", f"--config.file={config}", f"--storage.path={tmp}",
                                    "--replay.hosts=12", "--replay.speed=60"])
    wait_for(lambda: process.get("/-/ready")[0] == 200, 60, what="the demo exporter ready")
    yield process
    stop_process(process.process, grace=15)


@schema.parametrize()
def test_every_operation_answers_as_documented(case, exporter):
    case.call_and_validate(base_url=exporter.url)
