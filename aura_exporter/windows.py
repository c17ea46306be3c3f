"""Windows: the feature queries' answers aligned into one [entities, steps, features] array.

Series are matched to entities by the analysis' entity labels and placed on the step grid. Gaps of
at most `max_gap` steps are filled (linear inside the window, nearest value at its edges); an entity
with a longer gap, too much missing data, a feature it lacks, or two series for one feature is
skipped and counted by reason (`aura_entities_skipped{reason}`), never guessed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from aura_exporter.config import Analysis, AnyAnalysis
from aura_exporter.sources.base import EntityKey, RangeResult, Series, entity_key

MAD_TO_SIGMA = 1.4826
RELATIVE_SCALE_FLOOR = 0.05  # a feature's scale is at least 5% of its typical level...
ABSOLUTE_SCALE_FLOOR = 1e-6  # ...and never zero, so flat features stay finite
SKIP_REASONS = ("missing_feature", "duplicate_series", "missing_data")


@dataclass(frozen=True)
class Windows:
    analysis: str
    label_names: tuple[str, ...]
    entities: tuple[EntityKey, ...]
    features: tuple[str, ...]
    timestamps: np.ndarray  # [T], the step grid
    values: np.ndarray  # [E, T, F] raw values, gaps filled
    skipped: Mapping[str, int] = field(default_factory=dict)


def step_grid(analysis: AnyAnalysis, now: float) -> np.ndarray:
    """The window's timestamps: `steps` points on multiples of the step, ending at or before now."""
    end = np.floor(now / analysis.step) * analysis.step
    return end - analysis.step * np.arange(analysis.steps - 1, -1, -1, dtype=np.float64)


def place_series(analysis: Analysis, results: Sequence[RangeResult], grid: np.ndarray,
                 step: float | None = None) -> tuple[list[EntityKey], np.ndarray, np.ndarray]:
    """Entity keys (sorted), their [E, T, F] values on the grid (NaN where missing), and which of
    them had two series for one feature (those keep only the first). The grid's step defaults to
    the analysis' step. The samples of each feature are placed all at once (no loop over series)."""
    features = tuple(f.name for f in analysis.features)
    by_feature = {r.feature: r for r in results}
    rows: dict[EntityKey, int] = {}
    duplicates: set[EntityKey] = set()
    chosen: list[tuple[list[int], list[Series]]] = []
    for name in features:
        seen: set[EntityKey] = set()
        owners, kept = [], []
        for series in by_feature[name].series:
            key = entity_key(series.labels, analysis.entity_labels)
            if key in seen:
                duplicates.add(key)
                continue
            seen.add(key)
            owners.append(rows.setdefault(key, len(rows)))
            kept.append(series)
        chosen.append((owners, kept))
    keys = sorted(rows)
    position = np.empty(len(rows), dtype=np.int64)  # each entity's row in key order, placed there directly
    position[[rows[k] for k in keys]] = np.arange(len(keys))
    values = np.full((len(rows), len(grid), len(features)), np.nan)
    for column, (owners, kept) in enumerate(chosen):
        if kept:
            _place(values[:, :, column], position[owners], kept, grid, step or analysis.step)
    return keys, values, np.array([k in duplicates for k in keys], dtype=bool)


def _place(out: np.ndarray, owners: np.ndarray, series: list[Series], grid: np.ndarray, step: float) -> None:
    """Write every sample of `series` into row owners[i] of [rows, T] `out` at its grid step; samples
    off the grid (more than half a step from a grid point) or outside it are left out, ±Inf reads as NaN."""
    lengths = np.fromiter((s.timestamps.size for s in series), dtype=np.int64, count=len(series))
    timestamps = np.concatenate([s.timestamps for s in series])
    samples = np.concatenate([s.values for s in series])
    row = np.repeat(np.asarray(owners, dtype=np.int64), lengths)
    index = np.rint((timestamps - grid[0]) / step).astype(np.int64)
    nearest = grid[np.clip(index, 0, len(grid) - 1)]
    inside = (index >= 0) & (index < len(grid)) & (np.abs(timestamps - nearest) < step / 2)
    out[row[inside], index[inside]] = np.where(np.isfinite(samples[inside]), samples[inside], np.nan)


def build_windows(analysis: Analysis, results: Sequence[RangeResult], grid: np.ndarray) -> Windows:
    return windows_from(analysis, *place_series(analysis, results, grid), grid)


def windows_from(analysis: Analysis, keys: list[EntityKey], values: np.ndarray, dup: np.ndarray,
                 grid: np.ndarray) -> Windows:
    """The windows of placed samples (place_series): gaps filled, incomplete and duplicated entities left out."""
    lacking = np.all(np.isnan(values), axis=1).any(axis=1)  # a whole feature absent
    filled, complete = fill_gaps(values, analysis.max_gap_steps, analysis.max_missing_ratio)
    skipped = {
        "missing_feature": int(np.sum(lacking & ~dup)),
        "duplicate_series": int(np.sum(dup)),
        "missing_data": int(np.sum(~complete & ~lacking & ~dup)),
    }
    keep = complete & ~lacking & ~dup
    # A cardinality cap: beyond max_entities, the first in label order are kept (the same ones each cycle).
    over = np.flatnonzero(keep)[analysis.max_entities:]
    keep[over] = False
    skipped["over_max_entities"] = len(over)
    return Windows(
        analysis=analysis.name,
        label_names=analysis.entity_labels,
        entities=tuple(k for k, ok in zip(keys, keep, strict=True) if ok),
        features=tuple(f.name for f in analysis.features),
        timestamps=grid,
        values=filled[keep],
        skipped=skipped,
    )


