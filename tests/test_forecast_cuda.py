"""Inference on CUDA: replayed graphs give what the model gives, whatever the batch size and
whatever ran through the same graph before. Skipped where there is no GPU (CI has none; a lent GPU
machine runs them: docs/benchmarks.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aura_exporter.forecast.captured import CapturedForward, padded_size
from aura_exporter.forecast.manager import forward_pass
from aura_exporter.forecast.model import Forecaster, ModelShape

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
SHAPE = ModelShape(features=3, horizon_steps=(1.0, 4.0, 16.0), units=16)


def eager(model: Forecaster, batch: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        return model(batch).float()


def test_batches_pad_to_a_few_sizes():
    assert [padded_size(n) for n in (1, 64, 65, 1000, 4096)] == [64, 64, 128, 1024, 4096]


def test_the_cpu_runs_the_plain_model():
    torch.manual_seed(0)
    model = Forecaster(SHAPE).eval()
    batch = torch.randn(5, 20, SHAPE.features + 2)
    with torch.inference_mode():
        assert torch.equal(forward_pass(model, torch.device("cpu"))(batch), model(batch))


@cuda
def test_replays_match_the_model_for_every_batch_size():
    torch.manual_seed(0)
    model = Forecaster(SHAPE).cuda().eval()
    captured = CapturedForward(model)
    for rows in (1, 63, 64, 300, 300, 1000):  # 300 twice: the second replays the first's graph
        batch = torch.randn(rows, 20, SHAPE.features + 2, device="cuda")
        replayed = captured(batch)
        assert replayed.shape == (rows, SHAPE.features, SHAPE.horizons, 3)
        np.testing.assert_allclose(replayed.cpu().numpy(), eager(model, batch).cpu().numpy(), atol=3e-2, rtol=3e-2)
    assert sorted(key[0] for key in captured.graphs) == [64, 512, 1024]  # one graph per padded size


@cuda
def test_a_replay_returns_its_own_rows_not_the_last_batchs():
    torch.manual_seed(0)
    model = Forecaster(SHAPE).cuda().eval()
    captured = CapturedForward(model)
    first = captured(torch.randn(200, 20, SHAPE.features + 2, device="cuda"))
    kept = first.clone()
    captured(torch.randn(150, 20, SHAPE.features + 2, device="cuda"))
    assert torch.equal(first, kept)  # the caller's result is a copy, not the static buffer
