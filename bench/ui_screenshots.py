"""Screenshots of the built-in UI for the README: `make screenshots` (needs Debian chromium).

Runs the demo with the leak under way (trains the small replay forecaster first), waits until the
leaking host has a forecast and some risk history, and saves docs/img/ui-fleet.png and
docs/img/ui-entity.png; then the demo's service graph as its retry loop closes: docs/img/ui-graph.png.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIG = "tests/fixtures/replay-forecast.yml"
GRAPH_CONFIG = "tests/fixtures/replay-graph.yml"
TARGET = REPO / "docs" / "img"


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


async def shoot(base: str, pages: dict[str, str]) -> None:
    """Save each page (path → file name under TARGET)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        for path, name in pages.items():
            await page.goto(f"{base}{path}")
            await page.screenshot(path=str(TARGET / name), full_page=name != "ui-fleet.png")
            print(f"wrote {TARGET / name}", file=sys.stderr)
        await browser.close()


def demo(config: str, storage: Path, offset: str) -> tuple[subprocess.Popen, str]:
    """The demo at 60x from `offset`, and its base URL once it listens."""
    log = storage / f"exporter-{offset}.log"
    process = subprocess.Popen([sys.executable, "-m", "aura_exporter", "demo", f"--config.file={config}",
                                f"--storage.path={storage}", "--replay.speed=60", f"--replay.offset={offset}",
                                "--web.listen-address=127.0.0.1:0"], stderr=open(log, "wb"), cwd=REPO)
    while True:
        time.sleep(0.5)
        found = re.search(r"msg=listening .*port=(\d+)", log.read_text())
        if found:
            return process, f"http://127.0.0.1:{found.group(1)}"


def wait_until(condition, what: str) -> None:
    """Poll `condition` every 2 s; a 503 (no complete cycle yet) counts as not yet."""
    print(f"waiting for {what}…", file=sys.stderr)
    while True:
        time.sleep(2)
        try:
            if condition():
                return
        except urllib.error.HTTPError as err:
            if err.code != 503:
                raise


def main() -> None:
    storage = Path(tempfile.mkdtemp())
    print("training the replay forecaster…", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "aura_exporter", "train", f"--config.file={CONFIG}",
                    "--history.source=replay", f"--storage.path={storage}"], check=True, cwd=REPO)
    process, base = demo(CONFIG, storage, "80m")
    try:
        leaking = f"{base}/api/v1/entities/node/by-labels?instance=host-07"
        wait_until(lambda: get(leaking)["data"]["forecast"] and get(leaking)["data"]["decision"] == "critical",
                   "the leak to be flagged")
        time.sleep(20)  # some risk history
        asyncio.run(shoot(base, {"/ui": "ui-fleet.png", f"/ui/entities/node/{get(leaking)['data']['id']}":
                                 "ui-entity.png"}))
    finally:
        process.terminate()
        process.wait()
    process, base = demo(GRAPH_CONFIG, storage, "148m")
    try:
        graphs = f"{base}/api/v1/graphs"  # lists a graph once it has a result
        wait_until(lambda: any(g["new_loops"] for g in get(graphs)["data"]["graphs"]), "the retry loop")
        asyncio.run(shoot(base, {"/ui/graphs/mesh": "ui-graph.png"}))
    finally:
        process.terminate()
        process.wait()


if __name__ == "__main__":
    main()
