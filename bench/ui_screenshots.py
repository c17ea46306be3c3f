"""Screenshots of the built-in UI for the README: `make screenshots` (needs Debian chromium).

Runs the demo with the leak under way (trains the small replay forecaster first), waits until the
leaking host has a forecast and some risk history, and saves docs/img/ui-fleet.png and
docs/img/ui-entity.png.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIG = "tests/fixtures/replay-forecast.yml"


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


async def shoot(base: str, entity: str, target: Path) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await page.goto(f"{base}/ui")
        await page.screenshot(path=str(target / "ui-fleet.png"))
        await page.goto(f"{base}/ui/entities/node/{entity}")
        await page.screenshot(path=str(target / "ui-entity.png"), full_page=True)
        await browser.close()


def main() -> None:
    storage = Path(tempfile.mkdtemp())
    print("training the replay forecaster…", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "aura_exporter", "train", f"--config.file={CONFIG}",
                    "--history.source=replay", f"--storage.path={storage}"], check=True, cwd=REPO)
    log = storage / "exporter.log"
    demo = subprocess.Popen([sys.executable, "-m", "aura_exporter", "demo", f"--config.file={CONFIG}",
                             f"--storage.path={storage}", "--replay.speed=60", "--replay.offset=80m",
                             "--web.listen-address=127.0.0.1:0"], stderr=open(log, "wb"), cwd=REPO)
    try:
        port = None
        while port is None:
            time.sleep(0.5)
            found = re.search(r"msg=listening .*port=(\d+)", log.read_text())
            port = found and int(found.group(1))
        base = f"http://127.0.0.1:{port}"
        print("waiting for the leak to be flagged…", file=sys.stderr)
        while True:
            time.sleep(2)
            detail = get(f"{base}/api/v1/entities/node/by-labels?instance=host-07")["data"]
            if detail["forecast"] and detail["decision"] == "critical":
                break
        time.sleep(20)  # some risk history
        target = REPO / "docs" / "img"
        asyncio.run(shoot(base, detail["id"], target))
        print(f"wrote {target / 'ui-fleet.png'} and {target / 'ui-entity.png'}")
    finally:
        demo.terminate()
        demo.wait()


if __name__ == "__main__":
    main()
