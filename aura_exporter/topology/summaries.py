"""Numbers read off persistence diagrams: noise threshold, Betti numbers, entropy, critical features.

The noise threshold of an entity's window is `max(min_persistence, noise_factor × median H0 bar)`:
the median finite H0 bar is the cloud's typical sampling gap, and a feature must outlive several
such gaps to be more than sampling noise. A persistent Betti number counts the features of one
dimension that outlive the threshold (H0 also counts the one component that never dies).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gtda.diagrams import PersistenceEntropy

from aura_exporter.topology.persistence import Diagrams

# The product plan's reading of a long-lived feature of each dimension.
INTERPRETATIONS = {
    0: "isolated component: the window splits into separate regimes (possible partition or failover)",
    1: "loop: the metrics cycle through states (possible circular dependency or retry feedback)",
    2: "void: a hollow multi-feature structure (possible complex cascade)",
}


def lifetimes(pairs: np.ndarray) -> np.ndarray:
    return pairs[..., 1] - pairs[..., 0]


def noise_thresholds(diagrams: Diagrams, noise_factor: float, min_persistence: float) -> np.ndarray:
    """[entities] persistence below which a feature is noise."""
    h0 = lifetimes(diagrams.of_dim(0)) if 0 in diagrams.dims else np.zeros((diagrams.array.shape[0], 0))
    bars = np.where(h0 > 0, h0, np.nan)
    typical = np.full(bars.shape[0], np.nan)
    some = ~np.isnan(bars).all(axis=1)  # an entity whose points all coincide has no H0 bar at all
    if bars.shape[1] and some.any():
        typical[some] = np.nanmedian(bars[some], axis=1)
    return np.maximum(min_persistence, np.nan_to_num(noise_factor * typical, nan=0.0))


def betti_numbers(diagrams: Diagrams, thresholds: np.ndarray) -> np.ndarray:
    """[entities, dims] counts of features outliving each entity's threshold."""
    counts = [
        np.sum(lifetimes(diagrams.of_dim(dim)) > thresholds[:, None], axis=1) + (1 if dim == 0 else 0)
        for dim in diagrams.dims
    ]
    return np.stack(counts, axis=1) if counts else np.zeros((0, 0), dtype=int)


def persistence_entropy(diagrams: Diagrams) -> np.ndarray:
    """[entities, dims] Shannon entropy (bits) of lifetimes; 0 for an empty diagram."""
    if diagrams.array.shape[0] == 0:
        return np.zeros((0, len(diagrams.dims)))
    return PersistenceEntropy(nan_fill_value=0.0).fit_transform(diagrams.array)


def critical_features(diagrams: Diagrams, thresholds: np.ndarray, top: int = 3) -> np.ndarray:
    """[entities, top, 3] (dimension, birth, death) of the longest-lived significant features, NaN-padded."""
    array = diagrams.array
    if array.shape[0] == 0:
        return np.zeros((0, top, 3))
    life = lifetimes(array)
    life = np.where(life > thresholds[:, None], life, -np.inf)
    order = np.argsort(-life, axis=1)[:, :top]
    chosen = np.take_along_axis(array, order[:, :, None], axis=1)
    significant = np.take_along_axis(life, order, axis=1) > -np.inf
    out = np.stack([chosen[..., 2], chosen[..., 0], chosen[..., 1]], axis=2)
    out[~significant] = np.nan
    if out.shape[1] < top:
        out = np.concatenate([out, np.full((out.shape[0], top - out.shape[1], 3), np.nan)], axis=1)
    return out


@dataclass(frozen=True)
class CriticalFeature:
    dimension: int
    birth: float
    death: float
    interpretation: str

    @property
    def persistence(self) -> float:
        return self.death - self.birth


def describe_critical(rows: np.ndarray) -> list[CriticalFeature]:
    """One entity's [k, 3] critical-feature rows as readable features, most persistent first."""
    return [CriticalFeature(int(dim), float(birth), float(death), INTERPRETATIONS[int(dim)])
            for dim, birth, death in rows if not np.isnan(dim)]
