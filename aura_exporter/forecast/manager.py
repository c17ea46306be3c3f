"""Gets every analysis a trained forecaster, and keeps it fresh, without blocking the exporter.

On start: load the checkpoint; if it is missing, unreadable or made for another configuration,
count why (`aura_checkpoint_errors_total{reason}`), fetch history and train. Every
`retrain_interval`: fetch recent history and fine-tune from the current weights. History is
fetched in a thread; training runs in a child process (so scrapes never wait on it and a stop
ends it at once); checkpoints are written atomically.
"""

from __future__ import annotations

import asyncio
import io
import logging
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aura_exporter.config import Analysis
from aura_exporter.forecast.captured import CapturedForward
from aura_exporter.forecast.checkpoint import (
    CheckpointError,
    checkpoint_path,
    describe,
    load_checkpoint,
    save_checkpoint,
)
from aura_exporter.forecast.data import SampleShape, model_horizons, training_samples
from aura_exporter.forecast.model import Forecaster, ModelShape, pick_device
from aura_exporter.forecast.stage import ForecastStage, TrainedModel
from aura_exporter.forecast.train import TrainingReport, train_model
from aura_exporter.history import History, HistoryLoader
from aura_exporter.progress import Progress

log = logging.getLogger(__name__)

FINE_TUNE_EPOCHS = 5
# Entities a training draws its windows from, at most (a random sample of a larger fleet, afresh at each
# (re)training): 20 windows each at the default forecast.max_samples, enough kinds of behaviour for one model
# of the fleet; the rest of a fleet's days of history would only cost memory (history.EntitySample).
MOST_TRAINING_ENTITIES = 1000


def model_shape(analysis: Analysis) -> ModelShape:
    horizons = model_horizons(analysis.interval, analysis.forecast.horizons)
    in_context_steps = tuple(h / analysis.forecast.context_step for h in horizons)  # the trend's unit
    return ModelShape(features=len(analysis.features), horizon_steps=in_context_steps, units=analysis.forecast.units,
                      seasons=len(analysis.forecast.seasons))


def sample_shape(analysis: Analysis) -> SampleShape:
    """Contexts and horizons on the analysis' step grid, where history lives."""
    settings = analysis.forecast
    horizons = model_horizons(analysis.interval, settings.horizons)
    return SampleShape(input_steps=settings.input_steps, stride=int(round(settings.context_step / analysis.step)),
                       horizons=tuple(int(round(h / analysis.step)) for h in horizons),
                       seasons=tuple(int(round(s / analysis.step)) for s in settings.seasons))


def train_on_history(analysis: Analysis, history: History, initial: dict | None = None,
                     progress: Progress | None = None, seed: int = 0) -> tuple[dict, TrainingReport]:
    """Cut samples from history and train (or fine-tune); returns CPU weights and the report."""
    settings = analysis.forecast
    train, validation = training_samples(history.values, history.timestamps, sample_shape(analysis),
                                         settings.max_samples, np.random.default_rng(seed),
                                         trend_share=settings.trend_share)
    if len(train) < 64:
        raise ValueError(f"only {len(train)} complete training windows in the history; need at least 64")
    epochs = settings.max_epochs if initial is None else min(settings.max_epochs, FINE_TUNE_EPOCHS)
    model, report = train_model(model_shape(analysis), train, validation, pick_device(settings.device), epochs,
                                settings.max_train_time, initial=initial, progress=progress, seed=seed)
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}, report


def build_trained(analysis: Analysis, state: dict, meta: dict) -> TrainedModel:
    device = pick_device(analysis.forecast.device)
    model = Forecaster(model_shape(analysis))
    model.load_state_dict(state)
    model = model.to(device).eval()
    return TrainedModel(model, device, float(meta.get("trained_at", time.time())), meta, forward_pass(model, device))


def forward_pass(model: Forecaster, device: torch.device) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Inference on CUDA replays captured graphs (see captured.py); on the CPU it is the plain model."""
    if device.type == "cuda":
        return CapturedForward(model)
    return lambda batch, anchors: model(batch, anchors).float()


def _to_bytes(state: dict) -> bytes:
    """Weights as plain bytes: torch shares pickled tensors through file descriptors that die with
    the process that made them, so tensors never cross the process boundary as objects."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _from_bytes(data: bytes) -> dict[str, torch.Tensor]:
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _train_job(analysis: Analysis, history: History, initial: bytes | None) -> tuple[bytes, TrainingReport]:
    """What the child process runs."""
    state, report = train_on_history(analysis, history, None if initial is None else _from_bytes(initial))
    return _to_bytes(state), report


