"""Configuration reload: POST /-/reload and SIGHUP apply a valid file at once and refuse an invalid one,
which leaves the running configuration untouched."""

from __future__ import annotations

import asyncio
import json
import logging
import signal

import aiohttp
from conftest import sample_value, wait_for

from aura_exporter.clock import WallClock
from aura_exporter.config import load_config
from aura_exporter.exporter import Exporter
from aura_exporter.sources.replay import ReplayFleet, ReplaySource


def config_text(names: list[str], interval: str = "1m") -> str:
    analyses = "".join(f"""
  - name: {name}
    entity_labels: [instance]
    step: 15s
    window: 30m
    interval: {interval}
    forecast: {{enabled: false}}
    features:
      cpu: {{query: cpu, role: resources, limit: 0.95}}
      net_rx: {{query: net_rx, role: network}}
""" for name in names)
    return "prometheus: {url: 'http://replay.invalid:9090'}\nanalyses:" + analyses


def test_reload_keeps_unchanged_analyses_restarts_changed_ones_and_refuses_bad_files(tmp_path, caplog):
    path = tmp_path / "aura.yml"
    path.write_text(config_text(["node"]))

    async def main():
        exporter = Exporter(load_config(str(path)), ReplaySource(ReplayFleet(hosts=10)), WallClock(), "127.0.0.1:0",
                            workers=1, config_path=str(path), lifecycle=True)
        stop = asyncio.Event()
        running = asyncio.create_task(exporter.run(stop))
        await exporter.started.wait()

        async def settled(name: str) -> None:
            while name not in exporter.state.status.succeeded:
                await asyncio.sleep(0.05)

        try:
            await asyncio.wait_for(settled("node"), 60)
            kept = exporter.runs["node"]
            async with aiohttp.ClientSession(f"http://127.0.0.1:{exporter.port}") as session:
                async def reload(expected: int) -> str:
                    async with session.post("/-/reload") as response:
                        assert response.status == expected, await response.text()
                        return await response.text()

                async def metrics() -> str:
                    async with session.get("/metrics") as response:
                        return await response.text()

                async def reload_successful() -> float | None:
                    await asyncio.sleep(exporter.state.scrapes.ttl)  # the exporter's own metrics may be that old
                    return sample_value(await metrics(), "aura_config_last_reload_successful", {})

                path.write_text("analyses: [}")
                assert "1 problem" in await reload(500)
                path.write_text(config_text(["node"]).replace("step: 15s", "step: soon"))
                with caplog.at_level(logging.ERROR, logger="aura_exporter"):
                    answer = await reload(500)
                assert "soon" not in answer and "in the exporter's log" in answer  # the file may hold secrets
                assert any("analyses[0].step" in str(r.__dict__.get("problem")) for r in caplog.records)
                assert await reload_successful() == 0
                assert exporter.runs["node"] is kept and not kept.tasks[0].done()  # the old one runs on

                path.write_text(config_text(["node", "pods"]))
                async with session.post("/-/reload", headers={"Origin": "http://evil.example"}) as response:
                    assert response.status == 403  # another site's page cannot reload with the browser's credentials
                assert "pods" not in exporter.runs
                await reload(200)
                assert await reload_successful() == 1
                assert exporter.runs["node"] is kept  # unchanged: its baselines and decisions stay
                await asyncio.wait_for(settled("pods"), 60)
                async with session.get("/api/v1/status") as response:
                    status = json.loads(await response.text())["data"]
                assert [a["name"] for a in status["analyses"]] == ["node", "pods"]

                changed = exporter.runs["pods"]
                path.write_text(config_text(["pods"], interval="2m"))
                await reload(200)
                assert "node" not in exporter.runs and kept.tasks[0].done()
                assert exporter.runs["pods"] is not changed  # changed: restarted with fresh state
                text = await metrics()
                assert sample_value(text, "aura_risk_score", {"analysis": "node"}) is None  # gone at once
                await asyncio.wait_for(settled("pods"), 60)
                async with session.get("/-/reload") as response:
                    assert response.status == 405
        finally:
            stop.set()
            await running

    asyncio.run(main())


def test_sighup_reloads_the_file_and_a_bad_one_changes_nothing(tmp_path, exporters):
    path = tmp_path / "aura.yml"
    path.write_text(config_text(["node"]))
    exporter = exporters(["demo", f"--config.file={path}", f"--storage.path={tmp_path}", "--replay.speed=1"])

    def analyses() -> list[str]:
        return [a["name"] for a in json.loads(exporter.get("/api/v1/status")[2])["data"]["analyses"]]

    wait_for(lambda: exporter.get("/-/ready")[0] == 200, 60, what="the first cycle")
    path.write_text(config_text(["node", "pods"]))
    exporter.process.send_signal(signal.SIGHUP)
    wait_for(lambda: analyses() == ["node", "pods"], 30, what="the reloaded configuration")
    path.write_text("analyses: 3")
    exporter.process.send_signal(signal.SIGHUP)
    wait_for(lambda: sample_value(exporter.metrics(), "aura_config_last_reload_successful", {}) == 0, 30,
             what="the refused reload counted")
    assert analyses() == ["node", "pods"] and exporter.process.poll() is None
    assert "configuration reload refused" in exporter.log() and "analyses" in exporter.log()
