"""What the forecaster sees: context windows normalised one by one, and samples cut from history.

The forecaster looks further back than the topology window: its context spans `forecast.context`
(by default its longest horizon) sampled every `context_step` (context / input_steps), because a
30-minute window cannot tell a 3-hour leak from a 40-minute wobble. Every context is normalised by
itself (in the spirit of RevIN): its last value is the origin and its robust spread the unit, so
one model serves entities of any level and "no change" is 0. Targets are the values at each
horizon in the same units. Two time-of-day inputs (sine, cosine) let the model learn daily shapes.

Seasons (`forecast.seasons`, say a day and a week; none by default): for each, the model also sees the same
context one season earlier and the values one season before each horizon's target time (its
anchors), in the context's units. Where a season's lag is not all there (history shorter than a
week, a gap a season ago), that season is marked absent and its inputs are 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aura_exporter.windows import robust_scale

DAY = 86400.0
CLIP = 50.0  # normalised values beyond this are clipped: one spike must not dominate training


@dataclass(frozen=True)
class ModelInputs:
    inputs: np.ndarray  # [B, steps, input_width] float32: context, lagged contexts, seasons present, time of day
    anchors: np.ndarray  # [B, S, F, H] float32: each season's values at the horizons' target times, one season back
    center: np.ndarray  # [B, F] the context's last value
    scale: np.ndarray  # [B, F] the context's robust spread


def input_width(features: int, seasons: int) -> int:
    return features * (1 + seasons) + seasons + 2


def model_inputs(values: np.ndarray, timestamps: np.ndarray, lagged: np.ndarray) -> ModelInputs:
    """Normalise [B, n, F] contexts sampled at timestamps [B, n] (or a shared [n]) for the model, with their
    lagged values [B, S, n + H, F] (lagged_values); a season with any value missing counts as absent."""
    steps = values.shape[1]
    center = values[:, -1, :]
    present = ~np.isnan(lagged).any(axis=(2, 3))  # [B, S]
    _, scale = robust_scale(values)
    normalised = np.clip((values - center[:, None, :]) / scale[:, None, :], -CLIP, CLIP)
    lags = np.clip((lagged - center[:, None, None, :]) / scale[:, None, None, :], -CLIP, CLIP)
    lags = np.where(present[:, :, None, None], lags, 0.0)
    seasons, features = lagged.shape[1], lagged.shape[3]
    lagged_context = lags[:, :, :steps].transpose(0, 2, 1, 3).reshape(len(values), steps, seasons * features)
    phase = 2 * np.pi * (np.broadcast_to(timestamps, values.shape[:2]) % DAY) / DAY
    flags = np.broadcast_to(present[:, None, :], (len(values), steps, present.shape[1]))
    features = np.concatenate([normalised, lagged_context, flags, np.sin(phase)[..., None], np.cos(phase)[..., None]],
                              axis=2)
    anchors = lags[:, :, steps:].transpose(0, 1, 3, 2)  # [B, S, F, H]
    return ModelInputs(features.astype(np.float32), anchors.astype(np.float32), center, scale)


def normalised_targets(future: np.ndarray, inputs: ModelInputs) -> np.ndarray:
    """[B, F, H] targets from future values [B, H, F]."""
    targets = (future - inputs.center[:, None, :]) / inputs.scale[:, None, :]
    return np.clip(targets, -CLIP, CLIP).transpose(0, 2, 1).astype(np.float32)


def denormalise(predicted: np.ndarray, inputs: ModelInputs) -> np.ndarray:
    """Model outputs [B, F, H, Q] back in the features' own units."""
    return predicted * inputs.scale[:, :, None, None] + inputs.center[:, :, None, None]


def model_horizons(interval: float, horizons: tuple[float, ...]) -> tuple[float, ...]:
    """Horizons (seconds) the model predicts: the configured ones plus one interval ahead (the nowcast)."""
    return tuple(sorted({interval, *horizons}))


@dataclass(frozen=True)
class Samples:
    inputs: np.ndarray  # [N, steps, input_width]
    anchors: np.ndarray  # [N, S, F, H]
    targets: np.ndarray  # [N, F, H]

    def __len__(self) -> int:
        return len(self.inputs)


@dataclass(frozen=True)
class SampleShape:
    """How samples sit on the history's step grid: all in steps of the history."""

    input_steps: int  # points per context
    stride: int  # context_step / step
    horizons: tuple[int, ...]
    seasons: tuple[int, ...] = ()

    @property
    def span(self) -> int:
        return (self.input_steps - 1) * self.stride

    def context_index(self, ends: np.ndarray) -> np.ndarray:
        return ends[:, None] - self.stride * np.arange(self.input_steps - 1, -1, -1)[None, :]


def lagged_values(history: np.ndarray, rows: np.ndarray, context_index: np.ndarray, ends: np.ndarray,
                  shape: SampleShape) -> np.ndarray:
    """[B, S, n + H, F] values of [E, N, F] history one season before each context point and each horizon's
    target, for samples of entity `rows` [B] whose contexts sit at `context_index` [B, n] and end at `ends` [B];
    NaN before the history begins."""
    targets = ends[:, None] + np.array(shape.horizons, dtype=np.int64)[None, :]
    points = np.concatenate([context_index, targets], axis=1)  # [B, n + H]
    lagged = np.full((len(rows), len(shape.seasons), points.shape[1], history.shape[2]), np.nan)
    for k, season in enumerate(shape.seasons):
        index = points - season
        inside = index >= 0
        lagged[:, k] = np.where(inside[..., None], history[rows[:, None], np.maximum(index, 0)], np.nan)
    return lagged