def _child(connection, function, args) -> None:
    try:
        torch.set_num_threads(max(1, torch.get_num_threads()))
        connection.send(("ok", function(*args)))
    except BaseException as err:  # report every failure to the parent, which logs it
        connection.send(("error", f"{type(err).__name__}: {err}"))
    finally:
        connection.close()


async def run_in_child_process(function, *args) -> Any:
    """function(*args) in a spawned process; cancelling the await terminates the process."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(sender, function, args), daemon=True)
    process.start()
    sender.close()
    try:
        status, value = await asyncio.get_running_loop().run_in_executor(None, receiver.recv)
    except EOFError as err:
        raise RuntimeError(f"training process died with exit code {process.exitcode}") from err
    finally:
        if process.is_alive():
            process.terminate()
        process.join(5)
        receiver.close()
    if status == "error":
        raise RuntimeError(value)
    return value


class ModelManager:
    def __init__(self, analysis: Analysis, stage: ForecastStage, storage: Path | None, history: HistoryLoader,
                 metrics, clock):
        self.analysis = analysis
        self.stage = stage
        self.storage = storage
        self.history = history
        self.metrics = metrics
        self.clock = clock

    def load(self) -> TrainedModel | None:
        if self.storage is None:
            return None
        path = checkpoint_path(self.storage, self.analysis)
        try:
            state, meta = load_checkpoint(path, self.analysis)
            trained = build_trained(self.analysis, state, meta)
        except CheckpointError as err:
            self.metrics.checkpoint_errors.labels(self.analysis.name, err.reason).inc()
            level = logging.INFO if err.reason == "missing" else logging.WARNING
            log.log(level, "checkpoint not used, training instead",
                    extra={"analysis": self.analysis.name, "reason": err.reason, "error": str(err)})
            return None
        except (RuntimeError, KeyError) as err:  # weights of the right format but the wrong shapes
            self.metrics.checkpoint_errors.labels(self.analysis.name, "corrupt").inc()
            log.warning("checkpoint not used, training instead", extra={"analysis": self.analysis.name,
                                                                         "reason": "corrupt", "error": str(err)})
            return None
        log.info("forecaster loaded", extra={"analysis": self.analysis.name, "path": str(path)})
        return trained

    async def run(self) -> None:
        """Load or train, then fine-tune every retrain_interval; retry failed training with backoff."""
        trained = self.load()
        delay = 60.0
        while trained is None:
            trained = await self.train(initial=None)
            if trained is None:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 3600.0)
        self.stage.install(trained)
        self.metrics.model_trained.labels(self.analysis.name).set(trained.trained_at)
        interval = self.analysis.forecast.retrain_interval
        while interval > 0:
            await self.clock.sleep(interval)
            current = self.stage.trained
            state = current.model.state_dict() if current else None
            refreshed = await self.train(initial={k: v.cpu() for k, v in state.items()} if state else None)
            if refreshed is not None:
                self.stage.install(refreshed)

    async def train(self, initial: dict | None) -> TrainedModel | None:
        name, settings = self.analysis.name, self.analysis.forecast
        end = self.clock.now()
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        try:
            history = await loop.run_in_executor(None, partial(self.history, self.analysis, end - settings.history,
                                                               end, most_entities=MOST_TRAINING_ENTITIES))
            log.info("training forecaster", extra={"analysis": name, "entities": len(history.entities),
                                                   "steps": len(history.timestamps), "fine_tune": initial is not None})
            weights = None if initial is None else _to_bytes(initial)
            data, report = await run_in_child_process(_train_job, self.analysis, history, weights)
            state = _from_bytes(data)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # no history yet, Prometheus down, too few windows: retry later
            self.metrics.trainings.labels(name, "failure").inc()
            log.warning("training failed", exc_info=err, extra={"analysis": name, "error": str(err)})
            return None
        meta = {**describe(self.analysis), "trained_at": time.time(), "report": asdict(report),
                "data_end": end}
        if self.storage is not None:
            await loop.run_in_executor(None, save_checkpoint, checkpoint_path(self.storage, self.analysis),
                                       self.analysis, state, meta)
        self.metrics.trainings.labels(name, "success").inc()
        self.metrics.model_trained.labels(name).set(meta["trained_at"])
        log.info("forecaster trained", extra={"analysis": name, "epochs": report.epochs,
                                              "held_out_loss": round(report.validation_loss, 4),
                                              "seconds": round(time.monotonic() - started, 1),
                                              "stopped": report.stopped_because})
        return build_trained(self.analysis, state, meta)
