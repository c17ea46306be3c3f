"""The JSON API and the decision feed, served by a real exporter on the replay fleet."""

from __future__ import annotations

import asyncio
import dataclasses
import urllib.parse

import aiohttp
import numpy as np
import pytest
from conftest import serve_in_process
from openapi_spec_validator import validate

from aura_exporter.config import parse_config
from aura_exporter.exposition.views import entity_summary
from aura_exporter.sources.replay import ReplayFleet, ReplaySource

ANALYSES = parse_config(open("aura_exporter/examples/demo.yml").read()).analyses
HOSTILE = "<img src=x onerror=alert(1)>"


class HostileReplay(ReplaySource):
    """The replay fleet with one host and one service of its graph renamed to a hostile label value."""

    async def query_range(self, analysis, feature, start, end, step=None):
        result = await super().query_range(analysis, feature, start, end, step)
        series = [dataclasses.replace(s, labels={k: HOSTILE if v in ("host-00", "payments") else v
                                                 for k, v in s.labels.items()}) for s in result.series]
        return dataclasses.replace(result, series=tuple(series))


def serve(scenario):
    async def after_first_cycle(exporter, session):
        while "node" not in exporter.state.status.succeeded:
            await asyncio.sleep(0.05)
        await scenario(exporter, session)

    serve_in_process(after_first_cycle, HostileReplay(ReplayFleet(hosts=10)), ANALYSES)


async def get_json(session, path: str, status: int = 200) -> dict:
    async with session.get(path) as response:
        assert response.status == status, await response.text()
        assert response.content_type == "application/json"
        document = await response.json()
    assert document["status"] == ("success" if status == 200 else "error"), document
    return document


def test_entities_list_detail_and_lookup_by_labels():
    async def scenario(exporter, session):
        status = (await get_json(session, "/api/v1/status"))["data"]
        assert status["analyses"][0]["name"] == "node" and status["analyses"][0]["entities"] == 10

        listed = (await get_json(session, "/api/v1/entities?analysis=node"))["data"]
        assert listed["total"] == 10
        risks = [e["risk"] for e in listed["entities"]]
        assert risks == sorted(risks, reverse=True)
        assert {e["labels"]["instance"] for e in listed["entities"]} >= {HOSTILE, "host-01"}
        assert len((await get_json(session, "/api/v1/entities?limit=3"))["data"]["entities"]) == 3
        monitor = (await get_json(session, "/api/v1/entities?decision=monitor"))["data"]
        assert all(e["decision"] == "monitor" for e in monitor["entities"])

        hostile = next(e for e in listed["entities"] if e["labels"]["instance"] == HOSTILE)
        detail = (await get_json(session, f"/api/v1/entities/node/{hostile['id']}"))["data"]
        assert detail["labels"] == {"instance": HOSTILE}
        assert set(detail["agents"]) == {"network", "resources", "security", "performance"}
        explanation = detail["explanation"]
        assert explanation["decision"] == detail["decision"] and explanation["summary"]
        assert [a["agent"] for a in explanation["agents"]] == list(detail["agents"])
        assert set(detail["diagrams"]) == {"0", "1"} and all(len(p) == 2 for p in detail["diagrams"]["0"])
        assert detail["diagrams"]["0"], "a window of 120 distinct points has finite H0 bars"

        query = urllib.parse.urlencode({"instance": HOSTILE, "job": "aura-exporter", "severity": "critical"})
        by_labels = (await get_json(session, f"/api/v1/entities/node/by-labels?{query}"))["data"]
        assert by_labels["id"] == hostile["id"]

    serve(scenario)


@pytest.mark.parametrize(("path", "status", "mentions"), [
    ("/api/v1/entities?limit=abc", 400, "limit"),
    ("/api/v1/entities?limit=0", 400, "limit"),
    ("/api/v1/entities?decision=panic", 400, "decision"),
    ("/api/v1/entities?sort=name", 400, "sort"),
    ("/api/v1/entities?analysis=nope", 404, "nope"),
    ("/api/v1/entities/nope/0123456789abcdef", 404, "nope"),
    ("/api/v1/entities/node/not-an-id", 400, "hex"),
    ("/api/v1/entities/node/0123456789abcdef", 404, "no such entity"),
    ("/api/v1/entities/node/by-labels?job=x", 400, "instance"),
    ("/api/v1/entities/node/by-labels?instance=host-99", 404, "no such entity"),
    ("/api/v1/no/such/thing", 404, "openapi"),
    ("/api/v1/decisions", 426, "WebSocket"),
])
def test_malformed_requests_get_4xx_with_a_json_error(path, status, mentions):
    async def scenario(exporter, session):
        document = await get_json(session, path, status)
        assert document["errorType"] and mentions in document["error"]

    serve(scenario)


def test_wrong_methods_get_405_with_a_json_error():
    async def scenario(exporter, session):
        async with session.post("/api/v1/status", data=b"{") as response:
            assert response.status == 405 and (await response.json())["status"] == "error"
        async with session.delete("/api/v1/entities") as response:
            assert response.status == 405 and (await response.json())["status"] == "error"

    serve(scenario)


def test_a_request_line_too_long_for_the_server_gets_the_documented_plain_400():
    """aiohttp refuses a request line over 8,190 bytes before any route runs, in plain text: the document says so
    for every operation whose path or query a client writes (found by schemathesis, tests/test_api_schema.py)."""
    async def scenario(exporter, session):
        spec = await (await session.get("/api/v1/openapi.json")).json()
        for path in ("/api/v1/entities?analysis=" + "a" * 9000, "/api/v1/graphs/" + "g" * 9000):
            async with session.get(path) as response:
                assert response.status == 400 and response.content_type == "text/plain"
        for operations in spec["paths"].values():
            for operation in operations.values():
                if operation.get("parameters") and operation["operationId"] != "decisionFeed":
                    assert "text/plain" in operation["responses"]["400"]["content"], operation["operationId"]

    serve(scenario)