@dataclass(frozen=True)
class Split:
    """Per entity [E], the context ends samples may take: [first, last] inclusive, empty when last < first."""

    train_first: np.ndarray
    train_last: np.ndarray
    held_out_first: np.ndarray
    held_out_last: np.ndarray


def held_out_split(history: np.ndarray, shape: SampleShape, validation_share: float = 0.15) -> Split:
    """Each entity's observed span (up to its last step with any value) split at one point: training
    contexts and all their targets lie before it, held-out contexts end after it, so validation is
    strictly later than what the model learned from. A history whose end is hidden (a backtest's
    judged part, a gap) is held out before what is hidden, not inside it, where no sample is complete.
    """
    steps = history.shape[1]
    reach = max(shape.horizons)
    observed = ~np.isnan(history).all(axis=2)  # [E, N]
    last_seen = np.where(observed.any(axis=1), steps - 1 - np.argmax(observed[:, ::-1], axis=1), -1)
    first_end, last_end = shape.span, last_seen - reach
    if (last_end - first_end).max(initial=-1) < 8:
        raise ValueError(f"history of {steps} steps is too short for contexts of {shape.span + 1} steps "
                         f"and horizons up to {reach} steps")
    split = first_end + ((last_end + reach - first_end) * (1 - validation_share)).astype(int)
    return Split(np.full(len(split), first_end), split - reach, split + 1, last_end)


def training_samples(history: np.ndarray, timestamps: np.ndarray, shape: SampleShape, max_samples: int,
                     rng: np.random.Generator, validation_share: float = 0.15,
                     trend_share: float = 0.0) -> tuple[Samples, Samples]:
    """Training and held-out samples from [E, N, F] history on a step grid [N], split by held_out_split.
    Samples touching missing values are left out."""
    split = held_out_split(history, shape, validation_share)
    budget = max(1, int(max_samples * validation_share))
    cut = (history, timestamps, shape, rng, trend_share)
    return (_cut(*cut, split.train_first, split.train_last, max_samples - budget),
            _cut(*cut, split.held_out_first, split.held_out_last, budget))


def _cut(history: np.ndarray, timestamps: np.ndarray, shape: SampleShape, rng: np.random.Generator,
         trend_share: float, first_end: np.ndarray, last_end: np.ndarray, count: int) -> Samples:
    """Up to `count` complete samples whose contexts end between first_end and last_end [E] of their entity."""
    usable = np.flatnonzero(last_end >= first_end)
    features, seasons, horizons = history.shape[2], len(shape.seasons), len(shape.horizons)
    if not len(usable):
        return Samples(np.zeros((0, shape.input_steps, input_width(features, seasons)), np.float32),
                       np.zeros((0, seasons, features, horizons), np.float32),
                       np.zeros((0, features, horizons), np.float32))
    rows = rng.choice(usable, size=count * 2)
    ends = rng.integers(first_end[rows], last_end[rows] + 1)
    index = shape.context_index(ends)
    contexts = history[rows[:, None], index]  # [S, n, F]
    future = history[rows[:, None], ends[:, None] + np.array(shape.horizons)[None, :]]  # [S, H, F]
    complete = ~(np.isnan(contexts).any(axis=(1, 2)) | np.isnan(future).any(axis=(1, 2)))
    keep = np.flatnonzero(complete)[:count]
    lagged = lagged_values(history, rows[keep], index[keep], ends[keep], shape)
    contexts, future = add_trends(contexts[keep], future[keep], shape, trend_share, rng)
    prepared = model_inputs(contexts, timestamps[index[keep]], lagged)
    return Samples(prepared.inputs, prepared.anchors, normalised_targets(future, prepared))


def add_trends(contexts: np.ndarray, future: np.ndarray, shape: SampleShape, share: float,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Give `share` of the samples a steady linear trend that starts somewhere in the context
    (anywhere in its first three quarters) and runs on through the targets.

    The prior this teaches: a clean, sustained ramp goes on (leaks, filling disks, growing queues),
    which operational history alone rarely shows often enough to learn. Each trend rises or falls
    by 2 to 30 robust spreads of its context by the context's end. It leaves the series' own level
    where it starts, as a failure does: the lagged seasons (a day, a week before) keep the level the
    series left, so the network learns that a ramp away from yesterday goes on rather than back to
    yesterday (a trend ending at the original level taught the opposite, and seasons cost most of the
    breach lead; docs/forecast-quality.md).
    """
    if share <= 0 or len(contexts) == 0:
        return contexts, future
    chosen = rng.random(len(contexts)) < share
    _, scale = robust_scale(contexts[chosen])
    rise = rng.uniform(2, 30, size=scale.shape) * rng.choice([-1.0, 1.0], size=scale.shape) * scale
    length = shape.span * rng.uniform(0.25, 1.0, size=(len(scale), 1))  # history steps since it began
    slope = rise / length  # per history step, [S', F]
    offsets = -shape.stride * np.arange(shape.input_steps - 1, -1, -1)  # [n], 0 at the context's end
    since_start = np.maximum(offsets[None, :] + length, 0.0)  # [S', n]
    contexts, future = contexts.copy(), future.copy()
    contexts[chosen] += slope[:, None, :] * since_start[:, :, None]
    future[chosen] += slope[:, None, :] * (length[:, :, None] + np.array(shape.horizons, dtype=float)[None, :, None])
    return contexts, future
