"""Exact 1-Wasserstein distances between persistence diagrams (ground metric L∞).

A point may be matched to a point of the other diagram (cost: L∞ distance) or to the diagonal
(cost: half its lifetime). Two exact methods:

- H0 of a Vietoris–Rips filtration has every birth at 0, so its diagrams are points on a line and
  an optimal matching never crosses: a dynamic program over sorted deaths, batched over all
  entities at once with numpy (each row is a prefix-minimum scan).
- Other dimensions: the Hungarian method (scipy's linear_sum_assignment) on the usual augmented
  (n + m) × (n + m) cost matrix. Those diagrams are small.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    """W1 between two diagrams given as [n, 2] and [m, 2] (birth, death) arrays."""
    a = a[a[:, 1] > a[:, 0]]
    b = b[b[:, 1] > b[:, 0]]
    n, m = len(a), len(b)
    if n == 0 or m == 0:
        return float(np.sum((a[:, 1] - a[:, 0]) / 2) + np.sum((b[:, 1] - b[:, 0]) / 2))
    cost = np.zeros((n + m, n + m))
    cost[:n, :m] = np.maximum(np.abs(a[:, None, 0] - b[None, :, 0]), np.abs(a[:, None, 1] - b[None, :, 1]))
    cost[:n, m:] = ((a[:, 1] - a[:, 0]) / 2)[:, None]
    cost[n:, :m] = ((b[:, 1] - b[:, 0]) / 2)[None, :]
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].sum())


def wasserstein_h0(deaths_a: np.ndarray, deaths_b: np.ndarray) -> np.ndarray:
    """[entities] W1 between H0 diagrams with births 0, given as [E, n] and [E, m] deaths.

    Zero-length padding (death 0) is free to send to the diagonal, so diagrams of different sizes
    can be padded with zeros.
    """
    a = np.sort(deaths_a, axis=1)
    b = np.sort(deaths_b, axis=1)
    entities, m = b.shape
    half_b = np.concatenate([np.zeros((entities, 1)), np.cumsum(b / 2, axis=1)], axis=1)  # [E, m+1]
    row = half_b.copy()  # dp[0][j]: the first j points of b all go to the diagonal
    for i in range(a.shape[1]):
        ai = a[:, i : i + 1]
        delete_a = row + ai / 2  # dp[i][j] via a_i to the diagonal
        match = row[:, :-1] + np.abs(ai - b)  # dp[i][j] via a_i matched with b_j
        best = np.concatenate([delete_a[:, :1], np.minimum(delete_a[:, 1:], match)], axis=1)
        # dp[i][j] = min over k <= j of best[k] + (b_{k+1} .. b_j to the diagonal)
        row = half_b + np.minimum.accumulate(best - half_b, axis=1)
    return row[:, -1]
