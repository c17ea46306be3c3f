"""The replay fleet's service graph: an online shop's services and their request rates.

Deterministic like the replay fleet (a pure function of edge and time). Healthy, the graph has
diamonds (two paths to one database) and one known loop (session ⇄ auth) and is in one part. The
scenario, repeating every `period` from the origin:
  - a retry loop between `loop` start and end: ledger calls checkout back on failures
    (checkout → payments → ledger → checkout) while the rates on the loop climb;
  - a partition between `cut` start and end: the inventory service and its database lose every call
    to and from the rest of the mesh, and keep talking to each other.
"""

from __future__ import annotations

import numpy as np

from aura_exporter.config import GRAPH_FEATURE, GraphConfig
from aura_exporter.sources.base import RangeResult, Series
from aura_exporter.sources.noise import gaussian

DAY = 86400.0

# (caller, callee, requests per second at the daily mean)
EDGES = (
    ("ingress", "frontend", 400.0), ("frontend", "session", 380.0), ("session", "auth", 120.0),
    ("auth", "session", 40.0), ("auth", "users", 90.0), ("users", "postgres-users", 150.0),
    ("frontend", "catalog", 250.0), ("catalog", "postgres-catalog", 300.0), ("catalog", "images", 200.0),
    ("frontend", "search", 80.0), ("search", "catalog", 60.0), ("search", "elasticsearch", 80.0),
    ("frontend", "recommendations", 120.0), ("recommendations", "catalog", 110.0),
    ("recommendations", "redis-recs", 240.0), ("frontend", "ads", 150.0), ("ads", "redis-ads", 150.0),
    ("frontend", "cart", 90.0), ("cart", "redis-cart", 180.0), ("cart", "inventory", 30.0),
    ("cart", "pricing", 90.0), ("pricing", "currency", 60.0), ("pricing", "tax", 30.0),
    ("frontend", "checkout", 12.0), ("checkout", "cart", 12.0), ("checkout", "pricing", 12.0),
    ("checkout", "payments", 10.0), ("payments", "fraud", 10.0), ("fraud", "postgres-fraud", 20.0),
    ("payments", "ledger", 10.0), ("ledger", "postgres-ledger", 30.0), ("checkout", "inventory", 12.0),
    ("inventory", "postgres-inventory", 60.0), ("checkout", "orders", 10.0), ("orders", "postgres-orders", 25.0),
    ("orders", "kafka", 20.0), ("inventory", "kafka", 8.0), ("checkout", "shipping", 10.0),
    ("shipping", "currency", 10.0), ("kafka", "notifications", 30.0), ("notifications", "email", 12.0),
    ("notifications", "sms", 3.0), ("kafka", "analytics", 30.0), ("frontend", "reviews", 40.0),
    ("reviews", "postgres-reviews", 40.0),
)
LOOP_EDGE = ("ledger", "checkout", 4.0)  # the retry path that closes the loop
LOOP = ("checkout", "payments", "ledger")
CUT = ("inventory", "postgres-inventory")


class ReplayServiceGraph:
    def __init__(self, origin: float, period: float, loop: tuple[float, float], cut: tuple[float, float]):
        self.origin = origin
        self.period = period
        self.loop = loop
        self.cut = cut

    def rates(self, t: np.ndarray) -> dict[tuple[str, str], np.ndarray]:
        """Requests per second of every edge at times `t` (an edge absent at a time is 0 then)."""
        s = (t - self.origin) % self.period
        looping = (s >= self.loop[0]) & (s < self.loop[1])
        cut_off = (s >= self.cut[0]) & (s < self.cut[1])
        daily = 1 + 0.35 * np.sin(2 * np.pi * (t % DAY) / DAY - np.pi / 2)
        rates = {}
        for index, (caller, callee, rate) in enumerate((*EDGES, LOOP_EDGE)):
            value = rate * daily * np.exp(0.05 * gaussian(np.full(t.shape, index), 40, t))
            if (caller, callee) == LOOP_EDGE[:2]:
                value = np.where(looping, value, 0.0)
            elif caller in LOOP and callee in LOOP:
                value = np.where(looping, 3 * value, value)  # retries amplify the traffic on the loop
            if (caller in CUT) != (callee in CUT):
                value = np.where(cut_off, 0.0, value)
            rates[(caller, callee)] = value
        return rates

    def answer(self, graph: GraphConfig, timestamps: np.ndarray) -> RangeResult:
        """Edge series labelled as the analysis' graph names them (Istio's, Tempo's or any labels)."""
        series = tuple(
            Series(labels={graph.caller: caller, graph.callee: callee}, timestamps=timestamps, values=values)
            for (caller, callee), values in self.rates(np.asarray(timestamps, dtype=np.float64)).items()
        )
        return RangeResult(feature=GRAPH_FEATURE, series=series)
