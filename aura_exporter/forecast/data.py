"""What the forecaster sees: windows normalised one by one, and training samples cut from history.

Every window is normalised by itself (in the spirit of RevIN): its last value is the origin and its
robust spread the unit, so one model serves entities of any level and "no change" is 0. Targets
are the future values at each horizon in the same units. Two time-of-day inputs (sine, cosine)
let the model learn daily shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aura_exporter.windows import robust_scale

DAY = 86400.0
CLIP = 50.0  # normalised values beyond this are clipped: one spike must not dominate training


@dataclass(frozen=True)
class ModelInputs:
    inputs: np.ndarray  # [B, steps, features + 2] float32
    center: np.ndarray  # [B, F] the window's last value
    scale: np.ndarray  # [B, F] the window's robust spread


def pooling_factor(window_steps: int, input_steps: int) -> int:
    return max(1, -(-window_steps // input_steps))  # ceil division


def model_inputs(values: np.ndarray, timestamps: np.ndarray, input_steps: int) -> ModelInputs:
    """Normalise [B, T, F] windows ending at timestamps [B, T] (or a shared [T]) for the model."""
    center = values[:, -1, :]
    _, scale = robust_scale(values)
    normalised = np.clip((values - center[:, None, :]) / scale[:, None, :], -CLIP, CLIP)
    factor = pooling_factor(values.shape[1], input_steps)
    keep = (values.shape[1] // factor) * factor  # pool whole groups, keeping the newest steps
    pooled = normalised[:, -keep:, :].reshape(values.shape[0], keep // factor, factor, -1).mean(axis=2)
    times = np.broadcast_to(timestamps, values.shape[:2])[:, -keep:][:, factor - 1 :: factor]
    phase = 2 * np.pi * (times % DAY) / DAY
    features = np.concatenate([pooled, np.sin(phase)[..., None], np.cos(phase)[..., None]], axis=2)
    return ModelInputs(features.astype(np.float32), center, scale)


def normalised_targets(future: np.ndarray, inputs: ModelInputs) -> np.ndarray:
    """[B, F, H] targets from future values [B, H, F]."""
    targets = (future - inputs.center[:, None, :]) / inputs.scale[:, None, :]
    return np.clip(targets, -CLIP, CLIP).transpose(0, 2, 1).astype(np.float32)


def denormalise(predicted: np.ndarray, inputs: ModelInputs) -> np.ndarray:
    """Model outputs [B, F, H, Q] back in the features' own units."""
    return predicted * inputs.scale[:, :, None, None] + inputs.center[:, :, None, None]


@dataclass(frozen=True)
class Samples:
    inputs: np.ndarray  # [N, steps, F + 2]
    targets: np.ndarray  # [N, F, H]

    def __len__(self) -> int:
        return len(self.inputs)


def training_samples(history: np.ndarray, timestamps: np.ndarray, window_steps: int, horizon_steps: tuple[int, ...],
                     input_steps: int, max_samples: int, rng: np.random.Generator,
                     validation_share: float = 0.15) -> tuple[Samples, Samples]:
    """Training and held-out samples from [E, N, F] history on a step grid [N].

    The timeline is split at one point: training windows and all their targets lie before it,
    validation windows end after it, so validation is strictly later than what the model learned
    from (early stopping on a held-out tail). Windows or targets with missing values are left out.
    """
    steps = history.shape[1]
    reach = max(horizon_steps)
    first_end, last_end = window_steps - 1, steps - 1 - reach
    if last_end - first_end < 8:
        raise ValueError(f"history of {steps} steps is too short for windows of {window_steps} steps "
                         f"and horizons up to {reach} steps")
    split = first_end + int((last_end + reach - first_end) * (1 - validation_share))
    budget = max(1, int(max_samples * validation_share))
    train = _cut(history, timestamps, window_steps, horizon_steps, input_steps, first_end, split - reach,
                 max_samples - budget, rng)
    validation = _cut(history, timestamps, window_steps, horizon_steps, input_steps, split + 1, last_end, budget, rng)
    return train, validation


def _cut(history: np.ndarray, timestamps: np.ndarray, window_steps: int, horizon_steps: tuple[int, ...],
         input_steps: int, first_end: int, last_end: int, count: int, rng: np.random.Generator) -> Samples:
    """Up to `count` complete samples whose windows end between first_end and last_end."""
    if last_end < first_end:
        return Samples(np.zeros((0, 1, history.shape[2] + 2), np.float32),
                       np.zeros((0, history.shape[2], len(horizon_steps)), np.float32))
    ends = rng.integers(first_end, last_end + 1, size=count * 2)
    rows = rng.integers(0, history.shape[0], size=ends.size)
    window_index = ends[:, None] - np.arange(window_steps - 1, -1, -1)[None, :]
    windows = history[rows[:, None], window_index]  # [S, T, F]
    future = history[rows[:, None], ends[:, None] + np.array(horizon_steps)[None, :]]  # [S, H, F]
    complete = ~(np.isnan(windows).any(axis=(1, 2)) | np.isnan(future).any(axis=(1, 2)))
    keep = np.flatnonzero(complete)[:count]
    prepared = model_inputs(windows[keep], timestamps[window_index[keep]], input_steps)
    return Samples(prepared.inputs, normalised_targets(future[keep], prepared))