def test_openapi_document_is_valid_and_describes_every_route():
    async def scenario(exporter, session):
        document = await session.get("/api/v1/openapi.json")
        spec = await document.json()
        validate(spec)
        described = set(spec["paths"])
        routes = {r.resource.canonical for r in exporter.app.router.routes() if r.resource is not None}
        assert {r for r in routes if r.startswith("/api/v1")} == described

    serve(scenario)


def test_entities_are_sorted_and_cut_before_any_summary_is_built(monkeypatch):
    from aura_exporter.exposition import api as api_module

    built = []
    monkeypatch.setattr(api_module, "entity_summary", lambda result, index: built.append(index) or
                        entity_summary(result, index))

    async def scenario(exporter, session):
        result = exporter.holder.latest.results["node"]
        everyone = [entity_summary(result, i) for i in range(len(result.windows.entities))]
        for sort, field in (("risk", "risk"), ("drift", "drift_zscore"), ("isolation", "isolation")):
            built.clear()
            listed = (await get_json(session, f"/api/v1/entities?sort={sort}&limit=3"))["data"]
            expected = sorted(everyone, key=lambda e: -(e[field] or 0.0))[:3]  # stable, as the list was sorted
            assert listed == {"total": len(everyone), "entities": expected}
            assert len(built) == 3  # the other seven were never turned into JSON
        flagged = (await get_json(session, "/api/v1/entities?decision=critical&limit=5"))["data"]
        assert flagged["total"] == int((result.verdict.decision == 2).sum())

    serve(scenario)


def test_decision_feed_sends_hello_current_decisions_and_changes():
    async def scenario(exporter, session):
        feed = exporter.state.feed
        snapshot = exporter.holder.latest
        result = snapshot.results["node"]
        decisions = np.zeros(len(result.windows.entities), dtype=int)
        decisions[3] = 2
        critical = dataclasses.replace(result, verdict=dataclasses.replace(result.verdict, decision=decisions))
        feed.publish(dataclasses.replace(snapshot, results={"node": critical}))

        async with session.ws_connect("/api/v1/decisions") as socket:
            hello = await socket.receive_json(timeout=5)
            assert hello["type"] == "hello"
            current = await socket.receive_json(timeout=5)
            entity = result.entity_labels(3)
            assert (current["type"], current["decision"], current["labels"]) == ("current", "critical", entity)
            assert current["summary"].startswith("critical")

            calm = dataclasses.replace(result.verdict, decision=np.zeros_like(decisions))
            feed.publish(dataclasses.replace(snapshot, results={"node": dataclasses.replace(result, verdict=calm)}))
            change = await socket.receive_json(timeout=5)
            assert (change["type"], change["decision"], change["previous"]) == ("decision", "monitor", "critical")
            assert change["labels"] == entity

        same_site = f"http://127.0.0.1:{exporter.port}"
        async with session.ws_connect("/api/v1/decisions", headers={"Origin": same_site}) as socket:
            assert (await socket.receive_json(timeout=5))["type"] == "hello"
        for foreign in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                        {"Origin": same_site, "Sec-Fetch-Site": "cross-site"}):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:  # another site's page reads nothing
                await session.ws_connect("/api/v1/decisions", headers=foreign)
            assert refused.value.status == 403

    serve(scenario)


def test_a_new_client_gets_every_current_decision_however_many_and_stays(monkeypatch):
    from aura_exporter.exposition import feed as feed_module

    monkeypatch.setattr(feed_module, "QUEUE_SIZE", 1)

    async def scenario(exporter, session):
        feed = exporter.state.feed
        snapshot = exporter.holder.latest
        result = snapshot.results["node"]
        entities = len(result.windows.entities)

        def publish(decision: int) -> None:
            verdict = dataclasses.replace(result.verdict, decision=np.full(entities, decision))
            feed.publish(dataclasses.replace(snapshot, results={"node": dataclasses.replace(result, verdict=verdict)}))

        publish(2)
        async with session.ws_connect("/api/v1/decisions") as socket:
            assert (await socket.receive_json(timeout=5))["type"] == "hello"
            current = [await socket.receive_json(timeout=5) for _ in range(entities)]
            assert {e["type"] for e in current} == {"current"} and len({e["id"] for e in current}) == entities
            publish(0)  # every entity changes at once: one snapshot, however many changes
            changes = [await socket.receive_json(timeout=5) for _ in range(entities)]
            assert {(c["type"], c["decision"]) for c in changes} == {("decision", "monitor")}
            publish(1)
            publish(2)  # two snapshots before it could read one: more than its queue holds
            closing = await socket.receive(timeout=5)
            assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == aiohttp.WSCloseCode.TRY_AGAIN_LATER

    serve(scenario)


def test_the_feed_serves_a_bounded_number_of_clients(monkeypatch):
    from aura_exporter.exposition import feed as feed_module

    monkeypatch.setattr(feed_module, "MAX_CLIENTS", 2)

    async def scenario(exporter, session):
        async with session.ws_connect("/api/v1/decisions"), session.ws_connect("/api/v1/decisions"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect("/api/v1/decisions")
            assert refused.value.status == 503
        async with session.ws_connect("/api/v1/decisions") as socket:  # a slot is free again once one leaves
            assert (await socket.receive_json(timeout=5))["type"] == "hello"

    serve(scenario)


def test_reload_over_http_is_off_unless_the_lifecycle_api_is_enabled():
    async def scenario(exporter, session):
        async with session.post("/-/reload") as response:
            assert response.status == 403 and "Lifecycle API is not enabled" in await response.text()

    serve(scenario)
