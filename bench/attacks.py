"""Attacks on the HTTP surface, on loopback, bounded in time and count: `make attacks` (issue 25).

Starts the demo exporter (trained, `--hosts` replay hosts) behind basic auth (bcrypt cost 10, as
`htpasswd -nBC 10` makes), then, one after the other, for `--seconds` each, after a quiet period
measured the same way (the baseline):

1. wrong passwords: `--rate` requests a second, each with a new wrong password (so none is answered
   from memory), while an authorised scraper asks for /metrics (gzip) once a second;
2. idle clients: `--idle` connections that ask for /metrics without gzip and never read, held open,
   while the authorised scraper goes on;
3. a large incident on the live feed: a second demo on `--flagged` hosts whose council flags every
   one of them (warn and quorum near 0, no page budget), and `--feed-clients` WebSocket clients
   connecting to /api/v1/decisions one after the other; each must get the hello and every current
   decision, then stay connected while the cycles go on.

For each it prints what was sent and how it was answered, the authorised scrapes' latency and
failures, the longest time without a successful cycle (`aura_analysis_last_success_timestamp_seconds`),
and the resident memory of the exporter's process before, at its peak and after (its worker processes and a
forecaster's fine-tuning, which the attacks do not touch, left out), as a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import socket
import tempfile
import time
from pathlib import Path

import aiohttp
import bcrypt
import numpy as np
import yaml
from harness import DEMO_CONFIG, demo, rss_bytes, say

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
                self.rss.append(rss_bytes(self.pid, descendants=False))
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


async def nothing(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "nothing sent"


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
    closed = sum(cut_off(client) for client in sockets)
    return f"{len(sockets)} opened, {closed} cut off by the exporter"


def flag_everything() -> Path:
    """The demo's configuration with a council that flags every host: an incident as large as the fleet."""
    config = yaml.safe_load(DEMO_CONFIG.read_text())
    for analysis in config["analyses"]:
        if analysis.get("kind") != "graph":
            analysis["council"] = {"warn": 1e-9, "quorum": 2e-9, "hysteresis": 1e-10, "false_pages_per_week": 0,
                                   "confirm_cycles": 1}
    path = Path(tempfile.mkdtemp(prefix="aura-attacks-")) / "flag-everything.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))  # the checkpoint knows the features in order
    return path


async def feed_clients(url: str, clients: int, seconds: float) -> str:
    """Clients connecting one after the other; each reads its current state, then stays until the end."""
    ws_url = url.replace("http", "ws", 1) + "/api/v1/decisions"
    until = time.monotonic() + seconds
    delivered, whole, dropped = [], 0, 0
    async with aiohttp.ClientSession(headers=basic(USER, PASSWORD)) as session:
        sockets = []
        try:
            for _ in range(clients):
                started = time.monotonic()
                socket_ = await session.ws_connect(ws_url, max_msg_size=1 << 20)
                sockets.append(socket_)
                hello = await socket_.receive_json(timeout=30)
                current, last = 0, started
                while True:  # "current" events, then the first change or silence
                    try:
                        message = await socket_.receive(timeout=5)
                    except TimeoutError:
                        break
                    if message.type != aiohttp.WSMsgType.TEXT or json.loads(message.data)["type"] != "current":
                        break
                    current, last = current + 1, time.monotonic()
                delivered.append((current, last - started))
                whole += hello["type"] == "hello" and current > 0
            await asyncio.sleep(max(0.0, until - time.monotonic()))
            dropped = sum(socket_.closed for socket_ in sockets)
        finally:
            for socket_ in sockets:
                await socket_.close()
    counts = [c for c, _ in delivered]
    slowest = max(t for _, t in delivered)
    return (f"{clients} clients: each got {min(counts)}–{max(counts)} current decisions (slowest in {slowest:.1f} s); "
            f"{clients - whole} without them; {dropped} closed by the exporter before the end")


def cut_off(client: socket.socket) -> bool:
    """Whether the exporter closed this never-reading connection: what it holds is read (at most a body),
    then the end shows; a connection still open runs dry instead."""
    try:
        for _ in range(1024):
            if client.recv(1 << 16) == b"":
                return True
        return False
    except BlockingIOError:
        return False
    except OSError:  # reset
        return True
    finally:
        client.close()


async def attack(name: str, url: str, pid: int, seconds: float, work) -> list[str]:
    say(f"{name}…")
    before = rss_bytes(pid, descendants=False)
    watch = Watch(url, pid)
    watched = asyncio.create_task(watch.run(time.monotonic() + seconds + 3))
    outcome = await work
    await watched
    after = rss_bytes(pid, descendants=False)
    peak = max(watch.rss or [after])
    return [name, outcome, watch.figures(),
            f"RSS {before / 2**20:.0f} MiB before, peak {peak / 2**20:.0f} MiB (+{100 * (peak / before - 1):.0f}%), "
            f"{after / 2**20:.0f} MiB after"]


async def ready(url: str) -> None:
    """Until every analysis has completed a cycle."""
    async with aiohttp.ClientSession(headers=basic(USER, PASSWORD)) as session:
        while True:
            async with session.get(url + "/-/ready") as response:
                if response.status == 200:
                    return
            await asyncio.sleep(1)


async def main_async(args: argparse.Namespace) -> None:
    with demo(args.hosts, args.speed, (f"--web.config.file={web_config()}",)) as exporter:
        await ready(exporter.url)
        rows = [await attack(f"none, {args.seconds:g} s (the baseline)", exporter.url, exporter.process.pid,
                             args.seconds, nothing(args.seconds))]
        rows.append(await attack(f"{args.rate} wrong passwords a second, each new, for {args.seconds:g} s",
                                 exporter.url, exporter.process.pid, args.seconds,
                                 wrong_passwords(exporter.url, args.rate, args.seconds)))
        rows.append(await attack(f"{args.idle} clients asking for /metrics and never reading, {args.seconds:g} s",
                                 exporter.url, exporter.process.pid, args.seconds,
                                 idle_clients(exporter.port, args.idle, args.seconds)))
    with demo(args.flagged, args.speed, (f"--web.config.file={web_config()}", f"--config.file={flag_everything()}")) \
            as exporter:
        await ready(exporter.url)
        rows.append(await attack(f"none, {args.seconds:g} s, all {args.flagged:,} hosts flagged (the baseline)",
                                 exporter.url, exporter.process.pid, args.seconds, nothing(args.seconds)))
        rows.append(await attack(f"{args.feed_clients} live-feed clients during an incident flagging all "
                                 f"{args.flagged:,} hosts, {args.seconds:g} s", exporter.url, exporter.process.pid,
                                 args.seconds, feed_clients(exporter.url, args.feed_clients, args.seconds)))
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
    parser.add_argument("--flagged", type=int, default=5000, help="hosts, every one flagged, for the feed attack")
    parser.add_argument("--feed-clients", type=int, default=10)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
