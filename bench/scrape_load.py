"""Scrape load: /metrics latency while cycles compute. `make scrape-load`.

Runs the demo exporter on a large replay fleet at a pace where cycles run back to back, then:
- hits /metrics from N concurrent scrapers (each one request after the other, as fast as answers come,
  asking for gzip as Prometheus does) for a minute, and prints p50/p99/max latency, throughput and
  errors, next to one lone scraper measured the same way in the same run (the baseline);
- lets a real Prometheus (the Debian binary, its default Accept header: OpenMetrics first, gzip)
  scrape it every 15 s with the default 10 s timeout, for 2,000 and for 10,000 hosts, and reads
  that Prometheus' own `scrape_duration_seconds` and `up` for the time it scraped. Prometheus counts
  a scrape until it has parsed and stored every sample, on the same two cores; the exporter's own part,
  the time to the last byte of its answer to the same request, is measured meanwhile beside it;
- and Prometheus' own part: a Prometheus started the same way scraping one of those answers, kept and
  served as it came by a static server once the exporter has stopped (`--static-minutes`; 0: none).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import numpy as np
from aiohttp import web
from harness import REPO, cycles_done, demo, say

sys.path.insert(0, str(REPO / "tests"))
from conftest import PrometheusServer  # noqa: E402 - the test suite's real Prometheus, started the same way

# What Prometheus 2.42 sends (scrape/scrape.go, acceptHeader): OpenMetrics first.
PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
SCRAPE_INTERVAL = 15  # seconds: Prometheus' common setting (its own default is 1 m)

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


async def warm_up(url: str) -> None:
    say(f"waiting for {WARM_UP_CYCLES} cycles…")
    while await cycles(url) < WARM_UP_CYCLES:
        await asyncio.sleep(2)


async def run(url: str, scrapers: int, seconds: float) -> None:
    await warm_up(url)
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


async def answer(url: str) -> tuple[str, bytes]:
    """The Content-Type the exporter answers Prometheus' request with, and the answer as it came (gzip)."""
    async with aiohttp.ClientSession(headers={"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"},
                                     auto_decompress=False) as session:
        async with session.get(url) as response:
            return response.headers["Content-Type"], await response.read()


@contextlib.contextmanager
def static_server(content_type: str, body: bytes) -> Iterator[int]:
    """A server that answers every request with `body` (gzip) and nothing else to do: its port."""
    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=body, headers={"Content-Type": content_type, "Content-Encoding": "gzip"})

    app = web.Application()
    app.router.add_get("/metrics", handle)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield runner.addresses[0][1]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.run_until_complete(runner.cleanup())
        loop.close()


async def responses(url: str, seconds: float) -> np.ndarray:
    """Seconds to the last byte of the exporter's answers to Prometheus' request (gzip, left compressed), one
    every SCRAPE_INTERVAL: the exporter's part of a scrape, without Prometheus parsing and storing it."""
    took = []
    until = time.monotonic() + seconds
    async with aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(total=10),
                                     headers={"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"}) as session:
        while time.monotonic() < until:
            started = time.monotonic()
            async with session.get(url) as response:
                await response.read()
            took.append(time.monotonic() - started)
            await asyncio.sleep(max(0.0, SCRAPE_INTERVAL - (time.monotonic() - started)))
    return np.array(took)


def prometheus_scraping(port: int, minutes: float, timed: bool = True) -> dict:
    """A real Prometheus scraping the exporter for `minutes`: its own view of those scrapes (its
    scrape_duration_seconds counts until it has parsed and stored every sample), and unless not `timed`,
    the exporter's part of them measured meanwhile from a client asking the same."""
    with tempfile.TemporaryDirectory(prefix="aura-scrape-load-") as tmp:
        server = PrometheusServer(Path(tmp), {"aura": f"127.0.0.1:{port}"}, scrape_interval=f"{SCRAPE_INTERVAL}s")
        server.start()
        try:
            say(f"Prometheus scraping every {SCRAPE_INTERVAL} s for {minutes:g} min…")
            if timed:
                answered = asyncio.run(responses(f"http://127.0.0.1:{port}/metrics", minutes * 60))
            else:
                time.sleep(minutes * 60)
                answered = np.array([np.nan])
            span = f"[{int(minutes * 60) + SCRAPE_INTERVAL}s]"

            def samples(metric: str) -> np.ndarray:
                found = server.query(f'{metric}{{job="aura"}}{span}')
                return np.array([float(v) for _, v in found[0]["values"]]) if found else np.array([np.nan])

            durations, up = samples("scrape_duration_seconds"), samples("up")
            return {"scrapes": len(up), "failed": int((up == 0).sum()), "series": samples("scrape_samples_scraped")[-1],
                    "mean": durations.mean(), "p50": np.percentile(durations, 50),
                    "p99": np.percentile(durations, 99), "max": durations.max(),
                    "answer_p50": np.percentile(answered, 50), "answer_p99": np.percentile(answered, 99)}
        finally:
            server.stop()


def print_prometheus(rows: list[dict]) -> None:
    print(f"A real Prometheus scraping every {SCRAPE_INTERVAL} s (timeout 10 s):")
    print("| hosts | served by | series | format | scrapes | failed | scrape_duration_seconds: mean | p50 | p99 | max "
          "| the exporter's answer: p50 | p99 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['hosts']:,} | {r['served by']} | {r['series']:,.0f} | {r['format']} | {r['scrapes']:.0f} | "
              f"{r['failed']:.0f} | "
              + " | ".join(f"{r[k] * 1000:.1f} ms" if np.isfinite(r[k]) else "–"
                           for k in ("mean", "p50", "p99", "max", "answer_p50", "answer_p99")) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=2000, help="fleet of the closed-loop scrapers")
    parser.add_argument("--scrapers", type=int, default=20, help="closed-loop scrapers (0: none)")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--speed", type=float, default=30, help="replay speed (data seconds per second)")
    parser.add_argument("--prometheus-hosts", default="2000,10000",
                        help="fleets a real Prometheus scrapes ('' for none)")
    parser.add_argument("--prometheus-minutes", type=float, default=5)
    parser.add_argument("--static-minutes", type=float, default=3,
                        help="Prometheus scraping a kept answer from a static server (0: not measured)")
    args = parser.parse_args()
    prometheus_hosts = [int(h) for h in args.prometheus_hosts.split(",") if h]
    scraped = []
    for hosts in sorted({*prometheus_hosts, *([args.hosts] if args.scrapers else [])}):
        with demo(hosts, args.speed) as exporter:
            url = exporter.url + "/metrics"
            if hosts == args.hosts and args.scrapers:
                asyncio.run(run(url, args.scrapers, args.seconds))
            if hosts in prometheus_hosts:
                asyncio.run(warm_up(url))
                found = prometheus_scraping(exporter.port, args.prometheus_minutes)
                content_type, kept = asyncio.run(answer(url))
                scraped.append({"hosts": hosts, "served by": "the exporter", "format": content_type.split(";")[0],
                                **found})
            if exporter.process.poll() is not None:
                raise SystemExit("the exporter died under load")
        if hosts in prometheus_hosts and args.static_minutes:
            with static_server(content_type, kept) as port:
                found = prometheus_scraping(port, args.static_minutes, timed=False)
            scraped.append({"hosts": hosts, "served by": "a static server", "format": content_type.split(";")[0],
                            **found})
    if scraped:
        print_prometheus(scraped)


if __name__ == "__main__":
    main()
