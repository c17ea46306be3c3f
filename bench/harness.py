"""What the soak and load scripts share: a demo exporter on a big replay fleet, and its memory.

The forecaster is trained beforehand (as `aura-exporter train` would in production), so the
figures measure the serving loop, not a first training.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO_CONFIG = REPO / "aura_exporter" / "examples" / "demo.yml"
PAGE = 4096


@dataclass
class Demo:
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def train(storage: Path) -> None:
    say("training the demo forecaster on replay history (once)…")
    subprocess.run([sys.executable, "-m", "aura_exporter", "train", f"--config.file={DEMO_CONFIG}",
                    "--history.source=replay", f"--storage.path={storage}"], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextlib.contextmanager
def demo(hosts: int, speed: float, extra: tuple[str, ...] = ()) -> Iterator[Demo]:
    """`aura-exporter demo` on `hosts` replay hosts, trained, listening on a free loopback port; `extra` flags."""
    storage = Path(tempfile.mkdtemp(prefix="aura-bench-"))
    train(storage)
    log = storage / "exporter.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "aura_exporter", "demo", f"--config.file={DEMO_CONFIG}", f"--storage.path={storage}",
         f"--replay.hosts={hosts}", f"--replay.speed={speed:g}", "--web.listen-address=127.0.0.1:0", *extra],
        stdout=subprocess.DEVNULL, stderr=open(log, "wb"), cwd=REPO)
    try:
        port = None
        while port is None:
            if process.poll() is not None:
                raise SystemExit(f"the exporter exited with {process.returncode}:\n{log.read_text()}")
            time.sleep(0.5)
            found = re.search(r"msg=listening .*port=(\d+)", log.read_text())
            port = int(found.group(1)) if found else None
        yield Demo(process, port, log)
    finally:
        process.terminate()
        process.wait(30)


def cycles_done(metrics_text: str, analysis: str = "node") -> int:
    found = re.search(rf'aura_analysis_cycles_total{{analysis="{analysis}",result="success"}} (\S+)', metrics_text)
    return int(float(found.group(1))) if found else 0


def rss_bytes(pid: int, descendants: bool = True) -> int:
    """Resident memory of a process and (unless not asked) all its descendants (giotto-tda's worker processes,
    a forecaster training)."""
    total = 0
    for member in _tree(pid) if descendants else [pid]:
        try:
            with open(f"/proc/{member}/statm") as handle:
                total += int(handle.read().split()[1]) * PAGE
        except OSError:  # it exited meanwhile
            continue
    return total


def _tree(pid: int) -> list[int]:
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                pending.extend(int(child) for child in (task / "children").read_text().split())
            except OSError:
                continue
    return found
