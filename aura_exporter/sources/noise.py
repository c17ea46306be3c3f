"""Counter-based noise: every value a pure function of (key, stream, second), so replays need no state."""

from __future__ import annotations

import numpy as np


def mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a counter-based hash, so noise needs no state."""
    x = x.astype(np.uint64)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def uniform(host: np.ndarray, stream: int, seconds: np.ndarray) -> np.ndarray:
    key = (seconds.astype(np.int64).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
           + host.astype(np.uint64) * np.uint64(0x2545F4914F6CDD1D) + np.uint64((stream * 0x632BE59BD9B4E019) % 2**64))
    return (mix(key) >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)


def gaussian(host: np.ndarray, stream: int, seconds: np.ndarray) -> np.ndarray:
    u1 = np.maximum(uniform(host, 2 * stream, seconds), 1e-12)
    u2 = uniform(host, 2 * stream + 1, seconds)
    return np.sqrt(-2 * np.log(u1)) * np.cos(2 * np.pi * u2)
