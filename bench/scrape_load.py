"""Scrape load: /metrics latency while cycles compute. `make scrape-load` (2,000 hosts, 20 scrapers, 60 s).

Runs the demo exporter on a large replay fleet at a pace where cycles run back to back, then hits
/metrics from N concurrent scrapers (each one request after the other, as fast as answers come,
asking for gzip as Prometheus does) for a minute, and prints p50/p99/max latency, throughput and
errors, next to one lone scraper measured the same way in the same run (the baseline).
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiohttp
import numpy as np
from harness import cycles_done, demo, say

WARM_UP_CYCLES = 3


async def scrape(session: aiohttp.ClientSession, url: str, until: float, latencies: list[float],
                 errors: list[str]) -> None:
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            async with session.get(url) as response:
                await response.read()
                if response.status != 200:
                    errors.append(f"HTTP {response.status}")
                    continue
        except (aiohttp.ClientError, TimeoutError) as err:
            errors.append(type(err).__name__)
            continue
        latencies.append(time.monotonic() - started)


async def load(url: str, scrapers: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    until = time.monotonic() + seconds
    timeout = aiohttp.ClientTimeout(total=10)
    # As Prometheus does, ask for gzip; but leave the body compressed: on this 2-core machine the
    # scrapers' decompression would compete with the exporter for the same cores.
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=scrapers),
                                     auto_decompress=False, headers={"Accept-Encoding": "gzip"}) as session:
        await asyncio.gather(*(scrape(session, url, until, latencies, errors) for _ in range(scrapers)))
    ms = np.array(latencies) * 1000
    return {"scrapers": scrapers, "seconds": seconds, "requests": len(latencies), "errors": len(errors),
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max())}


async def metrics_text(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as response:
        return await response.text()


async def cycles(url: str) -> int:
    async with aiohttp.ClientSession() as session:
        return cycles_done(await metrics_text(session, url))


async def run(url: str, scrapers: int, seconds: float) -> None:
    say(f"waiting for {WARM_UP_CYCLES} cycles…")
    while await cycles(url) < WARM_UP_CYCLES:
        await asyncio.sleep(2)
    async with aiohttp.ClientSession() as session:
        size = len(await metrics_text(session, url))
    async with aiohttp.ClientSession(auto_decompress=False, headers={"Accept-Encoding": "gzip"}) as session:
        async with session.get(url) as response:
            compressed = len(await response.read())
    rows = []
    for concurrency, duration in ((1, seconds / 4), (scrapers, seconds)):
        before = await cycles(url)
        say(f"{concurrency} scraper(s) for {duration:g} s…")
        result = await load(url, concurrency, duration)
        result["cycles_meanwhile"] = await cycles(url) - before
        rows.append(result)
    print(f"/metrics body: {size / 1024:.0f} KiB, {compressed / 1024:.0f} KiB gzipped")
    print("| scrapers | requests | errors | p50 | p99 | max | cycles completed meanwhile |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['scrapers']} | {r['requests']} | {r['errors']} | {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms "
              f"| {r['max_ms']:.1f} ms | {r['cycles_meanwhile']} |")
    print(f"p99 with {scrapers} scrapers vs one: {rows[1]['p99_ms'] / rows[0]['p99_ms']:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=2000)
    parser.add_argument("--scrapers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--speed", type=float, default=30, help="replay speed (data seconds per second)")
    args = parser.parse_args()
    with demo(args.hosts, args.speed) as exporter:
        asyncio.run(run(exporter.url + "/metrics", args.scrapers, args.seconds))
        if exporter.process.poll() is not None:
            raise SystemExit("the exporter died under load")


if __name__ == "__main__":
    main()
