"""Clocks: wall time for `run`, an accelerated one for `demo`, so one code path serves both."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class WallClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class AcceleratedClock:
    """Time that runs `speed` times faster than the wall clock from `origin` on."""

    def __init__(self, speed: float, origin: float | None = None):
        self.speed = speed
        self.origin = time.time() if origin is None else origin
        self._wall_origin = time.time()

    def now(self) -> float:
        return self.origin + (time.time() - self._wall_origin) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds / self.speed))
