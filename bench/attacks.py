"""Attacks on the HTTP surface, on loopback, bounded in time and count: `make attacks` (issue 25).

Starts the demo exporter (trained, `--hosts` replay hosts) behind basic auth (bcrypt cost 10, as
`htpasswd -nBC 10` makes), then, one after the other, for `--seconds` each:

1. wrong passwords: `--rate` requests a second, each with a new wrong password (so none is answered
   from memory), while an authorised scraper asks for /metrics (gzip) once a second;
2. idle clients: `--idle` connections that ask for /metrics without gzip and never read, held open,
   while the authorised scraper goes on.

For each it prints what was sent and how it was answered, the authorised scrapes' latency and
failures, the longest time without a successful cycle (`aura_analysis_last_success_timestamp_seconds`),
and the exporter's resident memory before, at its peak and after, as a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import socket
import tempfile
import time
from pathlib import Path

import aiohttp
import bcrypt
import numpy as np
from harness import demo, rss_bytes, say

USER, PASSWORD = "prometheus", "scrape-secret"


def web_config() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="aura-attacks-"))
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()
    (folder / "web.yml").write_text(f"basic_auth_users:\n  {USER}: '{hashed}'\n")
    return folder / "web.yml"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class Watch:
    """The authorised scraper, the cycles' freshness and the exporter's memory, once a second."""

    def __init__(self, url: str, pid: int):
        self.url, self.pid = url, pid
        self.latencies: list[float] = []
        self.failures = 0
        self.longest_without_cycle = 0.0
        self.rss: list[int] = []

    async def run(self, until: float) -> None:
        async with aiohttp.ClientSession(headers={**basic(USER, PASSWORD), "Accept-Encoding": "gzip"},
                                         timeout=aiohttp.ClientTimeout(total=10)) as session:
            while time.monotonic() < until:
                started = time.monotonic()
                try:
                    async with session.get(self.url + "/metrics") as response:
                        text = await response.text()
                    self.latencies.append(time.monotonic() - started)
                    if response.status != 200:
                        self.failures += 1
                    else:
                        self._cycles(text)
                except (aiohttp.ClientError, TimeoutError):
                    self.failures += 1
                self.rss.append(rss_bytes(self.pid))
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))

    def _cycles(self, text: str) -> None:
        for line in text.splitlines():
            if line.startswith("aura_analysis_last_success_timestamp_seconds{"):
                self.longest_without_cycle = max(self.longest_without_cycle, time.time() - float(line.split()[-1]))

    def figures(self) -> str:
        ms = np.array(self.latencies or [np.nan]) * 1000
        return (f"authorised scrapes: {len(self.latencies)}, p50 {np.percentile(ms, 50):.0f} ms, "
                f"p99 {np.percentile(ms, 99):.0f} ms, max {ms.max():.0f} ms, {self.failures} failed; "
                f"longest without a cycle {self.longest_without_cycle:.0f} s")


async def wrong_passwords(url: str, rate: int, seconds: float) -> str:
    answers: collections.Counter = collections.Counter()

    async def one(session: aiohttp.ClientSession, number: int) -> None:
        try:
            async with session.get(url + "/metrics", headers=basic(USER, f"guess-{number}")) as response:
                answers[response.status] += 1
        except (aiohttp.ClientError, TimeoutError) as err:
            answers[type(err).__name__] += 1

    tasks = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10),
                                     connector=aiohttp.TCPConnector(limit=200)) as session:
        started = time.monotonic()
        for number in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, started + number / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one(session, number)))
        await asyncio.gather(*tasks)
    return f"{sum(answers.values())} sent: " + ", ".join(f"{count} × {status}" for status, count in sorted(
        answers.items(), key=str))


async def idle_clients(port: int, count: int, seconds: float) -> str:
    """How many connections were opened, and how many the exporter closed while they were held."""
    loop = asyncio.get_running_loop()
    request = (f"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n"
               f"Authorization: {basic(USER, PASSWORD)['Authorization']}\r\n\r\n").encode()
    sockets = []
    for _ in range(count):
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.setblocking(False)
        try:
            await loop.sock_connect(client, ("127.0.0.1", port))
            await loop.sock_sendall(client, request)
            sockets.append(client)
        except OSError:
            client.close()
    await asyncio.sleep(seconds)
    closed = 0
    for client in sockets:
        try:
            if client.recv(1 << 20, socket.MSG_PEEK) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
        client.close()
    return f"{len(sockets)} opened, {closed} cut off by the exporter"


async def attack(name: str, url: str, pid: int, seconds: float, work) -> list[str]:
    say(f"{name}…")
    before = rss_bytes(pid)
    watch = Watch(url, pid)
    watched = asyncio.create_task(watch.run(time.monotonic() + seconds + 3))
    outcome = await work
    await watched
    after = rss_bytes(pid)
    peak = max(watch.rss or [after])
    return [name, outcome, watch.figures(),
            f"RSS {before / 2**20:.0f} MiB before, peak {peak / 2**20:.0f} MiB (+{100 * (peak / before - 1):.0f}%), "
            f"{after / 2**20:.0f} MiB after"]


async def main_async(args: argparse.Namespace) -> None:
    with demo(args.hosts, args.speed, (f"--web.config.file={web_config()}",)) as exporter:
        async with aiohttp.ClientSession(headers=basic(USER, PASSWORD)) as session:
            while True:  # ready: every analysis has completed a cycle
                async with session.get(exporter.url + "/-/ready") as response:
                    if response.status == 200:
                        break
                await asyncio.sleep(1)
        rows = [await attack(f"{args.rate} wrong passwords a second, each new, for {args.seconds:g} s", exporter.url,
                             exporter.process.pid, args.seconds,
                             wrong_passwords(exporter.url, args.rate, args.seconds))]
        rows.append(await attack(f"{args.idle} clients asking for /metrics and never reading, {args.seconds:g} s",
                                 exporter.url, exporter.process.pid, args.seconds,
                                 idle_clients(exporter.port, args.idle, args.seconds)))
    print("| attack | answers | meanwhile | memory |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--speed", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--idle", type=int, default=500)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