def fill_gaps(values: np.ndarray, max_gap: int, max_missing_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Fill NaN runs of at most max_gap steps along axis 1 of [E, T, F].

    Returns the filled array and, per entity, whether it is complete: no run longer than max_gap
    and no more than max_missing_ratio of its points missing before filling.
    """
    entities, steps, features = values.shape
    if entities == 0:
        return values, np.zeros(0, dtype=bool)
    filled = np.array(values.transpose(0, 2, 1), order="C").reshape(-1, steps)  # [E*F, T], the one copy
    missing = np.isnan(filled)
    holey = np.flatnonzero(missing.any(axis=1))  # most rows of a healthy fleet have no gap: leave them be
    fillable = np.zeros_like(missing)
    filled[holey], fillable[holey] = _interpolate(filled[holey], missing[holey], max_gap)
    ratio = missing.reshape(entities, features * steps).mean(axis=1)
    unfilled = (missing & ~fillable).reshape(entities, -1).any(axis=1)
    complete = (ratio <= max_missing_ratio) & ~unfilled
    return filled.reshape(entities, features, steps).transpose(0, 2, 1), complete


def _interpolate(rows: np.ndarray, missing: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """[R, T] rows with their NaN runs of at most max_gap steps filled linearly (or with the nearest value at
    either end), and which points were filled."""
    steps = rows.shape[1]
    positions = np.broadcast_to(np.arange(steps), rows.shape)
    prev = np.maximum.accumulate(np.where(missing, -1, positions), axis=1)
    nxt = np.flip(np.minimum.accumulate(np.flip(np.where(missing, steps, positions), axis=1), axis=1), axis=1)
    run = np.where(missing, np.minimum(nxt, steps) - np.maximum(prev, -1) - 1, 0)
    fillable = missing & (run <= max_gap) & ((prev >= 0) | (nxt < steps))
    left = np.take_along_axis(rows, np.clip(prev, 0, steps - 1), axis=1)
    right = np.take_along_axis(rows, np.clip(nxt, 0, steps - 1), axis=1)
    weight = np.where((prev >= 0) & (nxt < steps), (positions - prev) / np.maximum(nxt - prev, 1), 0.0)
    interpolated = np.where(prev < 0, right, np.where(nxt >= steps, left, left + weight * (right - left)))
    return np.where(fillable, interpolated, rows), fillable


def robust_scale(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-entity, per-feature (median, scale) of [E, T, F] windows."""
    center = np.median(values, axis=1)
    mad = np.median(np.abs(values - center[:, None, :]), axis=1) * MAD_TO_SIGMA
    scale = np.maximum(np.maximum(mad, RELATIVE_SCALE_FLOOR * np.abs(center)), ABSOLUTE_SCALE_FLOOR)
    return center, scale


@dataclass(frozen=True)
class Context:
    """The forecaster's longer, sparser look back, aligned to a Windows' entities."""

    timestamps: np.ndarray  # [n], context_step apart, ending at the window's end
    values: np.ndarray  # [E, n, F], NaN rows for entities whose context is incomplete
    lagged: np.ndarray | None = None  # [E, S, n + H, F] one season before the context and each horizon's target


def context_grid(analysis: Analysis, end: float) -> np.ndarray:
    settings = analysis.forecast
    return end - settings.context_step * np.arange(settings.input_steps - 1, -1, -1, dtype=np.float64)


def lagged_grid(analysis: Analysis, times: np.ndarray) -> np.ndarray:
    """The context_step grid a lagged fetch covers so that every one of `times` lies on it or between two points."""
    step = analysis.forecast.context_step
    return times[0] + step * np.arange(int(np.ceil((times[-1] - times[0]) / step)) + 1, dtype=np.float64)


def build_lagged(analysis: Analysis, results: Sequence[RangeResult], grid: np.ndarray, times: np.ndarray,
                 windows: Windows) -> np.ndarray:
    """[E, len(times), F] the windows' entities' values at `times` (increasing, within `grid`, the lagged_grid
    fetched), interpolated between grid points; short gaps (2 points) filled, NaN where nothing is known."""
    keys, values, duplicated = place_series(analysis, results, grid, analysis.forecast.context_step)
    filled, _ = fill_gaps(values, max_gap=2, max_missing_ratio=1.0)
    position = (times - grid[0]) / analysis.forecast.context_step
    low = np.clip(np.floor(position).astype(int), 0, len(grid) - 1)
    high = np.minimum(low + 1, len(grid) - 1)
    weight = (position - low)[None, :, None]
    at_times = filled[:, low] * (1.0 - weight) + filled[:, high] * weight
    rows = {key: i for i, key in enumerate(keys) if not duplicated[i]}
    lagged = np.full((len(windows.entities), len(times), len(windows.features)), np.nan)
    for i, key in enumerate(windows.entities):
        if key in rows:
            lagged[i] = at_times[rows[key]]
    return lagged


def build_context(analysis: Analysis, results: Sequence[RangeResult], grid: np.ndarray, windows: Windows) -> Context:
    """Contexts for the windows' entities; short gaps (2 points) filled, others left NaN."""
    keys, values, duplicated = place_series(analysis, results, grid, analysis.forecast.context_step)
    filled, complete = fill_gaps(values, max_gap=2, max_missing_ratio=0.1)
    rows = {key: i for i, key in enumerate(keys) if complete[i] and not duplicated[i]}
    aligned = np.full((len(windows.entities), len(grid), len(windows.features)), np.nan)
    for i, key in enumerate(windows.entities):
        if key in rows:
            aligned[i] = filled[rows[key]]
    return Context(grid, aligned)
