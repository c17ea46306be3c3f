"""The live decision feed: a WebSocket at /api/v1/decisions.

A client gets a hello, the current warn and critical decisions (type "current"), then every change
of decision (type "decision") as
each snapshot is published (an entity first seen at monitor is not a change). The current decisions
go straight to the socket, one message at a time and however many there are, so a new client gets
them whole during the large incidents the feed exists for. Each client's queue holds the changes of at
most QUEUE_SIZE snapshots (however many changes each has: an incident that ends at once for 5,000 entities
is one); a client more snapshots behind is closed (code 1013, try again later) rather than let it hold
memory or delay anyone else, and at most MAX_CLIENTS are served at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from aiohttp import WSCloseCode, WSMsgType, web

from aura_exporter.council import DECISIONS
from aura_exporter.exposition.api import failure
from aura_exporter.exposition.crosssite import cross_site
from aura_exporter.exposition.views import entity_id
from aura_exporter.snapshot import AnalysisResult, Snapshot

log = logging.getLogger(__name__)

QUEUE_SIZE = 16  # snapshots' changes waiting for one client (16 minutes behind at 1-minute cycles)
MAX_CLIENTS = 64  # a UI tab or an on-call bot each; more is a leak or an attack
_LAGGING = object()


def decision_event(result: AnalysisResult, index: int, previous: str | None, kind: str = "decision") -> dict[str, Any]:
    """A change of decision ("decision"), or a decision as it stands when a client connects ("current")."""
    labels = result.entity_labels(index)
    explanation = result.explanation(index)
    return {
        "type": kind,
        "analysis": result.analysis.name,
        "id": entity_id(result.analysis.name, labels),
        "labels": labels,
        "decision": explanation.decision,
        "previous": previous,
        "risk": explanation.risk,
        "summary": explanation.summary,
        "time": result.data_time,
    }


def current_events(snapshot: Snapshot) -> Iterator[dict[str, Any]]:
    """The warn and critical decisions as they stand (type "current"), explained one at a time as sent."""
    for result in snapshot.results.values():
        for index in np.flatnonzero(result.verdict.decision > 0):
            yield decision_event(result, int(index), None, kind="current")


class DecisionFeed:
    def __init__(self) -> None:
        self.snapshot = Snapshot()
        self.decisions: dict[tuple[str, tuple], str] = {}
        self.queues: set[asyncio.Queue] = set()
        self.sockets: set[web.WebSocketResponse] = set()

    def publish(self, snapshot: Snapshot) -> None:
        """Queue the changes of decision in `snapshot` for every client (on the event loop)."""
        events, decisions = [], {}
        for name, result in snapshot.results.items():
            for index, key in enumerate(result.windows.entities):
                decision = DECISIONS[int(result.verdict.decision[index])]
                previous = self.decisions.get((name, key))
                if decision != (previous or "monitor"):
                    events.append(decision_event(result, index, previous))
                decisions[(name, key)] = decision
        self.snapshot, self.decisions = snapshot, decisions
        for queue in list(self.queues):
            self._offer(queue, events)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        socket = web.WebSocketResponse(heartbeat=30.0)
        if cross_site(request):  # another site's page would read the feed with the browser's credentials
            return failure(403, "forbidden", "cross-site request refused")
        if not socket.can_prepare(request).ok:
            upgrade = failure(426, "bad_request", "this endpoint is a WebSocket: connect with Upgrade: websocket")
            upgrade.headers["Upgrade"] = "websocket"
            return upgrade
        if len(self.sockets) >= MAX_CLIENTS:
            return failure(503, "unavailable", f"the decision feed serves at most {MAX_CLIENTS} clients at once")
        await socket.prepare(request)
        queue: asyncio.Queue = asyncio.Queue(maxsize=QUEUE_SIZE)
        snapshot = self.snapshot  # taken as the queue joins (no await between): the changes queued follow it
        self.queues.add(queue)
        self.sockets.add(socket)
        try:
            await socket.send_json({"type": "hello", "time": time.time()})
            for event in current_events(snapshot):
                await socket.send_json(event)
            await self._pump(socket, queue)
        finally:
            self.queues.discard(queue)
            self.sockets.discard(socket)
        return socket

    async def close_all(self, app: web.Application | None = None) -> None:
        for socket in list(self.sockets):
            await socket.close(code=WSCloseCode.GOING_AWAY, message=b"exporter shutting down")

    async def _pump(self, socket: web.WebSocketResponse, queue: asyncio.Queue) -> None:
        """Send queued events until the client goes; whatever it sends is read and ignored."""
        reader = asyncio.create_task(self._read_until_closed(socket))
        try:
            while not socket.closed:
                getter = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    return
                changes = getter.result()
                if changes is _LAGGING:
                    log.warning("closing a decision feed client that cannot keep up")
                    await socket.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow")
                    return
                for event in changes:
                    await socket.send_json(event)
        finally:
            reader.cancel()

    @staticmethod
    async def _read_until_closed(socket: web.WebSocketResponse) -> None:
        async for message in socket:
            if message.type == WSMsgType.ERROR:
                return

    @staticmethod
    def _offer(queue: asyncio.Queue, changes: list) -> None:
        """Queue one snapshot's changes (one list, shared by every client), or mark the client as lagging."""
        if not changes:
            return
        if queue.full():
            queue.get_nowait()  # make room for the marker: this client is closed anyway
            queue.put_nowait(_LAGGING)
            return
        queue.put_nowait(changes)
