"""Vietoris–Rips persistence of every entity's window at once, with giotto-tda.

Each entity's window is a point cloud: one point per time step in robust-scaled feature space.
giotto-tda computes the diagrams in its worker processes (joblib), so the event loop keeps
answering scrapes while a cycle computes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gtda.homology import VietorisRipsPersistence


@dataclass(frozen=True)
class Diagrams:
    """Persistence diagrams in giotto-tda's layout.

    `array` is [entities, points, 3] of (birth, death, homology dimension); every entity has the
    same number of rows per dimension, padded with zero-length (birth == death) points, which count
    for nothing in Betti numbers, entropy or Wasserstein distances. The infinite H0 bar is dropped
    (reduced homology): every non-empty cloud has one more component than its finite H0 bars.
    """

    dims: tuple[int, ...]
    array: np.ndarray

    def of_dim(self, dim: int) -> np.ndarray:
        """[entities, points, 2] (birth, death) pairs of one homology dimension."""
        if self.array.shape[0] == 0:
            return np.zeros((0, 0, 2))
        return self.array[:, self.array[0, :, 2] == dim, :2]

    def entity(self, index: int) -> dict[int, np.ndarray]:
        """One entity's non-trivial (birth, death) pairs per dimension (its own rows only: called for
        each new entity, slicing the whole batch here made a first cycle quadratic in entities)."""
        rows = self.array[index]
        pairs = {}
        for dim in self.dims:
            points = rows[rows[:, 2] == dim, :2]
            pairs[dim] = points[points[:, 1] > points[:, 0]]
        return pairs


class PersistenceEngine:
    """Vietoris–Rips persistence, batched over entities and parallel over `workers` processes."""

    def __init__(self, dims: tuple[int, ...], workers: int = 1):
        self.dims = dims
        self.workers = workers

    def compute(self, clouds: np.ndarray) -> Diagrams:
        """Diagrams of [entities, points, coordinates] clouds."""
        if clouds.shape[0] == 0:
            return Diagrams(self.dims, np.zeros((0, 0, 3)))
        transformer = VietorisRipsPersistence(
            homology_dimensions=self.dims, n_jobs=self.workers if clouds.shape[0] > 1 else 1
        )
        return Diagrams(self.dims, transformer.fit_transform(clouds))
