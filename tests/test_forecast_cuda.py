"""Inference on CUDA: replayed graphs give what the model gives, whatever the batch size and
whatever ran through the same graph before. Skipped where there is no GPU (CI has none; a lent GPU
machine runs them: docs/benchmarks.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aura_exporter.forecast.captured import CapturedForward, padded_size
from aura_exporter.forecast.data import input_width
from aura_exporter.forecast.manager import forward_pass
from aura_exporter.forecast.model import Forecaster, ModelShape

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
SHAPE = ModelShape(features=3, horizon_steps=(1.0, 4.0, 16.0), units=16, seasons=2)


def model_on(device: str) -> Forecaster:
    torch.manual_seed(0)
    model = Forecaster(SHAPE)
    model.seasons_learned.fill_(1.0)  # both seasons in use, so their part of the pass is checked too
    return model.to(device).eval()


def batch(rows: int, device: str = "cuda") -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.randn(rows, 20, input_width(SHAPE.features, SHAPE.seasons), device=device),
            torch.randn(rows, SHAPE.seasons, SHAPE.features, SHAPE.horizons, device=device))


def eager(model: Forecaster, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        return model(*inputs).float()


def test_batches_pad_to_a_few_sizes():
    assert [padded_size(n) for n in (1, 64, 65, 1000, 4096)] == [64, 64, 128, 1024, 4096]


def test_the_cpu_runs_the_plain_model():
    model = model_on("cpu")
    inputs = batch(5, "cpu")
    with torch.inference_mode():
        assert torch.equal(forward_pass(model, torch.device("cpu"))(*inputs), model(*inputs))


@cuda
def test_replays_match_the_model_for_every_batch_size():
    model = model_on("cuda")
    captured = CapturedForward(model)
    for rows in (1, 63, 64, 300, 300, 1000):  # 300 twice: the second replays the first's graph
        inputs = batch(rows)
        replayed = captured(*inputs)
        assert replayed.shape == (rows, SHAPE.features, SHAPE.horizons, 3)
        np.testing.assert_allclose(replayed.cpu().numpy(), eager(model, inputs).cpu().numpy(), atol=3e-2, rtol=3e-2)
    assert sorted(key[0] for key in captured.graphs) == [64, 512, 1024]  # one graph per padded size


@cuda
def test_a_replay_returns_its_own_rows_not_the_last_batchs():
    captured = CapturedForward(model_on("cuda"))
    first = captured(*batch(200))
    kept = first.clone()
    captured(*batch(150))
    assert torch.equal(first, kept)  # the caller's result is a copy, not the static buffer
