"""Soak: does memory stay flat across cycles? `make soak` (default 2,000 hosts for 30 minutes).

Runs the demo exporter on a large replay fleet at a fast pace (the interval is shorter than a
cycle, so it computes back to back), scrapes /metrics every 15 s as Prometheus would, reads the
JSON API and the UI every minute, and records the resident memory of the exporter and its worker
processes. RSS at "start" is taken once the warm-up is over (the first cycles allocate the
baselines, the forecaster and the risk history); "end" is the last reading. Prints a table, writes
the readings as JSON and, with matplotlib (`make bench-deps`), a plot.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
from pathlib import Path

from harness import REPO, cycles_done, demo, rss_bytes, say

WARM_UP_CYCLES = 5
MIB = 1024 * 1024


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def soak(hosts: int, minutes: float, speed: float) -> list[dict]:
    readings: list[dict] = []
    with demo(hosts, speed) as exporter:
        say(f"waiting for {WARM_UP_CYCLES} cycles over {hosts} hosts…")
        while cycles_done(get(exporter.url + "/metrics").decode()) < WARM_UP_CYCLES:
            time.sleep(2)
        started = time.monotonic()
        next_reading = started
        while (elapsed := time.monotonic() - started) <= minutes * 60:
            metrics = get(exporter.url + "/metrics").decode()
            if time.monotonic() >= next_reading:
                get(exporter.url + "/api/v1/entities?analysis=node")
                get(exporter.url + "/ui")
                readings.append({"minute": round(elapsed / 60, 2), "rss_bytes": rss_bytes(exporter.process.pid),
                                 "cycles": cycles_done(metrics)})
                say(f"{readings[-1]['minute']:5.1f} min: RSS {readings[-1]['rss_bytes'] / MIB:7.1f} MiB, "
                    f"{readings[-1]['cycles']} cycles")
                next_reading += 60
            time.sleep(15)
        if exporter.process.poll() is not None:
            raise SystemExit("the exporter died during the soak")
    return readings


def report(readings: list[dict], hosts: int) -> None:
    start, end = readings[0], readings[-1]
    peak = max(r["rss_bytes"] for r in readings)
    growth = (end["rss_bytes"] - start["rss_bytes"]) / start["rss_bytes"]
    print(f"hosts: {hosts}, minutes: {end['minute']:.1f}, cycles: {end['cycles'] - start['cycles']}")
    print("| reading | RSS (MiB) |\n|---|---|")
    print(f"| start (after {WARM_UP_CYCLES} cycles) | {start['rss_bytes'] / MIB:.1f} |")
    print(f"| end | {end['rss_bytes'] / MIB:.1f} |")
    print(f"| peak | {peak / MIB:.1f} |")
    print(f"growth start → end: {growth:+.1%}")


def plot(readings: list[dict], target: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        say("matplotlib is missing (make bench-deps): no plot")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 3))
    axis.plot([r["minute"] for r in readings], [r["rss_bytes"] / MIB for r in readings], marker=".")
    axis.set_xlabel("minutes after warm-up")
    axis.set_ylabel("RSS (MiB)")
    axis.set_ylim(bottom=0)
    axis.set_title("aura-exporter resident memory during the soak")
    figure.tight_layout()
    figure.savefig(target)
    say(f"wrote {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=2000)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--speed", type=float, default=30, help="replay speed (data seconds per second)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "soak-rss")
    args = parser.parse_args()
    readings = soak(args.hosts, args.minutes, args.speed)
    args.out.with_suffix(".json").write_text(json.dumps(readings, indent=1) + "\n")
    plot(readings, args.out.with_suffix(".png"))
    report(readings, args.hosts)


if __name__ == "__main__":
    main()
