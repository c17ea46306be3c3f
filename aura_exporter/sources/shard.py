"""Sharding: which entities this replica analyses, trains on and exports.

Entities go to shards by Jump Consistent Hash (Lamping & Veach, 2014) of a stable hash of their
label set: every replica decides alone and alike, the shares are even, and going from N to N+1
shards moves only the 1/(N+1) of entities the new shard takes (a modulo would move most of them,
and with them their baselines and risk history).

Every replica still asks Prometheus for the whole analysis (PromQL cannot select by our hash); the
series of other shards are dropped as they arrive, before any work is done on them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from aura_exporter.config import AnyAnalysis, Feature, GraphAnalysis
from aura_exporter.sources.base import RangeResult, Source, entity_key

_MULTIPLIER = 2862933555777941757
_MASK = (1 << 64) - 1


def jump_hash(key: int, buckets: int) -> int:
    """The bucket in [0, buckets) of a 64-bit key (Lamping & Veach's algorithm)."""
    bucket, candidate = -1, 0
    while candidate < buckets:
        bucket = candidate
        key = (key * _MULTIPLIER + 1) & _MASK
        candidate = int((bucket + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return bucket


def entity_hash(names: Sequence[str], key: Sequence[str]) -> int:
    """A 64-bit hash of an entity's label set that every process and version computes alike."""
    canonical = json.dumps(sorted(zip(names, key, strict=True)), separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:8], "big")


class ShardError(Exception):
    pass


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    def owns(self, names: Sequence[str], key: Sequence[str]) -> bool:
        return self.count == 1 or jump_hash(entity_hash(names, key), self.count) == self.index


WHOLE = Shard()  # no sharding: one replica owns every entity


def resolve_shard(count: int, index: int | None, hostname: str) -> Shard:
    """The shard from flags, or from a StatefulSet pod's ordinal (its hostname ends in -<n>)."""
    if count < 1:
        raise ShardError(f"--shard.count must be at least 1, not {count}")
    if index is None:
        ordinal = re.search(r"-(\d+)$", hostname)
        if count > 1 and ordinal is None:
            raise ShardError(f"--shard.count is {count} but --shard.index is not set and the hostname "
                             f"{hostname!r} carries no StatefulSet ordinal")
        index = int(ordinal.group(1)) if ordinal and count > 1 else 0
    if not 0 <= index < count:
        raise ShardError(f"shard index {index} is outside 0..{count - 1}")
    return Shard(index, count)


class ShardedSource:
    """A Source that keeps only the series of this shard's entities (a graph's edges are not entities:
    a graph analysis runs whole, on shard 0)."""

    def __init__(self, source: Source, shard: Shard):
        self.source = source
        self.shard = shard

    async def query_range(self, analysis: AnyAnalysis, feature: Feature, start: float, end: float,
                          step: float | None = None) -> RangeResult:
        result = await self.source.query_range(analysis, feature, start, end, step)
        if isinstance(analysis, GraphAnalysis):  # edges are no entities: a graph runs whole, on shard 0
            return result
        names = analysis.entity_labels
        kept = tuple(s for s in result.series
                     if self.shard.owns(names, entity_key(s.labels, names)))
        return replace(result, series=kept)

    async def close(self) -> None:
        await self.source.close()
