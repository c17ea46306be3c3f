"""The liquid neural network: an ncps CfC over the normalised window, a head for every feature,
horizon and quantile, around a damped trend.

One model per analysis, shared by its entities. It predicts three quantiles (10%, 50%, 90%) of
each feature at each horizon; the outer two are the median minus and plus non-negative offsets,
so quantiles never cross. The median is the network's own correction plus two linear trends
carried forward, the context's whole and its most recent quarter's, each damped by a factor in
(0, 1) the network chooses per feature and horizon (Gardner's damped trend, a strong classic of
forecasting competitions): extrapolating a ramp, one that began long ago or lately, is then
something the network switches on, not something its bounded hidden state must imitate.

Seasons work the same way: for each of `forecast.seasons` (say a day and a week), the median adds,
behind a gate the network sets per feature and horizon, the value one season before the target time
minus a share (also the network's) of the value one season before now. A gate open and the share 0
is seasonal naive; the share 1 is today's level plus yesterday's change over the horizon. A season
the training history never held (a week, from three days) stays shut: `seasons_learned` is 0 for it
and its inputs are hidden, so untrained weights never see it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from ncps.torch import CfC
from torch import nn

from aura_exporter.forecast.data import input_width

QUANTILES = (0.1, 0.5, 0.9)
MODEL_VERSION = 5  # bump when the architecture or what training teaches changes: older checkpoints are retrained


@dataclass(frozen=True)
class ModelShape:
    features: int
    horizon_steps: tuple[float, ...]  # each horizon in input (pooled) steps after the window's end
    units: int = 64
    seasons: int = 0

    @property
    def horizons(self) -> int:
        return len(self.horizon_steps)


class Forecaster(nn.Module):
    horizon_steps: torch.Tensor
    seasons_learned: torch.Tensor

    def __init__(self, shape: ModelShape):
        super().__init__()
        self.shape = shape
        features, seasons = shape.features, shape.seasons
        self.outputs = len(QUANTILES) + 2 + 2 * seasons  # quantiles, two trend gates, a gate and a share per season
        self.cell = CfC(input_width(features, seasons), shape.units, batch_first=True, return_sequences=False)
        self.head = nn.Linear(shape.units, features * shape.horizons * self.outputs)
        self.register_buffer("horizon_steps", torch.tensor(shape.horizon_steps, dtype=torch.float32))
        self.register_buffer("seasons_learned", torch.zeros(seasons))
        # Trends start switched off (sigmoid(-4) ≈ 0.02) and are turned on where they pay: started
        # half on, training settles in a worse basin (measured on noisy sines: MASE 0.9 against 0.4).
        with torch.no_grad():
            self.head.bias.view(features, shape.horizons, self.outputs)[..., 3:5] = -4.0

    def forward(self, inputs: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """[B, steps, input_width] normalised windows and [B, S, F, H] seasonal anchors (forecast/data.py)
        → [B, F, H, 3] quantiles in the same units."""
        features, seasons = self.shape.features, self.shape.seasons
        learned = self.seasons_learned
        if seasons:  # a season never learned is hidden from the network
            ones = learned.new_ones(features)
            shown = torch.cat([ones, learned.repeat_interleave(features), learned, learned.new_ones(2)])
            inputs = inputs * shown
        hidden, _ = self.cell(inputs)
        raw = self.head(hidden).view(-1, features, self.shape.horizons, self.outputs)
        values = inputs[..., :features]
        recent = values[:, -max(4, values.shape[1] // 4) :]
        whole_trend = window_slope(values)[..., None] * self.horizon_steps
        recent_trend = window_slope(recent)[..., None] * self.horizon_steps
        median = raw[..., 1] + torch.sigmoid(raw[..., 3]) * whole_trend + torch.sigmoid(raw[..., 4]) * recent_trend
        if seasons:
            then = inputs[:, -1, features : features * (1 + seasons)].view(-1, seasons, features)  # a season before now
            target = anchors.permute(0, 2, 3, 1) * learned  # [B, F, H, S]
            gate, share = torch.sigmoid(raw[..., 5::2]), torch.sigmoid(raw[..., 6::2])
            median = median + (gate * (target - share * then.transpose(1, 2)[:, :, None, :])).sum(dim=-1)
        lower = median - nn.functional.softplus(raw[..., 0])
        upper = median + nn.functional.softplus(raw[..., 2])
        return torch.stack([lower, median, upper], dim=-1)


def window_slope(values: torch.Tensor) -> torch.Tensor:
    """[B, F] least-squares slope per step of [B, T, F] values."""
    steps = values.shape[1]
    t = torch.arange(steps, device=values.device, dtype=values.dtype) - (steps - 1) / 2
    return torch.einsum("btf,t->bf", values - values.mean(dim=1, keepdim=True), t) / (t * t).sum()


def pinball_loss(predicted: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean quantile loss of [B, F, H, Q] predictions against [B, F, H] targets."""
    levels = torch.tensor(QUANTILES, device=predicted.device, dtype=predicted.dtype)
    error = targets.unsqueeze(-1) - predicted
    return torch.maximum(levels * error, (levels - 1) * error).mean()


def pick_device(setting: str) -> torch.device:
    if setting == "cuda" or (setting == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")
