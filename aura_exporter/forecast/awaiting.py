"""Forecasts waiting for their outcome, and per-entity arrays that follow a changing set of entities: what
everything learned from each entity's own outcomes (bands.py, combination.py) shares.

Memory stays bounded: per horizon at most WAITING forecasts wait for their outcome, the newest at least
horizon / WAITING after the one before (a 4-hour horizon is judged on one forecast an hour).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from aura_exporter.windows import EntityKey

WAITING = 4  # forecasts per horizon waiting for their outcome, at most


@dataclass(frozen=True)
class Made:
    due: float  # the data time whose values are the outcome
    keys: tuple[EntityKey, ...]
    forecast: np.ndarray  # [E, F, ...] what was forecast for that time


class Awaiting:
    def __init__(self, horizons: tuple[float, ...], step: float):
        self.horizons = horizons
        self.step = step  # the data's step: an outcome is the cycle's data time within half a step of `due`
        self.queues: list[deque[Made]] = [deque() for _ in horizons]

    def come_due(self, data_time: float) -> Iterator[tuple[int, Made]]:
        """(horizon index, forecast) for each forecast whose outcome is this cycle's; older ones are dropped."""
        for h, queue in enumerate(self.queues):
            while queue and queue[0].due <= data_time + self.step / 2:
                made = queue.popleft()
                if made.due >= data_time - self.step / 2:  # the cycle of its outcome (not one after it)
                    yield h, made

    def add(self, data_time: float, keys: tuple[EntityKey, ...], forecasts: np.ndarray) -> None:
        """This cycle's forecasts [E, F, H, ...] wait for their outcomes, where their horizon has room."""
        for h, (horizon, queue) in enumerate(zip(self.horizons, self.queues, strict=True)):
            spacing = horizon / WAITING
            if not queue or data_time + horizon - queue[-1].due >= spacing - self.step / 2:
                queue.append(Made(data_time + horizon, keys, forecasts[:, :, h].copy()))

    def clear(self) -> None:
        for queue in self.queues:
            queue.clear()


def matching_rows(keys: tuple[EntityKey, ...], made: tuple[EntityKey, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(rows of `keys`, rows of `made`) of the entities in both."""
    if made == keys:
        return np.arange(len(keys)), np.arange(len(keys))
    index = {key: row for row, key in enumerate(keys)}
    pairs = [(index[key], i) for i, key in enumerate(made) if key in index]
    if not pairs:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    now, then = (np.array(column) for column in zip(*pairs, strict=True))
    return now, then


def carried_over(before: tuple[EntityKey, ...], values: np.ndarray, keys: tuple[EntityKey, ...],
                 shape: tuple[int, ...], fill: float) -> np.ndarray:
    """[len(keys), *shape] each entity's row of `values` (rows of `before`) where it had one of that shape, else
    `fill`: new entities start afresh, absent ones are forgotten."""
    out = np.full((len(keys), *shape), fill)
    if values.shape[1:] == shape:
        old, new = matching_rows(before, keys)
        out[new] = values[old]
    return out
