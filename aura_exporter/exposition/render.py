"""Render a snapshot once and serve it from an in-memory file.

Rendering 100k series takes a large fraction of a second in prometheus_client, far too slow for
every scrape, so each snapshot is written once, by AURA's own writer, and compressed once, off the
event loop; the same bytes serve both formats (for its gauges the Prometheus text format and
OpenMetrics are the same up to OpenMetrics' closing '# EOF'). The exporter's own metrics are few and
live, so they are rendered on every scrape, in the negotiated format, and appended.

The rendered bytes live in an anonymous in-memory file (memfd), not in Python objects, so that the
kernel sends them (sendfile): a scrape copies nothing into the exporter's memory, however slowly its
client reads (server.py).
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from prometheus_client import CollectorRegistry
from prometheus_client import exposition as text_format
from prometheus_client.openmetrics import exposition as openmetrics_format

from aura_exporter.exposition.collector import SnapshotCollector, TextWriter
from aura_exporter.snapshot import Snapshot

# The classic text format every Prometheus understands (prometheus_client now says 1.0.0).
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = openmetrics_format.CONTENT_TYPE_LATEST


@dataclass(frozen=True)
class Stored:
    """A run of bytes in a rendered snapshot's file."""

    file: BinaryIO
    offset: int
    length: int

    def __len__(self) -> int:
        return self.length

    def read(self, start: int = 0, size: int | None = None) -> bytes:
        """`size` bytes from `start` (to the end when None); positioned, so concurrent readers never race."""
        size = self.length - start if size is None else min(size, self.length - start)
        return os.pread(self.file.fileno(), size, self.offset + start)


Body = tuple[bytes | Stored, ...]  # a response body in parts, written one after the other


def body_bytes(body: Body) -> bytes:
    return b"".join(part.read() if isinstance(part, Stored) else part for part in body)


def _registry(snapshot: Snapshot) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: snapshot))
    return registry


@dataclass
class Rendered:
    snapshot: Snapshot
    text_part: Stored  # also OpenMetrics, but for its closing '# EOF' (the live part ends with it)
    text_gzip_head: Stored  # the text compressed, flushed to a byte boundary but not finished
    _compressor: zlib._Compress  # its state, copied per scrape to append the live part
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def text(self) -> bytes:
        return self.text_part.read()

    def text_gzip(self, live: bytes) -> Body:
        """One gzip member of text + live, compressing only the live part per scrape (the head is shared)."""
        with self._lock:
            compressor = self._compressor.copy()
        return self.text_gzip_head, compressor.compress(live) + compressor.flush()


def render_snapshot(snapshot: Snapshot, writer: TextWriter | None = None) -> Rendered:
    """`snapshot` written (by `writer`, which remembers the analyses' lines of the snapshots before) and compressed."""
    text = (writer or TextWriter()).write(snapshot)
    # Level 1, as for OpenMetrics: a third of level 6's time (0.09 s against 0.30 s for 24 MB of text),
    # 17% larger; compressing is on every cycle's path, the bytes only cross a LAN. 16+: gzip framing.
    compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    head = compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH)
    file = _MemoryFile(_anonymous_file(), "r+b")
    file.write_all(text)
    file.write_all(head)
    return Rendered(snapshot=snapshot, text_part=Stored(file, 0, len(text)),
                    text_gzip_head=Stored(file, len(text), len(head)), _compressor=compressor)


class _MemoryFile(io.FileIO):
    """A rendered snapshot's file, closed quietly when the last part using it is gone (the current snapshot's,
    or a slow scrape's): one per snapshot, its lifetime the parts' own."""

    def write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[self.write(view) or 0:]

    def __del__(self) -> None:
        self.close()


def _anonymous_file() -> int:
    """A file descriptor of an anonymous file: in memory (Linux), else on the temporary directory's disk."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create("aura-exposition", os.MFD_CLOEXEC)
    descriptor, path = tempfile.mkstemp(prefix="aura-exposition-")
    os.unlink(path)
    return descriptor


def wants_openmetrics(accept: str) -> bool:
    return "application/openmetrics-text" in (accept or "")


def exposition_body(rendered: Rendered, live: CollectorRegistry, openmetrics: bool, use_gzip: bool) -> Body:
    """The snapshot part followed by the live part, in the negotiated format and encoding, as parts sent one
    after the other: the snapshot's own bytes are shared by every scrape, never copied into a new body, and
    only the live part (a few kilobytes) is written and compressed per scrape."""
    live_part = (openmetrics_format if openmetrics else text_format).generate_latest(live)
    return rendered.text_gzip(live_part) if use_gzip else (rendered.text_part, live_part)


class ScrapeCache:
    """Bodies served in the last `ttl` seconds, by snapshot and negotiated format and encoding.

    A new snapshot is a new key, so cycle results are never served late; only the exporter's own
    live metrics (process, durations, counters) can be up to `ttl` old. Under many concurrent
    scrapers this turns each scrape into a lookup instead of a render and a compression.
    """

    def __init__(self, ttl: float = 0.5, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.clock = clock
        self._bodies: dict[tuple[int, bool, bool], tuple[float, Rendered, Body]] = {}

    def get(self, rendered: Rendered, openmetrics: bool, use_gzip: bool) -> Body | None:
        found = self._bodies.get((id(rendered), openmetrics, use_gzip))
        if found is None or found[1] is not rendered or self.clock() >= found[0]:
            return None
        return found[2]

    def put(self, rendered: Rendered, openmetrics: bool, use_gzip: bool, body: Body) -> None:
        now = self.clock()
        self._bodies = {key: kept for key, kept in self._bodies.items() if now < kept[0]}  # drop expired ones
        self._bodies[(id(rendered), openmetrics, use_gzip)] = (now + self.ttl, rendered, body)
