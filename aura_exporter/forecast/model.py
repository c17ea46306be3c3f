"""The liquid neural network: an ncps CfC over the normalised window, a head for every feature,
horizon and quantile.

One model per analysis, shared by its entities. It predicts three quantiles (10%, 50%, 90%) of
each feature at each horizon; the outer two are the median minus and plus non-negative offsets,
so quantiles never cross.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from ncps.torch import CfC
from torch import nn

QUANTILES = (0.1, 0.5, 0.9)
MODEL_VERSION = 1  # bump when the architecture changes: older checkpoints are then retrained


@dataclass(frozen=True)
class ModelShape:
    features: int
    horizons: int
    units: int = 64

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Forecaster(nn.Module):
    def __init__(self, shape: ModelShape):
        super().__init__()
        self.shape = shape
        self.cell = CfC(shape.features + 2, shape.units, batch_first=True, return_sequences=False)
        self.head = nn.Linear(shape.units, shape.features * shape.horizons * len(QUANTILES))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """[B, steps, F + 2] normalised windows → [B, F, H, 3] quantiles in the same units."""
        hidden, _ = self.cell(inputs)
        raw = self.head(hidden).view(-1, self.shape.features, self.shape.horizons, len(QUANTILES))
        median = raw[..., 1]
        lower = median - nn.functional.softplus(raw[..., 0])
        upper = median + nn.functional.softplus(raw[..., 2])
        return torch.stack([lower, median, upper], dim=-1)


def pinball_loss(predicted: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean quantile loss of [B, F, H, Q] predictions against [B, F, H] targets."""
    levels = torch.tensor(QUANTILES, device=predicted.device, dtype=predicted.dtype)
    error = targets.unsqueeze(-1) - predicted
    return torch.maximum(levels * error, (levels - 1) * error).mean()


def pick_device(setting: str) -> torch.device:
    if setting == "cuda" or (setting == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")
