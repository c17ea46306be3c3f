"""The built-in UI in real headless Chromium (Debian `chromium`, driven by Playwright).

The exporter runs in this process on the replay fleet with one host renamed to a hostile label
value; screenshots of each page are saved under test-artifacts/ (ignored by git).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pytest
from conftest import REPO, serve_in_process
from test_api import ANALYSES, HOSTILE, HostileReplay

from aura_exporter.sources.replay import ReplayFleet

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"


def browse(scenario):
    """Run `scenario(exporter, page)` in Chromium against an in-process exporter after its first cycle."""
    from playwright.async_api import async_playwright

    async def with_browser(exporter, session):
        import asyncio

        while not {"node", "mesh"} <= exporter.state.status.succeeded:
            await asyncio.sleep(0.05)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = await browser.new_page(base_url=f"http://127.0.0.1:{exporter.port}",
                                              viewport={"width": 1280, "height": 900})
                dialogs: list[str] = []
                page.on("dialog", lambda dialog: dialogs.append(dialog.message))
                await scenario(exporter, page)
                assert dialogs == [], f"a script ran: {dialogs}"
            finally:
                await browser.close()

    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is missing: `make test` installs the Debian package")
    ARTIFACTS.mkdir(exist_ok=True)
    serve_in_process(with_browser, HostileReplay(ReplayFleet(hosts=10)), ANALYSES, timeout=120)


def test_fleet_page_lists_the_fleet_shows_hostile_labels_as_text_and_sorts():
    async def scenario(exporter, page):
        await page.goto("/ui")
        rows = page.locator("table.entities tbody tr")
        assert await rows.count() == 10
        assert await page.locator("table.entities a", has_text=HOSTILE).count() == 1  # shown as text...
        assert await page.locator("img[src=x]").count() == 0  # ...never as an element
        assert await page.locator("svg.fleet-graph circle.node").count() == 10
        await page.locator("th", has_text="entity").click()
        names = await page.locator("table.entities tbody tr td:first-child").all_inner_texts()
        assert names == sorted(names, reverse=True) or names == sorted(names)
        await page.screenshot(path=str(ARTIFACTS / "ui-fleet.png"), full_page=True)

    browse(scenario)


def test_entity_page_draws_as_many_diagram_points_as_the_api_has():
    async def scenario(exporter, page):
        listed = await (await page.request.get("/api/v1/entities?limit=1")).json()
        entity = listed["data"]["entities"][0]
        detail = (await (await page.request.get(f"/api/v1/entities/node/{entity['id']}")).json())["data"]
        await page.goto(f"/ui/entities/node/by-labels?{urlencode({'instance': entity['labels']['instance'], 'job': 'x'})}")
        assert page.url.endswith(f"/ui/entities/node/{entity['id']}")  # Grafana and alerts link by labels
        for dim, pairs in detail["diagrams"].items():
            drawn = page.locator(f'svg.diagram circle.point[data-dimension="{dim}"]')
            assert await drawn.count() == len(pairs)
            assert await page.locator(f'svg.barcode rect.bar[data-dimension="{dim}"]').count() == len(pairs)
        assert await page.locator("table.agents tr").count() == 1 + len(detail["agents"])
        assert detail["explanation"]["summary"] in await page.locator("p.summary").inner_text()
        await page.screenshot(path=str(ARTIFACTS / "ui-entity.png"), full_page=True)

    browse(scenario)


def test_service_graph_draws_every_service_and_edge_of_the_api_and_hostile_names_as_text():
    async def scenario(exporter, page):
        detail = (await (await page.request.get("/api/v1/graphs/mesh")).json())["data"]
        await page.goto("/ui/graphs/mesh")
        graph = page.locator("svg.service-graph")
        vanished = {s for c in detail["changes"] if not c["appeared"] for s in (c["caller"], c["callee"])}
        services = {n["service"] for n in detail["nodes"]}
        assert await graph.locator("g.service").count() == len(services | vanished)
        assert await graph.locator("path.edge").count() == len(detail["links"]) + sum(
            not c["appeared"] for c in detail["changes"])
        assert await graph.locator("path.edge.loop").count() == sum(
            link["loop_level"] is not None and (link["caller"], link["callee"]) not in
            {(c["caller"], c["callee"]) for c in detail["changes"]} for link in detail["links"])
        assert await graph.locator("g.service text", has_text=HOSTILE).count() == 1  # the renamed service, as text
        assert await page.locator("img[src=x]").count() == 0
        assert detail["summary"] in await page.locator("p.graph-summary").inner_text()
        await page.goto("/ui")
        assert await page.locator("h2.graph-title", has_text="mesh").count() == 1
        await page.screenshot(path=str(ARTIFACTS / "ui-graph.png"), full_page=True)

    browse(scenario)


def test_hostile_entity_page_runs_no_script_and_decisions_arrive_live():
    async def scenario(exporter, page):
        listed = await (await page.request.get("/api/v1/entities")).json()
        hostile = next(e for e in listed["data"]["entities"] if e["labels"]["instance"] == HOSTILE)
        snapshot = exporter.holder.latest
        result = snapshot.results["node"]

        def publish(decision: int) -> None:
            decisions = np.zeros(len(result.windows.entities), dtype=int)
            decisions[result.windows.entities.index((HOSTILE,))] = decision
            changed = dataclasses.replace(result, verdict=dataclasses.replace(result.verdict, decision=decisions))
            exporter.state.feed.publish(dataclasses.replace(snapshot, results={"node": changed}))

        publish(1)  # the entity is at warn when its page opens: the page must not reload for that
        loads: list[str] = []
        page.on("load", lambda _: loads.append(page.url))
        await page.goto(f"/ui/entities/node/{hostile['id']}")
        assert HOSTILE in await page.locator("h1").inner_text()
        await page.wait_for_function("document.getElementById('live').textContent.includes('on')")
        await page.wait_for_timeout(1500)
        assert len(loads) == 1, loads
        assert await page.locator("img[src=x]").count() == 0

        await page.goto("/ui")
        await page.wait_for_function("document.getElementById('live').textContent.includes('on')")
        publish(2)
        cell = page.locator(f'tr[data-id="{hostile["id"]}"] td.decision')
        await cell.filter(has_text="critical").wait_for(timeout=10000)
        assert await page.locator("img[src=x]").count() == 0

    browse(scenario)
