"""Forecaster speed: inference latency and training throughput, on CPU and on CUDA when present.

    python bench/forecast_speed.py [--entities 1000 10000] [--steps 60 120] [--features 8] [--seasons 0 2]

Inference: one forward pass of the whole batch of entities (the per-cycle work), median of 5
after a warm-up. Training: windows per second over 10 optimiser steps of 256 windows, with the
pinball loss and bf16 autocast on CUDA. Figures only: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from aura_exporter.forecast.captured import CapturedForward
from aura_exporter.forecast.data import input_width
from aura_exporter.forecast.model import Forecaster, ModelShape, pinball_loss
from aura_exporter.forecast.train import autocast


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def inference_seconds(forward, inputs: tuple[torch.Tensor, torch.Tensor], device: torch.device,
                      repeat: int = 5) -> float:
    times = []
    with torch.inference_mode(), autocast(device):
        forward(*inputs)  # warm-up (and, for the captured pass, the capture)
        for _ in range(repeat):
            synchronise(device)
            started = time.perf_counter()
            forward(*inputs)
            synchronise(device)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def training_windows_per_second(model: Forecaster, steps: int, features: int, device: torch.device,
                                batch: int = 256, iterations: int = 10) -> float:
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, anchors = random_inputs(model.shape, batch, steps, device)
    y = torch.randn(batch, features, model.shape.horizons, device=device)

    def step() -> None:
        with autocast(device):
            loss = pinball_loss(model(x, anchors).float(), y)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    step()  # warm-up
    synchronise(device)
    started = time.perf_counter()
    for _ in range(iterations):
        step()
    synchronise(device)
    return batch * iterations / (time.perf_counter() - started)


def random_inputs(shape: ModelShape, rows: int, steps: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.randn(rows, steps, input_width(shape.features, shape.seasons), device=device),
            torch.randn(rows, shape.seasons, shape.features, shape.horizons, device=device))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entities", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--steps", type=int, nargs="+", default=[60, 120])
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--seasons", type=int, nargs="+", default=[0, 2], help="0: none; 2: [1d, 1w], as shipped")
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no CUDA device"))
    print("| device | seasons | context steps | entities | inference (one batch) | CUDA graph | training (windows/s) |")
    print("|---|---|---|---|---|---|---|")
    shape_horizons = (0.25, 3.75, 15.0, 30.0, 60.0)
    for device in devices:
        for seasons in args.seasons:
            for steps in args.steps:
                torch.manual_seed(0)
                model = Forecaster(ModelShape(args.features, shape_horizons, args.units, seasons=seasons)).to(device)
                model.seasons_learned.fill_(1.0)  # every season in use
                throughput = training_windows_per_second(model, steps, args.features, device)
                model.eval()
                for entities in args.entities:
                    inputs = random_inputs(model.shape, entities, steps, device)
                    seconds = inference_seconds(model, inputs, device)
                    captured = (f"{inference_seconds(CapturedForward(model), inputs, device) * 1000:.2f} ms"
                                if device.type == "cuda" else "–")
                    print(f"| {device.type} | {seasons} | {steps} | {entities} | {seconds * 1000:.2f} ms | "
                          f"{captured} | {throughput:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
