"""Exact 1-Wasserstein distances between persistence diagrams (ground metric L∞).

A point may be matched to a point of the other diagram (cost: L∞ distance) or to the diagonal
(cost: half its lifetime). Two exact methods:

- H0 of a Vietoris–Rips filtration has every birth at 0, so its diagrams are points on a line and
  an optimal matching never crosses: a dynamic program over sorted deaths, batched over all
  entities at once with numpy (each row is a prefix-minimum scan).
- Other dimensions: the Hungarian method (scipy's linear_sum_assignment) on an n × m reduction of
  the usual augmented (n + m) × (n + m) cost matrix, with the same optimum at a quarter the size.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    """W1 between two diagrams given as [n, 2] and [m, 2] (birth, death) arrays."""
    a = a[a[:, 1] > a[:, 0]]
    b = b[b[:, 1] > b[:, 0]]
    if len(a) > len(b):
        a, b = b, a
    half_a, half_b = (a[:, 1] - a[:, 0]) / 2, (b[:, 1] - b[:, 0]) / 2
    if len(a) == 0:
        return float(half_b.sum())
    # Rectangular form of the augmented problem: every point of the smaller diagram a is assigned a
    # point of b, either truly (L∞ cost) or as "both to the diagonal" (half_a + half_b); points of b
    # left over go to the diagonal. Subtracting half_b per column makes that a plain assignment.
    linf = np.maximum(np.abs(a[:, None, 0] - b[None, :, 0]), np.abs(a[:, None, 1] - b[None, :, 1]))
    cost = np.minimum(linf, half_a[:, None] + half_b[None, :]) - half_b[None, :]
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].sum() + half_b.sum())


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
