"""The topology stage of one analysis: scaled windows in, every topological summary out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aura_exporter.config import Analysis
from aura_exporter.topology.baseline import BaselineStore
from aura_exporter.topology.fleet import FleetTopology, fleet_topology
from aura_exporter.topology.novelty import Novelty, NoveltyTracker
from aura_exporter.topology.persistence import Diagrams, PersistenceEngine
from aura_exporter.topology.state import StateTracker
from aura_exporter.topology.summaries import (
    betti_numbers,
    critical_features,
    noise_thresholds,
    persistence_entropy,
)
from aura_exporter.windows import Windows


@dataclass(frozen=True)
class Topology:
    dims: tuple[int, ...]
    scaled: np.ndarray  # [E, T, F] windows in baseline units
    units: np.ndarray  # [E, F] one baseline unit in each feature's own units
    diagrams: Diagrams
    thresholds: np.ndarray  # [E] noise threshold
    betti: np.ndarray  # [E, dims]
    entropy: np.ndarray  # [E, dims]
    drift: np.ndarray  # [E, dims] Wasserstein distance from the baseline diagram
    drift_zscore: np.ndarray  # [E]
    critical: np.ndarray  # [E, k, 3] (dimension, birth, death), NaN-padded
    fleet: FleetTopology
    novelty: np.ndarray  # [E, F] z-score of the newest steps' novelty (topology/novelty.py); NaN when off
    record: np.ndarray  # [E, F] the newest steps' excess beyond every value before, as a share of their span
    #                     (+ above, − below, 0 none); NaN when novelty is off
    state: np.ndarray  # [E, F] z-score of the recent state against the entity's usual one (topology/state.py)
    state_units: np.ndarray  # [E, F] the same deviation in the feature's own units
    state_warm: np.ndarray  # [E, F] bool: the usual state is learned


def delay_embed(windows: np.ndarray, dimension: int, delay: int) -> np.ndarray:
    """Takens' delay embedding of [E, T, F] windows: each point becomes itself and its `dimension − 1`
    predecessors `delay` steps apart, [E, T − (dimension − 1)·delay, F·dimension]. A single series'
    dynamics (a cycle, a change of rhythm) then have a shape the diagrams can see."""
    if dimension == 1:
        return windows
    span = (dimension - 1) * delay
    steps = windows.shape[1]
    return np.concatenate([windows[:, i * delay: steps - span + i * delay, :] for i in range(dimension)], axis=2)


def coarsen(clouds: np.ndarray, max_points: int) -> np.ndarray:
    """[E, P, D] clouds with at most `max_points` points: each point the mean of `ceil(P / max_points)`
    consecutive ones (the oldest leftovers dropped). Persistence costs grow with the cube of the points,
    so halving them cuts a cycle's topology several times over, at the price of a coarser shape (and
    less noise). 0 keeps every point."""
    points = clouds.shape[1]
    if not max_points or points <= max_points:
        return clouds
    factor = -(-points // max_points)
    kept = (points // factor) * factor
    return clouds[:, points - kept:].reshape(clouds.shape[0], kept // factor, factor, clouds.shape[2]).mean(axis=2)


def steps_in(duration: float, analysis: Analysis) -> int:
    return max(1, round(duration / analysis.step))


class TopologyStage:
    """Keeps the analysis' baselines across cycles; `run` is called once per cycle."""

    def __init__(self, analysis: Analysis, workers: int = 1):
        settings = analysis.topology
        self.settings = settings
        self.engine = PersistenceEngine(settings.homology_dimensions, workers)
        self.baselines = BaselineStore(analysis.baseline, settings.homology_dimensions, analysis.window)
        self.novelty = (NoveltyTracker(settings.novelty_history, settings.embedding_dimension, settings.embedding_delay,
                                       analysis.baseline.forget_after, steps_in(settings.novelty_memory, analysis),
                                       steps_in(settings.novelty_warm_up, analysis), settings.novelty_scales)
                        if settings.novelty_history else None)
        self.state = StateTracker(analysis.baseline.forget_after)

    def run(self, windows: Windows, now: float) -> Topology:
        scaled = self.baselines.scale(windows.entities, windows.values, now)
        diagrams = self.engine.compute(coarsen(delay_embed(scaled, self.settings.embedding_dimension,
                                                           self.settings.embedding_delay), self.settings.max_points))
        thresholds = noise_thresholds(diagrams, self.settings.noise_factor, self.settings.min_persistence)
        drift = self.baselines.drift(windows.entities, diagrams, now)
        off = np.full((len(windows.entities), windows.values.shape[2]), np.nan)
        novelty = self.novelty.update(windows) if self.novelty is not None else Novelty(off, off)
        state = self.state.update(windows)
        return Topology(
            dims=diagrams.dims,
            scaled=scaled,
            units=self.baselines.units(windows.entities)[1] if windows.entities else np.zeros((0, scaled.shape[2])),
            diagrams=diagrams,
            thresholds=thresholds,
            betti=betti_numbers(diagrams, thresholds),
            entropy=persistence_entropy(diagrams),
            drift=drift.per_dim,
            drift_zscore=drift.zscore,
            critical=critical_features(diagrams, thresholds),
            fleet=fleet_topology(scaled, self.settings.noise_factor),
            novelty=novelty.zscore,
            record=novelty.record,
            state=state.zscore,
            state_units=state.units,
            state_warm=state.warm,
        )
