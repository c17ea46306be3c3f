"""Training: Adam on the pinball loss, early stopping on the held-out tail, visible progress."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from aura_exporter.forecast.data import Samples
from aura_exporter.forecast.model import Forecaster, ModelShape, pinball_loss
from aura_exporter.progress import Progress

MIN_SEASON_SAMPLES = 64  # training samples that must hold a season's lag before the model may use it


@dataclass(frozen=True)
class TrainingReport:
    epochs: int
    train_loss: float
    validation_loss: float
    samples: int
    seconds: float
    stopped_because: str  # "converged", "max_epochs" or "time_budget"


def autocast(device: torch.device):
    """bfloat16 mixed precision on a GPU; plain float32 on the CPU."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def train_model(shape: ModelShape, train: Samples, validation: Samples, device: torch.device, max_epochs: int,
                time_budget: float, initial: dict | None = None, patience: int = 6, batch_size: int = 256,
                learning_rate: float = 3e-3, seed: int = 0, progress: Progress | None = None
                ) -> tuple[Forecaster, TrainingReport]:
    """Train (or fine-tune from `initial` weights) and return the best model on the held-out tail."""
    torch.manual_seed(seed)
    model = Forecaster(shape).to(device)
    if initial is not None:
        model.load_state_dict(initial)
    model.seasons_learned.copy_(torch.maximum(model.seasons_learned, seasons_held(train, shape).to(device)))
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    # halve the step size when the held-out loss stalls; stop after `patience` epochs without progress
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, factor=0.5, patience=2)
    x, a, y = (torch.from_numpy(array).to(device) for array in (train.inputs, train.anchors, train.targets))
    started, best, best_state, since_best = time.monotonic(), math.inf, None, 0
    train_loss, reason, epoch = math.inf, "max_epochs", 0
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(1, max_epochs + 1):
        model.train()
        order = torch.randperm(len(x), generator=generator).to(device)
        losses = []
        for batch in order.split(batch_size):
            with autocast(device):
                loss = pinball_loss(model(x[batch], a[batch]).float(), y[batch])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            losses.append(loss.item())
        train_loss = float(np.mean(losses)) if losses else math.nan
        validation_loss = evaluate(model, validation, device)
        if progress:
            progress(epoch, max_epochs, loss=f"{train_loss:.4f}", held_out=f"{validation_loss:.4f}")
        criterion = train_loss if math.isnan(validation_loss) else validation_loss  # no tail: train loss
        scheduler.step(criterion)
        if criterion < best - 1e-5:
            best, best_state, since_best = criterion, copy.deepcopy(model.state_dict()), 0
        else:
            since_best += 1
        if since_best >= patience:
            reason = "converged"
            break
        if time.monotonic() - started > time_budget:
            reason = "time_budget"
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    report = TrainingReport(epoch, train_loss, best, len(train), time.monotonic() - started, reason)
    return model, report


def seasons_held(samples: Samples, shape: ModelShape) -> torch.Tensor:
    """[S] 1 for each season whose lag MIN_SEASON_SAMPLES training samples or more hold, else 0."""
    first = shape.features * (1 + shape.seasons)
    present = samples.inputs[:, 0, first : first + shape.seasons].sum(axis=0)
    return torch.from_numpy((present >= MIN_SEASON_SAMPLES).astype(np.float32))


@torch.no_grad()
def evaluate(model: Forecaster, samples: Samples, device: torch.device, batch_size: int = 2048) -> float:
    if len(samples) == 0:
        return math.nan
    model.eval()
    total = 0.0
    for start in range(0, len(samples), batch_size):
        x, a, y = (torch.from_numpy(array[start : start + batch_size]).to(device)
                   for array in (samples.inputs, samples.anchors, samples.targets))
        with autocast(device):
            total += pinball_loss(model(x, a).float(), y).item() * len(x)
    return total / len(samples)
